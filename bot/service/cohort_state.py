"""Reading a cohort's state: its sessions, who is away, and who holds which role.

Sessions of the schedule are materialised lazily as rows (so cancellations, moves, role
assignments and check-ins have something to point at); previews beyond the announced sessions
are computed with the rotation rules, never stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.chat.commands import DayRef
from bot.domain import rotation
from bot.domain.errors import UserError
from bot.domain.model import (
    CANCELLED,
    SCHEDULED,
    Absence,
    Assignment,
    Cohort,
    Member,
    Notification,
    Session,
)
from bot.domain.planning import PROMPT
from bot.domain.schedule import Schedule, occurrences
from bot.service.ports import UnitOfWork

MAX_LOOKAHEAD = timedelta(days=400)


def local_day(instant: datetime, zone: str) -> date:
    return instant.astimezone(ZoneInfo(zone)).date()


async def ensure_sessions(uow: UnitOfWork, cohort: Cohort, now: datetime,
                          until: datetime) -> list[Session]:
    """Create the schedule's sessions in [now, until) that have no row yet; returns every
    session that starts in the window or was scheduled to (cancelled ones too), unordered."""
    found = await uow.sessions_between(cohort.id, now, until, include_cancelled=True,
                                       or_slot=True)
    if cohort.schedule is None:
        return found
    sched = Schedule.from_json(cohort.schedule)
    known = {s.slot for s in found}
    duration = int(sched.duration.total_seconds() // 60)
    new = [Session(cohort_id=cohort.id, starts_at=slot, slot=slot, duration_min=duration)
           for slot in occurrences(sched, after=now, before=until) if slot not in known]
    if new:
        for session in new:
            uow.add(session)
        await uow.flush()
    return found + new


async def upcoming(
    uow: UnitOfWork, cohort: Cohort, now: datetime, count: int, *, include_cancelled: bool = False
) -> list[Session]:
    """The next `count` sessions that have not started, materialising them as needed."""
    span = timedelta(days=35)
    while True:
        until = now + span
        found = sorted((s for s in await ensure_sessions(uow, cohort, now, until)
                        if now <= s.starts_at < until
                        and (include_cancelled or s.status != CANCELLED)),
                       key=lambda s: (s.starts_at, s.id))
        if len([s for s in found if s.status == SCHEDULED]) >= count or span >= MAX_LOOKAHEAD:
            out: list[Session] = []
            scheduled = 0
            for s in found:
                if scheduled >= count:
                    break
                out.append(s)
                scheduled += s.status == SCHEDULED
            return out
        span *= 3


async def next_session(uow: UnitOfWork, cohort: Cohort, now: datetime) -> Session | None:
    found = await upcoming(uow, cohort, now, 1)
    return found[0] if found else None


async def queue_prompt(uow: UnitOfWork, cohort: Cohort, session: Session, text: str) -> None:
    """Queue a prompt to be posted when `session` starts."""
    await uow.add_notification(Notification(
        key=f"prompt:{session.id}:{uuid.uuid4().hex[:12]}", kind=PROMPT, cohort_id=cohort.id,
        session_id=session.id, due_at=session.starts_at,
        stale_at=session.starts_at + timedelta(minutes=session.duration_min),
        payload={"text": text},
    ))


def attach_prompt(prompt: Notification, session: Session) -> None:
    """Carry a queued prompt over to `session` (its own is gone, or passed in a pause)."""
    prompt.session_id, prompt.due_at = session.id, session.starts_at
    prompt.stale_at = session.starts_at + timedelta(minutes=session.duration_min)


async def current_or_next(uow: UnitOfWork, cohort: Cohort, now: datetime) -> Session | None:
    """A session under way (started, not over), else the next one."""
    running = await uow.sessions_between(cohort.id, now - timedelta(hours=12), now)
    for s in reversed(running):
        if s.starts_at + timedelta(minutes=s.duration_min) > now:
            return s
    return await next_session(uow, cohort, now)


def day_span(when: DayRef, now: datetime, zone: str) -> tuple[date, date]:
    """The days a reference that is not `next` names, in the cohort's `zone`."""
    span = when.span(local_day(now, zone))
    if span is not None:
        return span
    assert when.first is not None and when.last is not None
    return when.first, when.last


async def resolve_day(uow: UnitOfWork, cohort: Cohort, now: datetime, when: DayRef) -> Session:
    if when.next:
        session = await next_session(uow, cohort, now)
        if session is None:
            raise UserError(f"{cohort.name} has no upcoming session.")
        return session
    first, last = day_span(when, now, cohort.zone)
    zone = ZoneInfo(cohort.zone)
    start = datetime.combine(first, datetime.min.time(), zone)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone)
    if end > now:
        await ensure_sessions(uow, cohort, now, end)
    found = await uow.sessions_between(cohort.id, start, end)
    if found and all(f.starts_at <= now for f in found):
        # (assigning a role to, cancelling or moving a session that took place changes
        # nothing anyone could still act on, and would rewrite the rotation's history)
        raise UserError(f"The session on {first.isoformat()} has already started or taken "
                        "place.")
    found = [f for f in found if f.starts_at > now]
    if not found:
        shown = first.isoformat() if first == last else f"{first} to {last}"
        raise UserError(f"{cohort.name} has no session on {shown}.")
    return found[0]


async def roster(uow: UnitOfWork, cohort: Cohort) -> list[Member]:
    """Members in the rotation, in queue (join) order."""
    members = await uow.find(Member, cohort_id=cohort.id, is_member=True)
    return sorted(members, key=lambda m: (m.joined_at, m.id))


def is_away(absences: list[Absence], day: date) -> bool:
    iso = day.isoformat()
    return any(a.first_day <= iso <= a.last_day for a in absences)


def present_at(members: list[Member], absences: dict[int, list[Absence]], session: Session,
               zone: str) -> list[Member]:
    day = local_day(session.starts_at, zone)
    # (a member who left the cohort's channel is away until they are back)
    return [m for m in members
            if m.left_at is None and not is_away(absences.get(m.id, []), day)]


def _past_session(session: Session, roles: dict[str, int]) -> rotation.PastSession:
    """An announced session as the rotation rules see it."""
    roster_ = session.roster or {}
    return rotation.PastSession(
        assignments={role: str(member) for role, member in roles.items()},
        members=frozenset(str(i) for i in roster_.get("members", [])),
        present=frozenset(str(i) for i in roster_.get("present", [])),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Cast:
    """Who holds which role in a session; `planned` when not fixed yet (a preview)."""

    session: Session
    roles: dict[str, int]  # role -> member id
    reasons: dict[str, str]
    present: frozenset[int]
    planned: bool

    def role_of(self, member_id: int) -> list[str]:
        return [r for r, m in self.roles.items() if m == member_id]


@dataclass(frozen=True, kw_only=True, slots=True)
class Roster:
    """The rotation's members (queue order) and their absences, loaded once per use."""

    members: list[Member]
    absences: dict[int, list[Absence]]

    def present(self, session: Session, zone: str) -> list[Member]:
        return present_at(self.members, self.absences, session, zone)


async def load_roster(uow: UnitOfWork, cohort: Cohort) -> Roster:
    members: dict[int, Member] = {}
    absences: dict[int, list[Absence]] = {}
    for member, absence in await uow.roster_rows(cohort.id):  # (in queue order)
        members[member.id] = member
        absences.setdefault(member.id, []).extend([absence] if absence else [])
    return Roster(members=list(members.values()), absences=absences)


async def casts(uow: UnitOfWork, cohort: Cohort, sessions: list[Session],
                team: Roster | None = None) -> list[Cast]:
    """Stored roles for announced sessions; a rotation preview for the others, in order."""
    team = team or await load_roster(uow, cohort)
    members, absences = team.members, team.absences
    queue = [str(m.id) for m in members]
    out: list[Cast] = []
    scheduled = [s for s in sessions if s.status == SCHEDULED]
    if not scheduled:
        return out
    # The rotation's history (every announced session so far) is only needed for a preview:
    # a reminder or `next` for an announced session reads its stored roles and nothing more.
    # Either way, one read: the sessions' stored roles, and the history's with them.
    previews = any(not s.announced for s in scheduled)
    wanted = {s.id for s in scheduled}
    rows = await uow.sessions_with_roles(cohort.id, sorted(wanted),
                                         scheduled[0].starts_at if previews else None)
    by_session: dict[int, dict[str, int]] = {}
    past: dict[int, Session] = {}
    for session, a in rows:
        if session.id not in wanted:
            past[session.id] = session
        if a is not None:
            by_session.setdefault(a.session_id, {})[a.role] = a.member_id
    hist = [_past_session(s, by_session.get(s.id, {})) for s in past.values() if s.roster]
    for s in scheduled:
        present = present_at(members, absences, s, cohort.zone)
        present_ids = frozenset(m.id for m in present)
        if s.announced or s.id in by_session:
            roles = by_session.get(s.id, {})
            hist.append(rotation.PastSession(
                assignments={r: str(m) for r, m in roles.items()},
                members=frozenset(queue),
                present=frozenset(str(i) for i in present_ids),
            ))
            out.append(Cast(session=s, roles=roles, reasons={}, present=present_ids,
                            planned=False))
            continue
        result = rotation.assign_roles(
            roles=cohort.roles, queue=queue, present=[str(i) for i in present_ids], history=hist
        )
        roles = {ra.role: int(ra.member) for ra in result.roles if ra.member is not None}
        hist.append(rotation.PastSession(
            assignments={r: str(m) for r, m in roles.items()},
            members=frozenset(queue), present=frozenset(str(i) for i in present_ids),
        ))
        out.append(Cast(session=s, roles=roles, present=present_ids, planned=True,
                        reasons={ra.role: ra.reason for ra in result.roles}))
    return out


async def fix_cast(uow: UnitOfWork, cohort: Cohort, session: Session,
                   team: Roster | None = None) -> Cast:
    """Store the session's roles (if not stored yet) so swaps and overrides have a base."""
    team = team or await load_roster(uow, cohort)
    [cast] = await casts(uow, cohort, [session], team)
    if not cast.planned:
        return cast
    for role, member_id in cast.roles.items():
        uow.add(Assignment(session_id=session.id, role=role, member_id=member_id))
    session.roster = {"members": [m.id for m in team.members], "present": sorted(cast.present)}
    session.announced = True
    await uow.flush()
    return Cast(session=session, roles=cast.roles, reasons=cast.reasons, present=cast.present,
                planned=False)
