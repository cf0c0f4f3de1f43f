"""Who is told when the rotation moves under them: a member leaves or is removed, and the
roles planned (or announced) for the coming sessions change hands.

A snapshot of the coming sessions' roles is taken before the change and compared after it;
each member whose own roles changed gets one private line per session. Nothing else is said,
so nobody learns anything about anyone but themselves and the person who left.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from bot.chat.message import Message, When, lines
from bot.domain.model import Assignment, Cohort, Member, Session
from bot.service.cohort_state import casts, load_roster, upcoming
from bot.service.context import queue_message
from bot.service.ports import UnitOfWork

#: How many coming sessions a reshuffle is looked for in (about the span people plan for).
LOOKAHEAD = 4

Roles = dict[int, dict[str, int]]  # session id -> role -> member id


async def snapshot(uow: UnitOfWork, cohort: Cohort, now: datetime) -> Roles:
    sessions = await upcoming(uow, cohort, now, LOOKAHEAD)
    return {cast.session.id: dict(cast.roles) for cast in await casts(uow, cohort, sessions)}


async def refill(uow: UnitOfWork, cohort: Cohort, now: datetime) -> None:
    """Announced sessions whose role holder is no longer in the rotation (removed, or out of
    the channel) give that role to a present member who holds none, in queue order. (A
    holder who is only away keeps it: they were told to hand it on by a swap.)"""
    team = await load_roster(uow, cohort)
    in_rotation = {m.id for m in team.members if m.left_at is None}
    for session in await upcoming(uow, cohort, now, LOOKAHEAD):
        if not session.announced:
            continue  # (a preview follows the rotation by itself)
        present = [m.id for m in team.present(session, cohort.zone)]
        rows = {r.role: r for r in await uow.find(Assignment, session_id=session.id)}
        for role in cohort.roles:  # (in priority order: the first roles are filled first)
            row = rows.get(role)
            if row is not None and row.member_id in in_rotation:
                continue
            held = {r.member_id for r in rows.values() if r.member_id in in_rotation}
            free = [m for m in present if m not in held]
            if not free:
                if row is not None:
                    await uow.delete(row)
                    del rows[role]
                continue
            if row is None:
                rows[role] = Assignment(session_id=session.id, role=role, member_id=free[0],
                                        source="reshuffle")
                uow.add(rows[role])
            else:
                row.member_id, row.source = free[0], "reshuffle"
    await uow.flush()


async def tell_changes(uow: UnitOfWork, cohort: Cohort, now: datetime, before: Roles,
                       why: str, but: int | None = None) -> int:
    """DM each member whose roles in the snapshotted sessions changed (but member id `but`,
    whose own move it was); returns how many were told. `why` completes "Roles in <cohort>
    changed …"."""
    after = await snapshot(uow, cohort, now)
    sessions = {s.id: s for s in await upcoming(uow, cohort, now, LOOKAHEAD)}
    changes: dict[int, list[Message]] = {}
    for sid, roles in after.items():
        old = before.get(sid)
        session: Session | None = sessions.get(sid)
        if old is None or session is None:
            continue
        people = set(roles.values()) | set(old.values())
        for mid in people:
            was = sorted(r for r, m in old.items() if m == mid)
            now_ = sorted(r for r, m in roles.items() if m == mid)
            if was != now_:
                changes.setdefault(mid, []).append(Message.of(
                    "• ", When(session.starts_at, cohort.zone),
                    f": {', '.join(now_) or 'consultant'} (was {', '.join(was) or 'consultant'})"))
    told = 0
    for mid, items in changes.items():
        member = await uow.get(Member, mid)
        if member is None or member.id == but or not member.is_member \
                or member.left_at is not None:
            continue
        await queue_message(uow, lines([Message.of(f"Roles in {cohort.name} changed {why}:"),
                                        *items]),
                            now=now, cohort=cohort, key=f"reshuffle:{uuid.uuid4().hex}",
                            user=member.user)
        told += 1
    return told
