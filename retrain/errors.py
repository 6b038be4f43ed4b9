"""One exception family: every error a user can cause is a RetrainError subclass.

The CLI prints ``str(error)`` as one line and exits with status 2 for these.
"""

from __future__ import annotations


class RetrainError(Exception):
    """Base class for all errors raised by retrain."""


class ConfigError(RetrainError):
    """The configuration is missing, malformed, or has a wrong key or value."""


class DataValidationError(RetrainError):
    """A window of data cannot be used; names the column and the problem."""

    def __init__(self, column: str | None, problem: str):
        self.column = column
        self.problem = problem
        where = f"column {column!r}: " if column else ""
        super().__init__(f"invalid data: {where}{problem}")


class RegistryError(RetrainError):
    """The model registry refused an operation (unknown model or version, conflict)."""


class ArtifactIntegrityError(RegistryError):
    """A model artifact is missing or its sha256 does not match the registry."""
