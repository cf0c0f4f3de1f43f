"""The command bus: invocation → parse → cohort and role → handler → commit → replies.

Authorization happens here, per command and per cohort, before any handler runs. Expected
failures become a private reply with the usage line; anything else is logged with a short
reference and the caller sees only that reference. Nothing here logs who ran a command.
"""

from __future__ import annotations

import difflib
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping

from bot import metrics
from bot.chat import commands as c
from bot.chat.grammar import CohortNameError, Parsed, Role, UsageError, parse
from bot.chat.message import Mention, Message
from bot.domain.errors import NotAllowed, UserError
from bot.domain.model import ARCHIVED, Cohort, Member, Person
from bot.domain.refs import ChannelRef, UserRef
from bot.service import actions, cohorts, mydata, people, questions, sessions
from bot.service.anonymity import Keys
from bot.service.api import CheckinItem, Invocation, Policy, Reply
from bot.service.authors import AuthorLinks
from bot.service.checkins import open_actions
from bot.service.context import Ctx, Handler, Known, admin_over, tell_facilitators
from bot.service.limits import Limits
from bot.service.ports import (
    Clock,
    Directory,
    Messenger,
    NullDirectory,
    UnitOfWork,
    UnitOfWorkFactory,
)
from bot.service.reshuffle import refill, snapshot, tell_changes
from bot.service.turns import Turns

log = logging.getLogger(__name__)

# Command outcomes, as counted in `cohortbot_commands`.
OK, REFUSED, UNAVAILABLE, ERROR, DUPLICATE = "ok", "refused", "unavailable", "error", "duplicate"

HANDLERS: dict[type[c.Command], Handler] = {
    **people.HANDLERS,
    **sessions.HANDLERS,
    **actions.HANDLERS,
    **questions.HANDLERS,
    **cohorts.HANDLERS,
    **mydata.HANDLERS,
}


def storable(text: str) -> bool:
    """Whether every database can keep `text`: PostgreSQL refuses NUL, and a lone
    surrogate (which a platform's JSON can carry) is no character at all."""
    return "\x00" not in text and not any("\ud800" <= ch <= "\udfff" for ch in text)


def error_reply(message: str, usage: str | None, *, withdraw: bool = False) -> Reply:
    text = message if usage is None else f"{message}\nUsage: {usage}"
    return Reply(message=Message.of(text), private=True, withdraw=withdraw)


class Bot:
    """The platform-neutral bot. Adapters call `handle`; nothing else."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        policy: Policy,
        directories: dict[str, Directory] | None = None,
        on_change: Callable[[], None] | None = None,
        *,
        keys: Keys,
        links: AuthorLinks | None = None,
        messengers: Mapping[str, Messenger] | None = None,
    ) -> None:
        self._uow = uow
        self.keys = keys
        self.links = links or AuthorLinks()
        self._messengers = messengers if messengers is not None else {}
        self._clock = clock
        self.policy = policy
        self._directories = directories or {}
        self._on_change = on_change
        self.turns = Turns()
        self.limits = Limits(policy.commands_per_minute, policy.messages_to_others_per_hour)

    def wake(self) -> None:
        """Look for due work now (a platform that was down is back)."""
        if self._on_change is not None:
            self._on_change()

    async def checkin_items(self, user: UserRef, tenant: str) -> list[CheckinItem]:
        """The caller's open actions in every active cohort of `tenant`, for a check-in form."""
        async with self._uow() as uow:
            items: list[CheckinItem] = []
            for cohort, member in await uow.memberships(user, tenant):
                if not member.is_member or cohort.status == ARCHIVED:
                    continue
                items += [CheckinItem(cohort=cohort.slug, number=a.number, text=a.text,
                                      answer=a.answer, note=a.note)
                          for a in await open_actions(uow, member.id)]
            return items

    async def knows(self, user: UserRef, tenant: str) -> bool:
        """Whether `user` is an admin of `tenant`, or in one of its cohorts that is not
        archived (a member or a facilitator): someone the bot talks to in private."""
        if self.policy.is_admin(user, tenant):
            return True
        async with self._uow() as uow:
            return any(cohort.status != ARCHIVED
                       for cohort, _ in await uow.memberships(user, tenant))

    async def moved(self, user: UserRef, place: ChannelRef, tenant: str, *,
                    present: bool) -> None:
        """`user` left (or was removed from) `place`, or came back: if it is a cohort's
        channel or room and they are in the cohort, their membership is suspended until
        they are back, and the facilitators are told (with no content)."""
        now = self._clock.now()
        async with self._uow() as uow:
            cohort, member, _ = await uow.cohort_and_caller(
                user, tenant=tenant, platform=place.platform, channel_id=place.id)
            if cohort is None or member is None or (member.left_at is None) == present:
                return
            before = await snapshot(uow, cohort, now) if member.is_member else {}
            member.left_at = None if present else now
            what = ("is back in the channel of {}: they take part again." if present else
                    "left the channel of {}: until they are back, they get no roles, "
                    "reminders, messages or questions from it.")
            notice = Message.of(Mention(user), " " + what.format(cohort.name))
            await tell_facilitators(uow, cohort, notice, now=now,
                                    key=f"moved:{uuid.uuid4().hex}", but=member.id)
            if member.is_member:
                await uow.flush()
                await refill(uow, cohort, now)
                await tell_changes(uow, cohort, now, before,
                                   why="after a member came back" if present else
                                   "after a member left the channel", but=member.id)
            await uow.commit()
        if self._on_change is not None:
            self._on_change()

    def directory(self, platform: str) -> Directory:
        return self._directories.get(platform) or NullDirectory()

    async def handle(self, inv: Invocation) -> list[Reply]:
        # Each person's commands one after the other, as they came (see bot/service/turns.py).
        async with self.turns.turn(inv.user):
            return await self._handle(inv)

    async def _handle(self, inv: Invocation) -> list[Reply]:
        platform = inv.user.platform
        word = self.policy.prefix_for(platform)
        if not self.limits.commands.take((inv.tenant, inv.user), self._clock.now()):
            metrics.COMMANDS.labels(platform, REFUSED).inc()
            return [error_reply("You are sending commands faster than I can take them, so I "
                                "did not act on that one. Wait a minute, then try again.",
                                None)]
        try:
            if not storable(inv.text):
                raise UsageError("That message holds a character I cannot keep (a NUL, or "
                                 "half of a broken one); please type it again.",
                                 usage=f"{word} help")
            parsed = parse(inv.text, platform=platform, word=word)
        except UsageError as e:
            metrics.COMMANDS.labels(platform, REFUSED).inc()
            message = e.message
            if isinstance(e, CohortNameError):
                async with self._uow() as uow:
                    message += await self._cohort_hint(uow, inv, e.name)
            return [error_reply(message, e.usage, withdraw=e.near_secret)]
        except Exception:
            ref = secrets.token_hex(4)
            metrics.COMMANDS.labels(platform, ERROR).inc()
            log.exception("unexpected error reading a command ref=%s", ref, extra={"ref": ref})
            return [error_reply(f"Something went wrong on our side (ref {ref}). Nothing was "
                                "changed; please try again later.", None)]
        if parsed.spec.secret and inv.channel is not None and inv.seen_by_channel:
            # Nothing is run or stored: the whole channel saw who typed it.
            metrics.COMMANDS.labels(platform, REFUSED).inc()
            return [Reply(message=Message.of(
                f"Everyone in the channel can see that message, so I did not act on it. Send "
                f"it to me in a direct message instead: {word} {parsed.spec.name} …"),
                private=True, direct=True, withdraw=True)]
        if parsed.spec.secret and inv.kept:
            # Nothing is run or stored: the message stays under the caller's name.
            metrics.COMMANDS.labels(platform, REFUSED).inc()
            return [Reply(message=Message.of(
                "Messages to me stay in this conversation under your name, so I did not act "
                f"on that one. Use the command instead, which leaves nothing behind: "
                f"{word} {parsed.spec.name} …"), private=True, withdraw=True)]
        # A command tied to an anonymous question asks for its message to be withdrawn
        # whatever the outcome: the message itself would tie its sender to the question.
        secret = parsed.spec.secret
        started = time.perf_counter()
        guard: str | None = None
        try:
            if secret and inv.event_id is not None:
                guard = await self._guard(inv.event_id)
                if guard is None:
                    metrics.COMMANDS.labels(platform, DUPLICATE).inc()
                    return []
            async with self._uow() as uow:
                if not secret and inv.event_id is not None and not await uow.seen(
                        await self.keys.event(uow, self._clock.now(), inv.event_id),
                        self._clock.now()):
                    metrics.COMMANDS.labels(platform, DUPLICATE).inc()
                    return []  # a platform redelivered an event we already handled
                ctx = await self._context(uow, inv, parsed)
                reply = await HANDLERS[type(parsed.command)](ctx, parsed.command)
                await uow.commit()
                changed = uow.schedule_changed
            await ctx.tidings.deliver(self._messengers)
            if ctx.erased:
                await self._uow.checkpoint()
        except UserError as e:
            metrics.COMMANDS.labels(platform, REFUSED).inc()
            return [error_reply(e.message, e.usage or parsed.spec.usage(word), withdraw=secret)]
        except Exception as e:
            ref = secrets.token_hex(4)
            if guard is not None:
                await self._unguard(guard)
            if self._uow.unavailable(e):
                metrics.COMMANDS.labels(platform, UNAVAILABLE).inc()
                log.warning("database unavailable ref=%s command=%r (%s)", ref,
                            parsed.spec.name, type(e).__name__, extra={"ref": ref})
                return [error_reply(f"The bot is temporarily unavailable (ref {ref}). Nothing "
                                    "was changed; please try again in a minute.", None,
                                    withdraw=secret)]
            metrics.COMMANDS.labels(platform, ERROR).inc()
            log.exception("unexpected error ref=%s command=%r", ref, parsed.spec.name,
                          extra={"ref": ref})
            return [error_reply(f"Something went wrong on our side (ref {ref}). Nothing was "
                                "changed; please try again later.", None, withdraw=secret)]
        metrics.COMMANDS.labels(platform, OK).inc()
        log.debug("handled %r in %.1f ms", parsed.spec.name, (time.perf_counter() - started) * 1e3)
        if changed and self._on_change is not None:
            self._on_change()  # (a command that only reads leaves the scheduler alone)
        public = isinstance(parsed.command, c.CreateCohort | c.LinkCohort) and inv.channel
        return [Reply(message=reply, private=not public, fleeting=secret, withdraw=secret,
                      shareable=parsed.spec.shareable)]

    async def _guard(self, event_id: str) -> str | None:
        """Record a secret command's event, to drop its redeliveries, in a transaction of its
        own (none shared with the question) and only as a keyed hash at the hour: nothing a
        database reader can match to the platform's event or to the question's instant.
        The guard, or None if the event was seen before."""
        now = self._clock.now()
        async with self._uow() as uow:
            guard = await self.keys.event(uow, now, event_id)
            new = await uow.seen(guard, now.replace(minute=0, second=0, microsecond=0))
            await uow.commit()
        return guard if new else None

    async def _unguard(self, guard: str) -> None:
        """The command failed: let a redelivery run it."""
        try:
            async with self._uow() as uow:
                await uow.unsee(guard)
                await uow.commit()
        except Exception as e:  # noqa: BLE001 - the failure itself is being reported
            log.warning("could not release a redelivery guard (%s)", type(e).__name__)

    async def _context(self, uow: UnitOfWork, inv: Invocation, parsed: Parsed) -> Ctx:
        directory = self.directory(inv.user.platform)
        spec = parsed.spec
        ctx = Ctx(uow=uow, units=self._uow, keys=self.keys, limits=self.limits, inv=inv,
                  now=self._clock.now(),
                  policy=self.policy,
                  directory=directory, usage=spec.usage(self.policy.prefix_for(inv.user.platform)),
                  tidings=self.links.batch())
        ctx.cohort_, ctx.member_, caller = await self._cohort(uow, inv, parsed)
        if ctx.cohort_ is not None:  # (the caller's settings came along)
            ctx.caller = Known(caller)
        ctx.role = await self._role(inv, ctx.cohort_, ctx.member_, directory)
        if spec.needs_cohort and ctx.cohort_ is None:
            raise UserError(await self._no_cohort(uow, inv), usage=ctx.usage)
        self._authorize(ctx, parsed)
        return ctx

    async def _cohort(self, uow: UnitOfWork, inv: Invocation, parsed: Parsed
                      ) -> tuple[Cohort | None, Member | None, Person | None]:
        """The cohort the command is about, the caller's membership of it, and (when there
        is a cohort) the caller's own settings. Only the caller's tenant is looked in: for
        anyone else, another tenant's cohorts do not exist."""
        if parsed.cohort is not None:
            found = await uow.cohort_and_caller(inv.user, tenant=inv.tenant, slug=parsed.cohort)
            if found[0] is None:
                raise UserError(f"No cohort has the id '{parsed.cohort[:40]}'."
                                + await self._cohort_hint(uow, inv, parsed.cohort))
            return found
        if inv.channel is not None:
            return await uow.cohort_and_caller(inv.user, tenant=inv.tenant,
                                               platform=inv.channel.platform,
                                               channel_id=inv.channel.id)
        mine = [(co, m) for co, m in await uow.memberships(inv.user, inv.tenant)
                if co.status != ARCHIVED]
        if len({co.id for co, _ in mine}) == 1:
            return await uow.cohort_and_caller(inv.user, id=mine[0][0].id)
        return None, None, None

    async def _cohort_hint(self, uow: UnitOfWork, inv: Invocation, typed: str) -> str:
        """" Did you mean --cohort peer-a?" for what the caller typed, from the cohorts of
        the caller's own tenant they are in (all of the tenant's, for its admins); else ""."""
        if self.policy.is_admin(inv.user, inv.tenant):
            known = await uow.find(Cohort, tenant=inv.tenant)
        else:
            known = [co for co, _ in await uow.memberships(inv.user, inv.tenant)]
        by_word: dict[str, str] = {}
        for co in known:
            if co.status != ARCHIVED and co.tenant == inv.tenant:
                by_word[co.slug] = co.slug
                by_word[co.name.lower()] = co.slug
        near = difflib.get_close_matches(typed.lower()[:60], list(by_word), n=1, cutoff=0.6)
        return f" Did you mean --cohort {by_word[near[0]]}?" if near else ""

    async def _no_cohort(self, uow: UnitOfWork, inv: Invocation) -> str:
        if inv.channel is not None:
            return ("This channel is not linked to a cohort. An admin can create one here with "
                    f"'{self.policy.prefix_for(inv.user.platform)} cohort create <name>'.")
        mine = [(co, m) for co, m in await uow.memberships(inv.user, inv.tenant)
                if co.status != ARCHIVED]
        if not mine:
            return "You are not in any cohort yet."
        slugs = sorted({co.slug for co, _ in mine})
        word = self.policy.prefix_for(inv.user.platform)
        return (f"You are in several cohorts ({', '.join(slugs)}): say which, e.g. "
                f"{word} --cohort {slugs[0]} next.")

    async def _role(self, inv: Invocation, cohort: Cohort | None, member: Member | None,
                    directory: Directory) -> Role:
        # Platform rights count over the cohort's own place (a Matrix power level in its
        # room), or, for a command about no cohort, over the place it was typed in.
        place = cohort.channel if cohort is not None else inv.channel
        if await admin_over(self.policy, directory, inv, place):
            return Role.ADMIN
        if member is None:
            return Role.ANYONE
        return Role.FACILITATOR if member.is_facilitator else Role.MEMBER

    def _authorize(self, ctx: Ctx, parsed: Parsed) -> None:
        spec = parsed.spec
        cohort = ctx.cohort_
        if cohort is not None and cohort.status == ARCHIVED and spec.needs_cohort and \
                ctx.role < Role.ADMIN:
            raise NotAllowed(f"{cohort.name} is archived.")
        member = ctx.member_
        if member is not None and member.left_at is not None and cohort is not None and \
                spec.role >= Role.MEMBER and ctx.role < Role.ADMIN:
            raise NotAllowed(f"You left the channel of {cohort.name}, so its commands wait "
                             "until you are back in it.")
        if ctx.role >= spec.role:
            return
        name = cohort.name if cohort else "this cohort"
        what = f"'{spec.name}'"
        if spec.role == Role.ADMIN:
            raise NotAllowed(f"Only an admin can use {what}.")
        if spec.role == Role.FACILITATOR:
            raise NotAllowed(f"Only a facilitator of {name} can use {what}.")
        raise NotAllowed(f"Only members of {name} can use {what}.")
