"""Wake the dispatcher at the next due instant, plus a periodic safety sweep.

APScheduler holds in-memory jobs and nothing else: `wake` (a date trigger at the earliest
pending `due_at`, re-armed after every run and every change), `sweep` (a short interval that
runs anything missed) and `plan` (hourly, on the hour: extends the planning horizon, purges
expired data).
Jobs are derived from the database and rebuilt at start; nothing is pickled or persisted.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.db.uow import storage_unavailable
from bot.service.dispatcher import Dispatcher
from bot.service.planner import Planner
from bot.service.ports import Clock

log = logging.getLogger(__name__)

#: Rounds one wake-up runs back to back while something is due at once; then it lets the
#: loop breathe for a second (a guard: each round normally leaves nothing due).
MAX_ROUNDS = 50
ARM_FLOOR = timedelta(milliseconds=10)


class Waker:
    def __init__(self, dispatcher: Dispatcher, planner: Planner, clock: Clock,
                 sweep_seconds: float) -> None:
        self._dispatcher = dispatcher
        self._planner = planner
        self._clock = clock
        self._sweep = sweep_seconds
        self._scheduler: AsyncIOScheduler | None = None
        self._lock = asyncio.Lock()
        self._again = False  # a change arrived while a wake-up was running
        self._stopping = False

    async def start(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._scheduler.add_job(self.wake, IntervalTrigger(seconds=self._sweep), id="sweep",
                                max_instances=1, coalesce=True)
        # Planning ahead is set-based but not free: hourly is plenty for a 14-day horizon
        # (every change re-plans its own cohort at once).
        # On the hour, so that a day's question keys are gone as soon as it is over.
        self._scheduler.add_job(self.plan, CronTrigger(minute=0, timezone="UTC"), id="plan",
                                max_instances=1, coalesce=True)
        self._scheduler.start()
        await self.plan()

    async def stop(self) -> None:
        """Stop waking, and wait for a wake-up in flight so nothing is cut off mid-send."""
        self._stopping = True
        async with self._lock:  # before shutdown: APScheduler would cancel the running job
            if self._scheduler is not None:
                self._scheduler.shutdown(wait=False)
                self._scheduler = None

    def poke(self) -> None:
        """Something changed: run what is due now and re-arm for the next instant. A wake-up
        under way looks again when it is done (it may have read the next instant before the
        change)."""
        if self._lock.locked():
            self._again = True
        elif self._scheduler is not None:
            self._scheduler.add_job(self.wake, id="wake-now", replace_existing=True,
                                    misfire_grace_time=None)

    async def plan(self) -> None:
        try:
            await self._planner.plan_all()
            await self._planner.purge()
        except Exception as e:  # noqa: BLE001 - logged (with a traceback if a bug); retried
            _log_failure(e, "planning failed; retrying within the hour")
        await self.wake()

    async def wake(self) -> None:
        if self._stopping:
            return
        async with self._lock:
            self._again = True
            rounds = 0
            while self._again and not self._stopping:
                self._again = False
                rounds += 1
                try:
                    await self._dispatcher.run_due()
                    nxt = await self._dispatcher.next_due()
                except Exception as e:  # noqa: BLE001 - logged, as above; retried
                    _log_failure(e, "dispatch failed; retrying in 5 s")
                    nxt = self._clock.now() + timedelta(seconds=5)
                if nxt is not None and nxt <= self._clock.now() and rounds < MAX_ROUNDS:
                    # Due already (the sends took longer than the gap to the next instant):
                    # go round again. A job armed for now would find this one still running
                    # and be skipped (one instance at a time), leaving it to the sweep.
                    self._again = True
                    continue
                self._arm(nxt, breathe=rounds >= MAX_ROUNDS)

    def _arm(self, at: datetime | None, *, breathe: bool = False) -> None:
        """Run `wake` at `at`: never at once, since this wake-up may still be running (a
        job due while its last run is under way is skipped, not queued)."""
        if self._scheduler is None:
            return
        if at is None:
            if self._scheduler.get_job("wake"):
                self._scheduler.remove_job("wake")
            return
        at = max(at, self._clock.now() + (timedelta(seconds=1) if breathe else ARM_FLOOR))
        self._scheduler.add_job(self.wake, DateTrigger(run_date=at), id="wake",
                                replace_existing=True, misfire_grace_time=None)


def _log_failure(error: Exception, what: str) -> None:
    """A database that is away is an outage, said in one line; anything else is a bug, with
    its traceback and a reference id."""
    if storage_unavailable(error):
        log.warning("%s (database unavailable: %s)", what, type(error).__name__)
        return
    ref = secrets.token_hex(4)
    log.error("%s ref=%s", what, ref, exc_info=error, extra={"ref": ref})
