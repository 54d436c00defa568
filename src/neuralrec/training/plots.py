"""Learning curves as PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_SKIP = {"epoch", "seconds", "cpu_seconds", "lr", "best_epoch", "weight_change", "averaged"}


def learning_curve(
    history: list[dict[str, Any]], path: str | Path, *, title: str = ""
) -> Path | None:
    """Plot training loss and every validation metric per epoch into ``path``.

    Gibbs sampling records sweeps with no training loss: only its validation metrics are
    drawn, and with no validation either there is nothing to plot (None, no file).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    has_loss = "train_loss" in history[0]
    metrics = [k for k in history[0] if k not in _SKIP and k != "train_loss"]
    panels = int(has_loss) + int(bool(metrics))
    if not panels:
        return None
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    unit = "sweep" if "averaged" in history[0] else "epoch"
    if has_loss:
        ax = axes[0][0]
        ax.plot(epochs, [h["train_loss"] for h in history], marker="o", ms=3)
        ax.set_xlabel(unit)
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
    if metrics:
        ax2 = axes[0][-1]
        for key in metrics:
            ax2.plot(epochs, [h.get(key) for h in history], marker="o", ms=3, label=key)
        best = history[-1].get("best_epoch")
        if best:
            ax2.axvline(best, color="grey", ls="--", lw=1, label=f"best epoch {best}")
        ax2.set_xlabel(unit)
        ax2.set_ylabel("validation")
        ax2.legend(fontsize=8)
        ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
