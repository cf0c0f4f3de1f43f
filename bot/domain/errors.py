"""Expected failures, each carrying a message meant for the person who caused it.

Anything that is *not* one of these is a bug or an outage: the service logs it with a
reference id and never shows its text in chat.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a rule the caller broke. `message` is safe to show to the caller."""

    def __init__(self, message: str, *, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class NotAllowed(UserError):
    """The caller lacks the role a command needs."""


class NotFound(UserError):
    """The thing the caller named does not exist (in this cohort)."""
