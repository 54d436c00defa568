"""Exceptions raised by neuralrec. Every error about user input names where it came from."""

from __future__ import annotations


class NeuralrecError(Exception):
    """Base class of every error neuralrec raises on purpose."""


class DataError(NeuralrecError, ValueError):
    """Bad input data: names the source (file or frame), and the line, row or field where known."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.field = field
        where = []
        if source:
            where.append(str(source))
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class DatasetNotFoundError(NeuralrecError, FileNotFoundError):
    """A dataset is neither in the offline directory nor in the cache, and cannot be downloaded."""


class ChecksumError(DataError):
    """A downloaded or offline file does not match its published checksum."""


class ArtifactError(NeuralrecError):
    """A saved model directory is missing, corrupt, or from an incompatible format version."""


class UnknownIdError(NeuralrecError, KeyError):
    """A user or item id that the model (or dataset) has never seen."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown id"


class ConfigError(NeuralrecError, ValueError):
    """An invalid option, hyperparameter, or split specification."""
