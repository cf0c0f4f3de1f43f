"""When the scheduler looks again: after a change, never after a command that only reads, and
once more when a change arrives while a wake-up is running."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from bot.scheduling.clock import SimulatedClock
from bot.scheduling.waker import MAX_ROUNDS, Waker
from tests.conftest import START, Harness


async def test_only_commands_that_change_the_plan_poke_the_scheduler(harness: Harness) -> None:
    pokes: list[str] = []
    await harness.setup_cohort()
    last = ""

    def poke() -> None:
        pokes.append(last)

    harness.app.bot._on_change = poke
    for user, text in [("ana", "next"), ("ana", "schedule 3"), ("ana", "help"),
                       ("ana", "action list"), ("root", "cohort show"),
                       ("root", "cohort reminders 2h"), ("fay", "session cancel next"),
                       ("ana", "frobnicate")]:
        last = text
        await harness.replies(user, text)
    assert pokes == ["cohort reminders 2h", "session cancel next"]


class _SlowDispatcher:
    """A dispatcher whose first `run_due` waits until it is let go."""

    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.running = asyncio.Event()

    async def run_due(self) -> int:
        self.runs += 1
        if self.runs == 1:
            self.running.set()
            await self.release.wait()
        return 0

    async def next_due(self) -> datetime | None:
        return None


async def test_a_poke_during_a_wake_up_makes_it_look_again() -> None:
    dispatcher = _SlowDispatcher()
    waker = Waker(dispatcher, planner=None, clock=SimulatedClock(START),  # type: ignore[arg-type]
                  sweep_seconds=60)
    first = asyncio.create_task(waker.wake())
    await dispatcher.running.wait()
    waker.poke()  # e.g. a command planned a message due now, after run_due read the table
    dispatcher.release.set()
    await first
    assert dispatcher.runs == 2

    await waker.wake()  # no change meanwhile: one pass
    assert dispatcher.runs == 3


class _BehindDispatcher:
    """Each `run_due` takes 200 ms of the clock and handles what is due; the instants fall
    due 100 ms apart, so each run ends after the next instant has passed."""

    def __init__(self, clock: SimulatedClock, dues: list[datetime]) -> None:
        self.clock = clock
        self.dues = dues
        self.handled: list[int] = []

    async def run_due(self) -> int:
        now = self.clock.now()
        due = [d for d in self.dues if d <= now]
        self.dues = [d for d in self.dues if d > now]
        self.handled.append(len(due))
        self.clock.set(now + timedelta(milliseconds=200))
        return len(due)

    async def next_due(self) -> datetime | None:
        return min(self.dues, default=None)


async def test_what_fell_due_during_a_slow_run_is_handled_by_the_same_wake_up() -> None:
    # (Arming a job for "now" from inside the running job would be skipped by the scheduler,
    # one instance at a time, and leave these to the sweep a minute later.)
    clock = SimulatedClock(START)
    dispatcher = _BehindDispatcher(clock, [START + timedelta(milliseconds=100 * i)
                                           for i in range(6)])
    waker = Waker(dispatcher, planner=None, clock=clock,  # type: ignore[arg-type]
                  sweep_seconds=60)
    await waker.wake()
    assert dispatcher.dues == []
    assert sum(dispatcher.handled) == 6 and len(dispatcher.handled) == 4


async def test_a_wake_up_that_keeps_finding_work_due_stops_after_a_bounded_number_of_rounds(
) -> None:
    clock = SimulatedClock(START)
    dispatcher = _BehindDispatcher(clock, [])

    async def always_due() -> datetime:
        return clock.now() - timedelta(seconds=1)

    dispatcher.next_due = always_due  # type: ignore[method-assign]
    waker = Waker(dispatcher, planner=None, clock=clock,  # type: ignore[arg-type]
                  sweep_seconds=60)
    await waker.wake()
    assert len(dispatcher.handled) == MAX_ROUNDS
