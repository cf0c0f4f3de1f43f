"""Materialise what the database says should happen into due notifications.

A session's notices form a chain of steps (see `bot.domain.planning`); only the next step of
each session is stored, keyed, so planning twice changes nothing, and firing a step plans the
one after it (`plan_next`). The periodic pass (`Planner.plan_all`) materialises the sessions
whose first step falls due within the horizon and plans that step; a change to a cohort
re-plans it at once (`plan_cohort`, `plan_session`).

Each cohort records how far it has been planned (`planned_through`). The periodic pass
resumes from there, so after downtime the steps that fell due meanwhile are still planned,
then sent late or dropped as stale by the dispatcher; what fell due before a session or
cohort existed is never sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from bot.domain.cohort_settings import CohortSettings
from bot.domain.model import (
    ACTIVE,
    ARCHIVED,
    SCHEDULED,
    Action,
    ActionReview,
    Cohort,
    Notification,
    OutboxMessage,
    Question,
    Session,
)
from bot.domain.planning import (
    NoticeTime,
    PlannedNotice,
    longest_lead,
    next_step,
    notice_times,
    session_notices,
    steps,
)
from bot.domain.schedule import Schedule, occurrences
from bot.service.api import Policy
from bot.service.cohort_state import ensure_sessions
from bot.service.ports import (
    Clock,
    NewNotification,
    PlanTarget,
    UnitOfWork,
    UnitOfWorkFactory,
)

log = logging.getLogger(__name__)

#: How long an inbound event id is kept to drop a redelivery: Slack retries for minutes,
#: a Matrix sync replays at most a minute; a day covers both with room to spare.
REDELIVERY_WINDOW = timedelta(days=1)
#: How long a message's text is kept after it was sent (or given up): long enough to look
#: into a complaint about it, not longer.
SENT_KEPT = timedelta(hours=23)

PLAN_CHUNK = 2000  # cohorts per transaction
LOOK_BACK = timedelta(days=1)  # a session under way may still owe its summary


async def plan_session(uow: UnitOfWork, cohort: Cohort, session: Session,
                       now: datetime) -> int:
    """Plan the session's first step due from `now` that still has something to send.

    Re-planning after a change voids the session's pending rows first; this revives or moves
    the rows of the new first step (a fired row is history and stays as it is)."""
    if cohort.status != ACTIVE or session.status != SCHEDULED:
        return 0
    notices = _notices(CohortSettings.from_json(cohort.settings), cohort.reminder_offsets,
                       session.id, session.rev, session.starts_at, session.duration_min)
    return await _plan_first_open_step(uow, cohort.id, session.id,
                                       [n for n in notices if n.due_at >= now])


async def plan_next(uow: UnitOfWork, fired: Notification) -> int:
    """After `fired` went out (or was dropped), plan its session's following step.

    Steps in the past are planned too: after downtime the dispatcher walks them in order, each
    sent late or dropped as stale. A row of an older revision of the session plans nothing:
    the change that made the new revision re-planned the session itself."""
    if fired.session_id is None:
        return 0
    cohort = await uow.get(Cohort, fired.cohort_id)
    session = await uow.get(Session, fired.session_id)
    if cohort is None or session is None or cohort.status != ACTIVE or \
            session.status != SCHEDULED:
        return 0
    notices = _notices(CohortSettings.from_json(cohort.settings), cohort.reminder_offsets,
                       session.id, session.rev, session.starts_at, session.duration_min)
    if fired.key not in {n.key for n in notices}:
        return 0
    return await _plan_first_open_step(uow, cohort.id, session.id,
                                       [n for n in notices if n.due_at > fired.due_at])


async def _plan_first_open_step(uow: UnitOfWork, cohort_id: int, session_id: int,
                                notices: Sequence[PlannedNotice]) -> int:
    """Upsert the first of these steps that still has something to send."""
    for step in steps(notices):
        planned = 0
        for notice in step:
            planned += await uow.add_notification(Notification(
                key=notice.key, kind=notice.kind, cohort_id=cohort_id, session_id=session_id,
                due_at=notice.due_at, stale_at=notice.stale_at, payload=notice.payload,
            ))
        if planned:
            return planned
    return 0


async def plan_cohort(uow: UnitOfWork, cohort: Cohort, now: datetime, policy: Policy) -> int:
    """Re-plan one cohort after a change: every session whose steps may start before the
    horizon ends (callers void the old rows first)."""
    if cohort.status != ACTIVE:
        return 0
    end = now + policy.horizon
    window_end = end + longest_lead(CohortSettings.from_json(cohort.settings),
                                    cohort.reminder_offsets)
    await ensure_sessions(uow, cohort, now, window_end)
    planned = 0
    for session in await uow.sessions_between(cohort.id, now - LOOK_BACK, window_end):
        planned += await plan_session(uow, cohort, session, now)
    cohort.planned_through = end
    return planned


async def plan_many(uow: UnitOfWork, targets: Sequence[PlanTarget], now: datetime,
                    policy: Policy) -> int:
    """The periodic pass over many cohorts, in a handful of statements.

    A session that has notifications already is the chain's business; one that has none
    (new, or made by a command that only looked ahead) gets its first step due from where
    its cohort's planning stopped, once that step falls before the horizon's end."""
    end = now + policy.horizon
    look_back = now - LOOK_BACK
    plans = {t.id: _Plan(t, now, end) for t in targets}
    if not plans:
        return 0
    known = await uow.sessions_window(list(plans), look_back,
                                      max(p.window_end for p in plans.values()))
    slots_known = {(s.cohort_id, s.slot) for s in known}
    new: list[tuple[int, datetime, int]] = []
    # Cohorts that share a schedule (the same spec, planned through the same instant) share
    # its expansion: one per distinct schedule and window in a pass, not one per cohort.
    expanded: dict[tuple[str, datetime, datetime], list[datetime]] = {}
    for cohort_id, plan in plans.items():
        window = (plan.schedule_json, max(look_back, min(plan.since, now)), plan.window_end)
        slots = expanded.get(window)
        if slots is None:
            slots = expanded[window] = occurrences(plan.schedule, after=window[1],
                                                   before=window[2])
        new += [(cohort_id, slot, plan.minutes) for slot in slots
                if (cohort_id, slot) not in slots_known]
    new_ids = await uow.insert_sessions(new)
    scheduled = [s for s in known if s.status == SCHEDULED
                 and s.starts_at < plans[s.cohort_id].window_end]
    live = await uow.sessions_with_notices([s.id for s in scheduled])
    # Sessions without notifications, as (cohort, id, start, minutes, revision).
    bare = [(s.cohort_id, s.id, s.starts_at, s.duration_min, s.rev)
            for s in scheduled if s.id not in live]
    bare += [(cid, sid, slot, minutes, 0)
             for (cid, slot, minutes), sid in zip(new, new_ids, strict=True)]
    rows: list[NewNotification] = []
    # The same goes for a session's notices: they depend on its start and its cohort's
    # policies, and only their keys name the session.
    times: dict[tuple[str, tuple[int, ...], datetime, int], list[NoticeTime]] = {}
    for cohort_id, session_id, starts_at, minutes, rev in bare:
        plan = plans[cohort_id]
        shape = (plan.settings_json, plan.offsets, starts_at, minutes)
        notices = times.get(shape)
        if notices is None:
            notices = times[shape] = notice_times(
                starts_at=starts_at, duration=timedelta(minutes=minutes),
                settings=plan.settings, reminder_offsets_min=plan.offsets)
        step = next_step(notices, at_or_after=plan.since)
        if step and step[0].due_at < end:
            rows += [(cohort_id, session_id, n.named(session_id, rev)) for n in step]
    planned = await uow.insert_notifications(rows)
    await uow.set_planned_through(list(plans), end)
    return planned


class _Plan:
    """One cohort's parsed schedule and policies for a planning pass."""

    __slots__ = ("minutes", "offsets", "schedule", "schedule_json", "settings",
                 "settings_json", "since", "window_end")

    def __init__(self, target: PlanTarget, now: datetime, end: datetime) -> None:
        self.schedule_json = target.schedule_json
        self.schedule = _schedule(target.schedule_json)
        self.settings_json = target.settings_json
        self.settings = _settings(target.settings_json)
        self.offsets = target.reminder_offsets
        self.minutes = int(self.schedule.duration.total_seconds() // 60)
        # Something that fell due before it could be planned (a new cohort's session an hour
        # away) is not news to anyone: only what was missed while the bot was down goes late.
        self.since = target.planned_through or now
        self.window_end = end + longest_lead(self.settings, self.offsets)


@lru_cache(maxsize=1024)
def _schedule(text: str) -> Schedule:
    return Schedule.from_json(json.loads(text))


@lru_cache(maxsize=1024)
def _settings(text: str) -> CohortSettings:
    return CohortSettings.from_json(json.loads(text))


def _notices(settings: CohortSettings, offsets: Sequence[int], session_id: int, rev: int,
             starts_at: datetime, minutes: int) -> list[PlannedNotice]:
    return session_notices(
        session_id=session_id, rev=rev, starts_at=starts_at,
        duration=timedelta(minutes=minutes), settings=settings, reminder_offsets_min=offsets,
    )


class Planner:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, policy: Policy) -> None:
        self._uow = uow
        self._clock = clock
        self._policy = policy

    async def plan_all(self) -> int:
        """Extend every active cohort's plan to the horizon; returns how many notifications
        were planned. Set-based: 10,000 cohorts cost a few statements per chunk of
        `PLAN_CHUNK`, not a few per cohort."""
        now = self._clock.now()
        planned = 0
        after = 0
        while True:
            async with self._uow() as uow:
                targets = await uow.plan_targets(after, PLAN_CHUNK)
                if not targets:
                    return planned
                planned += await plan_many(uow, targets, now, self._policy)
                await uow.commit()
            after = targets[-1].id

    async def purge(self) -> int:
        """Delete what is kept no longer than it is needed; returns how many rows went. Run
        hourly, on the hour.

        - the ids of inbound events, once no redelivery can come (`REDELIVERY_WINDOW`);
        - question keys whose day or voting window is over (bot/service/anonymity.py): once
          they are gone, not even the operator's secret links a question or upvote to anyone;
        - messages sent (or given up) more than `SENT_KEPT` ago: their text is delivered;
        - of cohorts archived longer than the retention: actions, check-in notes, questions,
          messages and planned notices.
        """
        now = self._clock.now()
        removed = 0
        async with self._uow() as uow:
            removed += await uow.forget_events(now - REDELIVERY_WINDOW)
            removed += await uow.forget_question_keys(now.date().isoformat(), now)
            removed += await uow.forget_sent(now - SENT_KEPT)
            for cohort in await uow.find(Cohort, status=ARCHIVED):
                if cohort.archived_at and cohort.archived_at + self._policy.retention <= now:
                    removed += await self._expire(uow, cohort)
            await uow.commit()
        if removed:
            await self._uow.checkpoint()
            log.debug("purged %d expired rows", removed)
        return removed

    @staticmethod
    async def _expire(uow: UnitOfWork, cohort: Cohort) -> int:
        actions = await uow.find(Action, cohort_id=cohort.id)
        removed = 0
        if actions:
            removed += await uow.delete_where(ActionReview, action_id=tuple(a.id for a in actions))
            removed += await uow.delete_where(Action, cohort_id=cohort.id)
        removed += await uow.delete_where(Question, cohort_id=cohort.id)  # (upvotes cascade)
        removed += await uow.delete_where(OutboxMessage, cohort_id=cohort.id)
        removed += await uow.delete_where(Notification, cohort_id=cohort.id)
        return removed
