"""Errors raised by the generator library (no dependency on `agent`)."""

from __future__ import annotations


class FlowActError(Exception):
    """Base of all generator errors. `retryable` says whether trying again can help."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class PortraitError(FlowActError):
    """The reference portrait cannot be used (missing, corrupt, no face, too small, ...)."""


class ModelError(FlowActError):
    """A model checkpoint or configuration is invalid."""
