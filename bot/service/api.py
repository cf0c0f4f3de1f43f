"""What goes in and out of the service: invocations, replies and the bot-wide policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from bot.chat.message import Message
from bot.domain.refs import ChannelRef, UserRef


@dataclass(frozen=True, kw_only=True, slots=True)
class Invocation:
    """A command as an adapter received it."""

    user: UserRef
    text: str  # what follows the command word, in the platform's own mention forms
    channel: ChannelRef | None  # None: a direct conversation with the bot
    event_id: str | None = None  # platform event id, to drop redeliveries


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    message: Message
    private: bool = True  # only the caller sees it (ephemeral / DM / [private:…])


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    """Bot-wide settings the service needs (built from the config by the composition root)."""

    admins: frozenset[UserRef] = frozenset()
    default_zone: str = "UTC"
    command_word: str = "cohort"
    questions_per_day: int = 5
    horizon: timedelta = timedelta(days=2)
    late_grace: timedelta = timedelta(minutes=2)
    retention: timedelta = timedelta(days=90)
    batch_size: int = 100
    #: How a command is written on each platform, for help and hints ("/cohort", "!cohort").
    prefixes: dict[str, str] = field(default_factory=dict)

    def prefix_for(self, platform: str) -> str:
        return self.prefixes.get(platform, "/") + self.command_word
