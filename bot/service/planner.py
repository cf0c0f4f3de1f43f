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
from bot.domain.planning import session_notices
from bot.service.api import Policy
from bot.service.cohort_state import ensure_sessions
from bot.service.ports import Clock, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)


async def plan_session(uow: UnitOfWork, cohort: Cohort, session: Session, now: datetime,
                       horizon_end: datetime) -> int:
    """Upsert the notifications of one session that fall due before `horizon_end`."""
    if cohort.status != ACTIVE or session.status != SCHEDULED:
        return 0
    settings = CohortSettings.from_json(cohort.settings)
    planned = 0
    for notice in session_notices(
        session_id=session.id, rev=session.rev, starts_at=session.starts_at,
        duration=timedelta(minutes=session.duration_min), settings=settings,
        reminder_offsets_min=cohort.reminder_offsets,
    ):
        # Something that fell due before it was planned (a session added an hour before it
        # starts) is not news to anyone: only rows planned in time may go out late.
        if notice.due_at < now or notice.due_at >= horizon_end:
            continue
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


async def unplan_session(uow: UnitOfWork, session: Session) -> int:
    return await uow.void_pending(session_id=session.id)


class Planner:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: Policy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def plan_all(self) -> int:
        """Extend every active cohort's horizon; returns how many notifications were planned."""
        now = self._clock.now()
        async with self._uow() as uow:
            ids = [c.id for c in await uow.find(Cohort, status=ACTIVE)]
        planned = 0
        for start in range(0, len(ids), self._policy.batch_size):
            async with self._uow() as uow:
                batch = tuple(ids[start:start + self._policy.batch_size])
                for cohort in await uow.find(Cohort, id=batch):
                    planned += await plan_cohort(uow, cohort, now, self._policy)
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
