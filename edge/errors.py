"""The error family: runtime failures the CLI turns into one line and exit code 2."""

from __future__ import annotations


class EdgeError(Exception):
    """A failure the user can act on (bad file, unopenable source, unsupported model)."""


class SourceError(EdgeError):
    """A source could not be opened or read."""


class ModelError(EdgeError):
    """A model file could not be loaded or is not one any decoder understands."""


class DataError(EdgeError):
    """A dataset is missing, empty or malformed."""


class ServerLost(EdgeError):
    """A model server (`--device triton://...`) stayed away through every reconnect attempt, or
    the run was stopped while waiting for it."""
