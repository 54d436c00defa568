"""The everyday workflow as Python functions; the CLI commands are thin wrappers around them."""

from neuralrec.workflow.compare import Comparison, compare
from neuralrec.workflow.runs import (
    Run,
    RunConfig,
    evaluate,
    evaluate_split,
    load,
    load_run_data,
    train,
)

__all__ = [
    "Comparison",
    "Run",
    "RunConfig",
    "compare",
    "evaluate",
    "evaluate_split",
    "load",
    "load_run_data",
    "train",
]
