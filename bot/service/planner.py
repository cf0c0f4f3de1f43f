"""Materialise what the database says should happen into due notifications.

For every active cohort with a schedule: the sessions of the next horizon get rows, and every
session in the horizon gets its notification rows (keyed, so planning twice changes nothing).
Run after every change to a cohort and periodically as the horizon moves on.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.domain.cohort_settings import CohortSettings
from bot.domain.model import (
    ACTIVE,
    ARCHIVED,
    SCHEDULED,
    Action,
    ActionReview,
    Cohort,
    Notification,
    Session,
)
from bot.domain.planning import PlannedNotice, session_notices
from bot.domain.schedule import Schedule, occurrences
from bot.service.api import Policy
from bot.service.cohort_state import ensure_sessions
from bot.service.ports import Clock, NewNotification, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

PLAN_CHUNK = 500  # cohorts per transaction


async def plan_session(uow: UnitOfWork, cohort: Cohort, session: Session, now: datetime,
                       horizon_end: datetime) -> int:
    """Upsert the notifications of one session that fall due before `horizon_end`."""
    if cohort.status != ACTIVE or session.status != SCHEDULED:
        return 0
    planned = 0
    for notice in _notices(cohort, session_id=session.id, rev=session.rev,
                           starts_at=session.starts_at, minutes=session.duration_min,
                           now=now, horizon_end=horizon_end):
        planned += await uow.add_notification(Notification(
            key=notice.key, kind=notice.kind, cohort_id=cohort.id, session_id=session.id,
            due_at=notice.due_at, stale_at=notice.stale_at, payload=notice.payload,
        ))
    return planned


async def plan_cohort(uow: UnitOfWork, cohort: Cohort, now: datetime, policy: Policy) -> int:
    if cohort.status != ACTIVE:
        return 0
    end = now + policy.horizon
    await ensure_sessions(uow, cohort, now, end)
    planned = 0
    # Include sessions that started already: their summary and question batch may be pending.
    for session in await uow.sessions_between(cohort.id, now - timedelta(days=1), end):
        planned += await plan_session(uow, cohort, session, now, end)
    return planned


async def plan_many(uow: UnitOfWork, cohorts: list[Cohort], now: datetime,
                    policy: Policy) -> int:
    """Materialise sessions and insert missing notifications for many cohorts at once."""
    end = now + policy.horizon
    look_back = now - timedelta(days=1)  # a session under way may still owe its summary
    by_id = {c.id: c for c in cohorts if c.status == ACTIVE and c.schedule}
    known = await uow.sessions_window(list(by_id), look_back, end)
    slots_known = {(s.cohort_id, s.slot) for s in known}
    new: list[tuple[int, datetime, int]] = []
    for cohort in by_id.values():
        sched = Schedule.from_json(cohort.schedule or {})
        duration = int(sched.duration.total_seconds() // 60)
        new += [(cohort.id, slot, duration)
                for slot in occurrences(sched, after=now, before=end)
                if (cohort.id, slot) not in slots_known]
    new_ids = await uow.insert_sessions(new)
    # New sessions as plain values: (cohort, id, start, minutes, rev), like the known ones.
    sessions = [(s.cohort_id, s.id, s.starts_at, s.duration_min, s.rev) for s in known
                if s.status == SCHEDULED]
    sessions += [(cid, sid, slot, minutes, 0) for (cid, slot, minutes), sid in zip(new, new_ids,
                                                                                    strict=True)]
    planned: list[NewNotification] = []
    for cohort_id, session_id, starts_at, minutes, rev in sessions:
        if not look_back <= starts_at < end:
            continue
        cohort = by_id[cohort_id]
        planned += [(cohort_id, session_id, notice) for notice in _notices(
            cohort, session_id=session_id, rev=rev, starts_at=starts_at, minutes=minutes,
            now=now, horizon_end=end)]
    # Keys that exist already are skipped by the insert itself (ON CONFLICT DO NOTHING):
    # cheaper than looking them up first, and race-free between instances.
    return await uow.insert_notifications(planned)


def _notices(cohort: Cohort, *, session_id: int, rev: int, starts_at: datetime, minutes: int,
             now: datetime, horizon_end: datetime) -> list[PlannedNotice]:
    settings = CohortSettings.from_json(cohort.settings)
    return [
        notice
        for notice in session_notices(
            session_id=session_id, rev=rev, starts_at=starts_at,
            duration=timedelta(minutes=minutes), settings=settings,
            reminder_offsets_min=cohort.reminder_offsets,
        )
        # Something that fell due before it was planned (a session added an hour before it
        # starts) is not news to anyone: only rows planned in time may go out late.
        if now <= notice.due_at < horizon_end
    ]


class Planner:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: Policy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def plan_all(self) -> int:
        """Extend every active cohort's horizon; returns how many notifications were planned.

        Set-based, so that 10,000 cohorts cost a handful of queries per chunk rather than a
        handful per cohort: existing sessions are read in bulk and the inserts skip what
        exists. (Changes to one cohort re-plan it with `plan_cohort`, which also
        moves or revives rows.)"""
        now = self._clock.now()
        async with self._uow() as uow:
            ids = [c.id for c in await uow.find(Cohort, status=ACTIVE) if c.schedule]
        planned = 0
        for start in range(0, len(ids), PLAN_CHUNK):
            async with self._uow() as uow:
                cohorts = await uow.find(Cohort, id=tuple(ids[start:start + PLAN_CHUNK]))
                planned += await plan_many(uow, cohorts, now, self._policy)
                await uow.commit()
        return planned

    async def purge(self) -> int:
        """Delete actions and check-in notes of cohorts archived longer than the retention."""
        now = self._clock.now()
        removed = 0
        async with self._uow() as uow:
            for cohort in await uow.find(Cohort, status=ARCHIVED):
                if cohort.archived_at and cohort.archived_at + self._policy.retention <= now:
                    actions = await uow.find(Action, cohort_id=cohort.id)
                    if actions:
                        await uow.delete_where(ActionReview, action_id=tuple(a.id for a in actions))
                        removed += await uow.delete_where(Action, cohort_id=cohort.id)
            await uow.commit()
        if removed:
            log.info("purged %d actions of archived cohorts", removed)
        return removed
