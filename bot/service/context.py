"""The context a handler runs in, and the few helpers every handler shares.

A handler gets a `Ctx`: the open unit of work, the caller, their cohort and role, `now`, and
`post()` to queue a message in the outbox inside the same transaction as its cause.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.chat.grammar import Role
from bot.chat.message import Action, Message, aside
from bot.domain.errors import NotAllowed, UserError
from bot.domain.model import DELETE, EDIT, Cohort, Member, OutboxMessage, Person
from bot.domain.refs import ChannelRef, UserRef
from bot.service.anonymity import Keys
from bot.service.api import Invocation, Policy
from bot.service.authors import AuthorLinks, Tidings
from bot.service.limits import Limits
from bot.service.ports import Directory, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

#: Put before a notification that went out late (the bot was down when it was due).
LATE = "(Sent late: the bot was offline when this was due.)"


@dataclass(frozen=True, slots=True)
class Known:
    """A row that was read, found or not (None)."""

    person: Person | None


@dataclass(kw_only=True)
class Ctx:
    uow: UnitOfWork
    #: Where a unit of work of its own comes from (see `apart`).
    units: UnitOfWorkFactory
    keys: Keys
    limits: Limits
    inv: Invocation
    now: datetime
    policy: Policy
    directory: Directory
    role: Role = Role.ANYONE
    cohort_: Cohort | None = None
    member_: Member | None = None
    usage: str = ""
    queued: int = field(default=0)
    #: The caller's own settings, when they were read along with the cohort.
    caller: Known | None = None
    #: The command deleted personal text: once committed, the database is asked to let it
    #: leave its files at once (`UnitOfWorkFactory.checkpoint`).
    erased: bool = False
    #: What authors of questions are to be told once this command has committed.
    tidings: Tidings = field(default_factory=lambda: AuthorLinks().batch())

    @asynccontextmanager
    async def apart(self) -> AsyncIterator[UnitOfWork]:
        """A transaction of its own, committed before the command's writes begin: for a
        write that must share no transaction (and so, on PostgreSQL, no `xmin`) with them.
        Only before the command has written anything: what it read so far stays usable."""
        await self.uow.commit()
        async with self.units() as own:
            yield own
            await own.commit()

    @property
    def links(self) -> AuthorLinks:
        return self.tidings.links

    @property
    def user(self) -> UserRef:
        return self.inv.user

    @property
    def platform(self) -> str:
        return self.inv.user.platform

    @property
    def cohort(self) -> Cohort:
        if self.cohort_ is None:
            raise UserError("Run this in a cohort's channel (or add --cohort <id>).")
        return self.cohort_

    @property
    def member(self) -> Member:
        if self.member_ is None:
            raise NotAllowed(f"This is for members of {self.cohort.name}, and you are not one "
                             f"(an admin can add you: {self.cmd('cohort members add @you')}).")
        return self.member_

    async def zone(self) -> str:
        """The zone to show the caller times in: theirs, their profile's, else the cohort's
        (or the bot's default outside a cohort)."""
        fallback = self.cohort_.zone if self.cohort_ else self.policy.default_zone
        if self.caller is not None:
            return await person_zone(self.caller.person, self.directory, self.user, fallback,
                                     self.tenant)
        return await zone_of(self.uow, self.directory, self.user, fallback, self.tenant)

    def cmd(self, text: str) -> str:
        """How the caller writes a command on their platform, for hints in replies."""
        return f"{self.policy.prefix_for(self.platform)} {text}"

    def fail(self, message: str) -> UserError:
        return UserError(message, usage=self.usage or None)

    @property
    def tenant(self) -> str:
        return self.inv.tenant

    async def admin_of(self, cohort: Cohort) -> bool:
        """Whether the caller is an admin of `cohort` (not only of the cohort or place the
        command was run in)."""
        return cohort.tenant == self.tenant and await admin_over(
            self.policy, self.directory, self.inv, cohort.channel)

    async def post(
        self,
        message: Message,
        *,
        channel: ChannelRef | None = None,
        user: UserRef | None = None,
        key: str | None = None,
        stale_after: timedelta | None = None,
    ) -> None:
        """Queue a message for the cohort's channel (default), another channel or a DM.
        A DM to someone else counts against the caller's `messages_to_others_per_hour`."""
        if user is not None and user != self.user and \
                not self.limits.messages.take((self.tenant, self.user), self.now):
            raise UserError(
                f"Your commands have messaged other people {self.limits.messages.limit} times "
                "in the last hour, the most they may. Nothing was sent; try again later.")
        await queue_message(
            self.uow, message, now=self.now, tenant=self.tenant,
            cohort=self.cohort_, channel=channel, user=user,
            key=key or f"cmd:{uuid.uuid4().hex}", stale_after=stale_after,
        )
        self.queued += 1


async def queue_message(
    uow: UnitOfWork,
    message: Message,
    *,
    now: datetime,
    cohort: Cohort | None,
    key: str,
    channel: ChannelRef | None = None,
    user: UserRef | None = None,
    stale_after: timedelta | None = None,
    late: bool = False,
    tenant: str | None = None,
    keep: bool = False,
) -> str | None:
    """Queue one message in the outbox. It is sent in the cohort's tenant, or, for a
    message about no cohort, in `tenant`. Returns the row's key if it was queued (None when
    there is nowhere to post or it was queued before). `keep`: the message may be edited or
    removed later (`queue_change`), so its row stays once sent."""
    if user is not None:
        platform, target, direct = user.platform, user.id, True
        dest = f"dm:{user}"
        if cohort is not None:
            # A direct message has no cohort of its own: its buttons name it, for members
            # of several cohorts.
            message = replace(message, actions=tuple(
                a if a.command.startswith("--cohort ") else
                Action(a.label, f"--cohort {cohort.slug} {a.command}")
                for a in message.actions))
    else:
        place = channel or (cohort.channel if cohort else None)
        if place is None:
            return None  # an unlinked cohort has nowhere to post; the reply says so
        platform, target, direct = place.platform, place.id, False
        dest = f"ch:{place}"
    if late:
        head = aside(LATE) if message.layout else Message.of(LATE)
        message = head + Message.of("\n") + message
    row = OutboxMessage(
        key=f"{key}/{dest}", platform=platform, target=target, direct=direct,
        body=message.to_json(), created_at=now, due_at=now,
        cohort_id=cohort.id if cohort else None, tenant=cohort.tenant if cohort else tenant,
        stale_at=now + stale_after if stale_after else None, keep=keep,
    )
    return row.key if await uow.add_outbox(row) else None


async def queue_change(uow: UnitOfWork, of_key: str, message: Message, *, now: datetime,
                       key: str, remove: bool = False, due_at: datetime | None = None) -> bool:
    """Queue an edit of the message queued as `of_key` (its new content: `message`), or with
    `remove` its removal (`message` then says what was removed, where a platform can only
    add a line), made at `due_at` (default now). The message's platform id is looked up when
    the change is made, once it has been sent. False if `of_key` is unknown."""
    found = await uow.find(OutboxMessage, key=of_key)
    if not found:
        return False
    of = found[0]
    if remove:
        # Nothing of what is removed needs keeping: the removal finds the id, not the text.
        of.body = Message.of("").to_json()
    row = OutboxMessage(
        key=key, platform=of.platform, target=of.target, direct=of.direct,
        body=message.to_json(), created_at=now, due_at=due_at or now,
        cohort_id=of.cohort_id, tenant=of.tenant, op=DELETE if remove else EDIT,
        of_key=of_key)
    return await uow.add_outbox(row)


async def tell_facilitators(uow: UnitOfWork, cohort: Cohort, message: Message, *,
                            now: datetime, key: str, late: bool = False,
                            but: int | None = None) -> None:
    """Queue `message` to each facilitator of `cohort` by DM (but not member id `but`)."""
    for f in await uow.find(Member, cohort_id=cohort.id, is_facilitator=True):
        if f.id != but:
            await queue_message(uow, message, now=now, cohort=cohort, key=key, user=f.user,
                                late=late)


async def admin_over(policy: Policy, directory: Directory, inv: Invocation,
                     place: ChannelRef | None) -> bool:
    """Whether the caller is an admin over `place` (a cohort's channel or room; None: the
    whole tenant) in their own tenant: a configured admin of that tenant, or one the platform
    says rules that place. A failed lookup grants nothing."""
    if policy.is_admin(inv.user, inv.tenant):
        return True
    try:
        return await directory.is_admin(inv.user, place, inv.tenant)
    except Exception:  # noqa: BLE001 - a failed lookup grants nothing, it does not break
        log.warning("admin lookup failed on %s", inv.user.platform)
        return False


async def zone_of(uow: UnitOfWork, directory: Directory | None, user: UserRef,
                  fallback: str, tenant: str) -> str:
    """The zone to show `user` times in: their own choice, their profile's (in `tenant`),
    else `fallback`."""
    return await person_zone(await person_of(uow, user, tenant), directory, user, fallback,
                             tenant)


async def person_zone(person: Person | None, directory: Directory | None, user: UserRef,
                      fallback: str, tenant: str) -> str:
    """`zone_of` with the person's row already read."""
    if person and person.zone:
        return person.zone
    if directory is not None:
        try:
            zone = await directory.timezone(user, tenant)
        except Exception:  # noqa: BLE001 - a profile lookup must never break a command
            zone = None
        if zone:
            return zone
    return fallback


async def person_of(uow: UnitOfWork, user: UserRef, tenant: str) -> Person | None:
    found = await uow.find(Person, tenant=tenant, platform=user.platform, user_id=user.id)
    return found[0] if found else None


async def member_of(uow: UnitOfWork, cohort: Cohort, user: UserRef) -> Member | None:
    found = await uow.find(Member, cohort_id=cohort.id, platform=user.platform, user_id=user.id)
    return found[0] if found else None


def refs(members: list[Member]) -> dict[int, UserRef]:
    return {m.id: m.user for m in members}


#: A command handler: takes the context and the parsed command of the class it is registered
#: for (so `Any` here: each handler narrows it to its own command class).
Handler = Callable[[Ctx, Any], Awaitable[Message]]
