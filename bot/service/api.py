"""What goes in and out of the service: invocations, replies and the bot-wide policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from bot.chat.message import Message
from bot.domain.refs import ChannelRef, UserRef


@dataclass(frozen=True, kw_only=True, slots=True)
class Invocation:
    """A command as an adapter received it."""

    user: UserRef
    text: str  # what follows the command word, in the platform's own mention forms
    channel: ChannelRef | None  # None: a direct conversation with the bot
    event_id: str | None = None  # platform event id, to drop redeliveries
    #: The command text itself is visible to everyone in `channel` (a Matrix room message,
    #: unlike a Slack slash command). Commands that would tie the caller to an anonymous
    #: question are then refused, and the adapter is asked to withdraw the message.
    seen_by_channel: bool = False
    #: Whose cohorts the caller can reach: a Slack workspace (`slack:T…`), the Matrix bot
    #: account (`matrix`), the terminal. Opaque to the core; the platform's name by default,
    #: for a platform that is one tenant.
    tenant: str = ""

    def __post_init__(self) -> None:
        if not self.tenant:
            object.__setattr__(self, "tenant", self.user.platform)


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    message: Message
    private: bool = True  # only the caller sees it (ephemeral / DM / [private:…])
    #: Send it to the caller in a direct conversation, even if the command came from a channel.
    direct: bool = False
    #: Remove the command message from the channel where the platform allows it.
    withdraw: bool = False
    #: Worth keeping (a question's code): where private replies vanish, also send it by DM.
    lasting: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckinItem:
    """One open action of a member, for a platform's check-in form."""

    cohort: str  # the cohort's slug, for `--cohort`
    number: int
    text: str
    answer: str | None  # done | partly | notyet | dropped, or None
    note: str | None


class CommandHandler(Protocol):
    async def __call__(self, inv: Invocation) -> list[Reply]: ...


class Core(Protocol):
    """What a platform adapter may ask of the core."""

    policy: Policy

    async def handle(self, inv: Invocation) -> list[Reply]: ...

    async def checkin_items(self, user: UserRef, tenant: str) -> list[CheckinItem]: ...

    def wake(self) -> None:
        """Look for due work now, e.g. when a platform that was down is reachable again."""
        ...


@dataclass(frozen=True, slots=True, order=True)
class Admin:
    """A configured admin: admin of every cohort of one tenant, and of no other."""

    user: UserRef
    tenant: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    """Bot-wide settings the service needs (built from the config by the composition root)."""

    admins: frozenset[Admin] = frozenset()
    default_zone: str = "UTC"
    command_word: str = "cohort"
    questions_per_day: int = 5
    horizon: timedelta = timedelta(days=2)
    late_grace: timedelta = timedelta(minutes=2)
    retention: timedelta = timedelta(days=90)
    batch_size: int = 100
    #: How a command is written on each platform, for help and hints ("/cohort", "!cohort").
    prefixes: dict[str, str] = field(default_factory=dict)

    def is_admin(self, user: UserRef, tenant: str) -> bool:
        """A configured admin of this tenant."""
        return Admin(user, tenant) in self.admins

    def prefix_for(self, platform: str) -> str:
        return self.prefixes.get(platform, "/") + self.command_word
