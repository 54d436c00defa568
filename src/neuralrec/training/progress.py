"""A rich progress bar for training that stays silent when output is not a terminal."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class TrainingProgress:
    """Epoch and batch bars on stderr; a no-op when ``quiet`` or stderr is not a TTY."""

    def __init__(
        self, total_epochs: int, *, quiet: bool = False, description: str = "training"
    ) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self._progress: Progress | None = None
        self._epochs = total_epochs
        self._description = description
        self._epoch_task: Any = None
        self._batch_task: Any = None

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
            self._epoch_task = self._progress.add_task(
                self._description, total=self._epochs, info=""
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def start_epoch(self, epoch: int, n_batches: int, done_epochs: int) -> None:
        if self._progress is None:
            return
        self._progress.update(self._epoch_task, completed=done_epochs)
        if self._batch_task is not None:
            self._progress.remove_task(self._batch_task)
        self._batch_task = self._progress.add_task(f"epoch {epoch}", total=n_batches, info="")

    def advance_batch(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._batch_task)

    def end_epoch(self, record: dict[str, Any]) -> None:
        if self._progress is None:
            return
        info = "  ".join(
            f"{k} {v:.4f}"
            for k, v in record.items()
            if isinstance(v, float) and k not in ("seconds", "cpu_seconds")
        )
        self._progress.update(self._epoch_task, advance=1, info=info)
