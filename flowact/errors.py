"""The one error tree of the project (flowact, agent and plugins all raise subclasses of it).

Every error carries `retryable`: True when trying the same call again may succeed (timeouts,
connection resets, 5xx), False for errors the user must fix. `UserError` subclasses are printed
by the CLIs as one clear line (exit code 2), never a traceback. Vendor errors become these at the
plugin edge (`raise X from e`).
"""

from __future__ import annotations

__all__ = ["ConfigError", "FlowActError", "InputError", "ModelError", "PortraitError", "UserError"]


class FlowActError(Exception):
    """Root of every error of the project. `retryable` says whether trying again can help."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class UserError(FlowActError):
    """Something the user must fix (bad config, bad file): one line, exit code 2."""


class ConfigError(UserError):
    """Invalid configuration: the message names the file or section, the field and the fix."""


class InputError(UserError):
    """Unreadable or unsuitable input (audio file, script, text, command payload)."""


class PortraitError(UserError):
    """The reference portrait cannot be used (missing, corrupt, no face, too small, ...)."""


class ModelError(UserError):
    """A model checkpoint or configuration is invalid."""
