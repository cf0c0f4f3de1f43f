"""Opaque identities of people and places on a chat platform.

A person is only ever a `UserRef(platform, id)`: never a display name. These values cross
every layer unchanged; only adapters know what an id looks like on their platform.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class UserRef:
    platform: str
    id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> UserRef:
        """Parse the `platform:id` form used in config (`"matrix:@ana:example.org"`)."""
        platform, sep, ident = text.partition(":")
        if not sep or not platform or not ident:
            raise ValueError(f"expected 'platform:id', got {text!r}")
        return cls(platform, ident)


@dataclass(frozen=True, slots=True, order=True)
class ChannelRef:
    """A shared place (Slack channel, Matrix room, terminal channel)."""

    platform: str
    id: str

    def __str__(self) -> str:
        return f"{self.platform}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> ChannelRef:
        platform, sep, ident = text.partition(":")
        if not sep or not platform or not ident:
            raise ValueError(f"expected 'platform:id', got {text!r}")
        return cls(platform, ident)
