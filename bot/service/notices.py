"""Firing a due notification: turn it into outbox messages, with the state change it implies.

Runs inside the dispatcher's transaction, so "roles fixed + announcement queued", "actions
closed + summary queued" and "questions numbered + posts queued" each happen all or not at all.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.chat.message import Action as Button
from bot.chat.message import Mention, Message, Strong, Text, When, card, lines, plural
from bot.chat.phases import phase_message
from bot.domain import planning as p
from bot.domain.cohort_settings import CohortSettings
from bot.domain.model import (
    ACTIVE,
    PAUSED,
    SCHEDULED,
    Action,
    ActionReview,
    Cohort,
    Member,
    Notification,
    Session,
)
from bot.domain.refs import UserRef
from bot.domain.timeparse import format_duration
from bot.service.api import Policy
from bot.service.authors import Tidings
from bot.service.checkins import ANSWER_WORDS, open_actions, tally
from bot.service.cohort_state import attach_prompt, fix_cast, load_roster, next_session
from bot.service.context import queue_message, zone_of
from bot.service.ports import Directory, UnitOfWork
from bot.service.questions import scheduled_release

log = logging.getLogger(__name__)



@dataclass(kw_only=True)
class Firing:
    uow: UnitOfWork
    notice: Notification
    cohort: Cohort
    session: Session | None
    now: datetime
    late: bool
    policy: Policy
    directories: dict[str, Directory]
    tidings: Tidings | None = None

    async def to_channel(self, message: Message) -> None:
        await queue_message(self.uow, message, now=self.now, cohort=self.cohort,
                            key=self.notice.key, late=self.late,
                            stale_after=self.notice.stale_at - self.now)

    async def to_user(self, user: UserRef, message: Message) -> None:
        await queue_message(self.uow, message, now=self.now, cohort=self.cohort, user=user,
                            key=self.notice.key, late=self.late,
                            stale_after=self.notice.stale_at - self.now)

    async def zone(self, user: UserRef) -> str:
        return await zone_of(self.uow, self.directories.get(user.platform), user,
                             self.cohort.zone, self.cohort.tenant)

    def cmd(self, text: str) -> str:
        platform = self.cohort.platform or "terminal"
        return f"{self.policy.prefix_for(platform)} {text}"


#: Pings per member and session cycle: the role announcement (role holders), the check-in and
#: its nudge (members with open actions) and the last reminder all count. A member who has
#: had this many is named in the last reminder without being notified, and gets no nudge.
PINGS_PER_CYCLE = 2


def _cast_lines(roles: dict[str, int], by_id: dict[int, Member],
                quiet: frozenset[int] = frozenset()) -> list[Message]:
    out: list[Message] = []
    for role, member_id in roles.items():
        member = by_id.get(member_id)
        if member is not None:
            out.append(Message.of(f"{role}: ", Mention(member.user, quiet=member_id in quiet)))
    return out


def _pinged(f: Firing, member_ids: Iterable[int]) -> None:
    """Note on the notification being fired whom it notified (member ids)."""
    f.notice.payload = {**f.notice.payload, "to": sorted(set(member_ids))}


async def _pings_so_far(f: Firing) -> Counter[int]:
    """How often each member was notified about this session already."""
    assert f.session is not None
    counts: Counter[int] = Counter()
    for kind in (p.ANNOUNCE, p.CHECKIN, p.NUDGE):
        for n in await f.uow.find(Notification, session_id=f.session.id, kind=kind,
                                  status="fired"):
            counts.update(int(i) for i in n.payload.get("to", ()))
    return counts


async def announce(f: Firing) -> None:
    assert f.session is not None
    team = await load_roster(f.uow, f.cohort)
    cast = await fix_cast(f.uow, f.cohort, f.session, team)
    by_id = {m.id: m for m in team.members}
    away = len(team.members) - len(cast.present)
    _pinged(f, (i for i in cast.roles.values() if i in by_id))
    await f.to_channel(card(
        f"Roles for {f.cohort.name}",
        Message.of("For the session on ", When(f.session.starts_at, f.cohort.zone), ":"),
        _cast_lines(cast.roles, by_id),
        "Everyone else consults." + (f" Away: {away}." if away else ""),
        note=f"Need to swap? {f.cmd('swap <role> @member')}",
    ))


async def reminder(f: Firing) -> None:
    assert f.session is not None
    settings = CohortSettings.from_json(f.cohort.settings)
    team = await load_roster(f.uow, f.cohort)
    present = team.present(f.session, f.cohort.zone)
    # Once a reminder names the roles they are binding, even if the announcement was missed.
    cast = dict((await fix_cast(f.uow, f.cohort, f.session, team)).roles)
    by_id = {m.id: m for m in team.members}
    offset = int(f.notice.payload.get("offset_min", 0))
    title = f"Reminder: {f.cohort.name} meets in {format_duration(timedelta(minutes=offset))}"
    when = Message.of(When(f.session.starts_at, f.cohort.zone), ".")
    # Pings per member and session cycle: the announcement (role holders), then only the
    # last reminder — in the channel, or by DM with `reminders-to dm|both`. Earlier reminders
    # are short and mention nobody.
    last = offset <= min(f.cohort.reminder_offsets or [offset])
    ping_channel = last and settings.reminders_to == "channel"
    if settings.reminders_to in ("channel", "both") and not ping_channel:
        await f.to_channel(card(title, when, note=f"{f.cmd('next')} shows your role.",
                                one_line=True))
    # Whoever has heard of this session twice already is named, not notified again.
    enough = frozenset(i for i, n in (await _pings_so_far(f)).items() if n >= PINGS_PER_CYCLE)
    if ping_channel:
        roles = _cast_lines(cast, by_id, enough)
        consulting = [m for m in present if m.id not in cast.values()]
        if consulting:
            parts: list[Text | Mention] = [Text("consulting: ")]
            for i, m in enumerate(consulting):
                parts += [Text(", ")] if i else []
                parts.append(Mention(m.user, quiet=m.id in enough))
            roles.append(Message(tuple(parts)))
        await f.to_channel(card(title, when, roles, one_line=True))
    if settings.reminders_to in ("dm", "both") and last:
        for m in present:
            if m.id in enough:
                continue
            held = [r for r, mid in cast.items() if mid == m.id]
            zone = await f.zone(m.user)
            await f.to_user(m.user, card(
                title, Message.of(When(f.session.starts_at, zone), "."),
                f"Your role: {', '.join(held) if held else 'consultant'}.", one_line=True))


async def checkin(f: Firing, *, nudge: bool = False) -> None:
    assert f.session is not None
    present = (await load_roster(f.uow, f.cohort)).present(f.session, f.cohort.zone)
    pinged = await _pings_so_far(f) if nudge else Counter[int]()
    told: list[int] = []
    for m in present:
        actions = [a for a in await open_actions(f.uow, m.id) if a.created_at < f.session.starts_at]
        if not actions or (nudge and all(a.answer for a in actions)):
            continue
        if pinged[m.id] >= PINGS_PER_CYCLE:
            continue  # (notified twice already: the check-in stays open all the same)
        told.append(m.id)
        form = Message((), (Button("Check in", "checkin"),))
        if nudge:  # one short line: the check-in itself came a day ago
            await f.to_user(m.user, Message.of(
                f"Nudge: your check-in for {f.cohort.name} is still open: "
                f"{f.cmd('checkin')}.") + form)
            continue
        zone = await f.zone(m.user)
        await f.to_user(m.user, card(
            f"Check-in time ({f.cohort.name})",
            Message.of("Before the session on ", When(f.session.starts_at, zone),
                       ". How did your actions go?"),
            lines(f"{a.number}. {a.text}" + (f" [{ANSWER_WORDS[a.answer]}]" if a.answer else "")
                  for a in actions),
            note=f"Answer with {f.cmd('action done|partly|notyet|drop <n> [note]')}; you can "
                 "change an answer until the session starts.",
        ) + form)
    _pinged(f, told)


async def nudge(f: Firing) -> None:
    assert f.session is not None
    # One short line reminds of a check-in that went out; if none did (the bot was down
    # too long, or the session was planned later), the check-in itself goes now.
    sent = await f.uow.find(Notification, session_id=f.session.id, kind=p.CHECKIN,
                            status="fired")
    await checkin(f, nudge=bool(sent))


async def summary(f: Firing) -> None:
    assert f.session is not None
    session = f.session
    team = await load_roster(f.uow, f.cohort)
    await fix_cast(f.uow, f.cohort, session, team)  # the session happens: its roles count

    def review(member: Member, a: Action, answer: str) -> None:
        f.uow.add(ActionReview(action_id=a.id, session_id=session.id, answer=answer,
                               note=a.note))
        # Done and dropped actions close; the rest carry over to the next session.
        if answer in ("done", "dropped"):
            a.status = answer
        a.answer, a.note = None, None

    here = {m.id for m in team.present(session, f.cohort.zone)}
    result = await tally(f.uow, team.members, before=session.starts_at, with_notes=True,
                         each=review, away={m.id for m in team.members} - here)
    session.summarised = True
    if not result.total:
        return
    await f.to_channel(card(
        f"Check-in summary for {f.cohort.name}",
        f"{plural(result.total, 'action')} — {result.breakdown()}.",
        *result.shared,
        note="Open actions carry over to the next session."))


async def release(f: Firing) -> None:
    await scheduled_release(f.uow, f.cohort, f.now, key=f.notice.key, late=f.late, cmd=f.cmd,
                            tidings=f.tidings)


async def prompt(f: Firing) -> None:
    await f.to_channel(Message.of(Strong("Prompt: "), Text(str(f.notice.payload.get("text", "")))))


async def phase(f: Firing) -> None:
    session = f.session
    assert session is not None
    if session.phase is None or session.phase_run != f.notice.payload.get("run"):
        return  # the facilitator moved on or ended the session since this was planned
    phases = CohortSettings.from_json(f.cohort.settings).session_phases(session.duration_min)
    index = int(f.notice.payload["phase"])
    session.phase = None if index >= len(phases) else index
    await f.to_channel(phase_message(phases, index, roles=f.cohort.roles,
                                     add_action=f.cmd("action add <text>")))


FIRE: dict[str, Callable[[Firing], Awaitable[None]]] = {
    p.ANNOUNCE: announce,
    p.REMINDER: reminder,
    p.CHECKIN: checkin,
    p.NUDGE: nudge,
    p.SUMMARY: summary,
    p.RELEASE: release,
    p.PROMPT: prompt,
    p.PHASE: phase,
}


async def fire(
    uow: UnitOfWork, notice: Notification, now: datetime, policy: Policy,
    directories: dict[str, Directory], tidings: Tidings | None = None,
) -> bool | None:
    """Fire one claimed notification. Returns False if it was dropped instead, None if it
    waits for a later session. What authors are to be told (a release) goes into `tidings`."""
    cohort = await uow.get(Cohort, notice.cohort_id)
    session = await uow.get(Session, notice.session_id) if notice.session_id else None
    if cohort is not None and cohort.status == PAUSED and notice.kind == p.PROMPT:
        # A prompt is for the group, which a pause does not meet: it waits for the first
        # session after it.
        following = await next_session(uow, cohort, now)
        if following is not None:
            attach_prompt(notice, following)
            return None
    notice.fired_at = now
    if now >= notice.stale_at:
        notice.status = "dropped"
        log.warning("dropped stale notification %s (due %s, now %s)", notice.key,
                    notice.due_at.isoformat(), now.isoformat())
        return False
    if cohort is None or cohort.status != ACTIVE or (
        session is not None and session.status != SCHEDULED
    ):
        notice.status = "void"
        return False
    notice.late = now > notice.due_at + policy.late_grace
    notice.status = "fired"
    await FIRE[notice.kind](Firing(
        uow=uow, notice=notice, cohort=cohort, session=session, now=now, late=notice.late,
        policy=policy, directories=directories, tidings=tidings,
    ))
    if notice.late:
        log.info("sent late notification %s (due %s)", notice.key, notice.due_at.isoformat())
    return True
