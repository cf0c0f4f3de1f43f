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
    #: The command text stays in the platform's history under the caller's name, where the
    #: bot cannot remove it (a Slack direct message). Commands that would tie the caller to an
    #: anonymous question are refused with a pointer to a way that leaves nothing behind.
    kept: bool = False
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
    #: Remove the command message where the platform allows it: it was seen by a channel, or
    #: it ties its sender to an anonymous question (a Matrix DM keeps it otherwise).
    withdraw: bool = False
    #: Ties its reader to an anonymous question (a question's code, its fate, an upvote):
    #: show it only where it does not stay beside their name (an ephemeral message, a form,
    #: or a direct message the adapter removes after `FLEETING`), never in a lasting message.
    fleeting: bool = False
    #: A confirmation that reveals nothing private (a setup or facilitator action): a
    #: platform without ephemeral replies may show it where the command was typed.
    shareable: bool = False


#: How long a fleeting reply may stay where the platform keeps it (a Matrix DM).
FLEETING = timedelta(minutes=10)


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

    async def knows(self, user: UserRef, tenant: str) -> bool:
        """Whether `user` is an admin of `tenant` or in one of its active cohorts."""
        ...

    async def moved(self, user: UserRef, place: ChannelRef, tenant: str, *,
                    present: bool) -> None:
        """`user` left `place` (present=False) or joined it (True), as the platform saw."""
        ...

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
    commands_per_minute: int = 30
    messages_to_others_per_hour: int = 5
    #: How a command is written on each platform, for help and hints ("/cohort", "!cohort").
    prefixes: dict[str, str] = field(default_factory=dict)

    def is_admin(self, user: UserRef, tenant: str) -> bool:
        """A configured admin of this tenant."""
        return Admin(user, tenant) in self.admins

    def prefix_for(self, platform: str) -> str:
        return self.prefixes.get(platform, "/") + self.command_word
