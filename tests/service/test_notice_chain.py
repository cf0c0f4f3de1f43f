"""Each session keeps one pending step of notifications; firing a step plans the next, and
planning resumes where it stopped after downtime."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from bot.db.tables import notifications
from tests.conftest import Harness


async def _pending_steps(harness: Harness) -> Counter[int]:
    """Pending due instants per session."""
    c = notifications.c
    async with harness.app.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(c.session_id, c.due_at).where(c.status == "pending").distinct()
        )).all()
    return Counter(session_id for session_id, _ in rows)


async def _history(harness: Harness) -> list[tuple[int, str, str]]:
    """(session, kind, status) of every notification that is not pending, by due instant."""
    c = notifications.c
    async with harness.app.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(c.session_id, c.kind, c.status).where(c.status != "pending")
            .order_by(c.due_at, c.key)
        )).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_every_step_fires_once_in_order_with_one_pending_step_per_session(
    harness: Harness,
) -> None:
    await harness.setup_cohort()  # weekly tue 14:00 London; now Mon 30 Nov 09:00 UTC
    await harness.say("ana", "action add Read the chapter")
    for _ in range(9):
        await harness.advance("1d")
        assert max((await _pending_steps(harness)).values(), default=1) == 1
    history = await _history(harness)
    assert {status for *_, status in history} == {"fired"}
    kinds = [(session, kind) for session, kind, _ in history]
    # Session 1 (Tue 1 Dec) was 29 h away when the cohort was set up: its announcement and
    # check-in fell due before it existed. Session 2 (Tue 8 Dec) goes through every step.
    # The nudge shares an instant with the 24 h reminder, the question batch with the 1 h one.
    s1, s2 = sorted({session for session, _ in kinds})
    assert kinds == [
        (s1, "nudge"), (s1, "reminder"), (s1, "release"), (s1, "reminder"), (s1, "summary"),
        (s2, "announce"), (s2, "checkin"), (s2, "nudge"), (s2, "reminder"),
        (s2, "release"), (s2, "reminder"), (s2, "summary"),
    ]
    posts = harness.channel_posts()
    assert sum("meets in 1 day" in p for p in posts) == 2
    assert sum(p.startswith("Check-in summary") for p in posts) == 2


async def test_after_downtime_planning_resumes_and_the_missed_steps_go_late_or_stale(
    harness: Harness,
) -> None:
    await harness.setup_cohort()
    app = harness.app
    await app.planner.plan_all()
    harness.clear()
    # Down from Monday 30 Nov 09:00 until 30 minutes before the second session (Tue 8 Dec
    # 14:00 UTC), which had not even been planned when the bot stopped. At start the bot
    # plans, then runs what is due.
    harness.clock.set(harness.clock.now().replace(month=12, day=8, hour=13, minute=30))
    await app.planner.plan_all()
    await app.dispatcher.run_due()
    await app.dispatcher.run_due()
    posts = harness.channel_posts()
    # Session 2's announcement and reminders are late but useful: each goes out once, marked
    # late. Session 1 is over: its steps were dropped as stale.
    assert sum(p.startswith("(Sent late") and "Roles for" in p for p in posts) == 1, posts
    assert sum("meets in 1 day" in p for p in posts) == 1
    assert sum("meets in 1 h" in p for p in posts) == 1
    assert all(p.startswith("(Sent late") for p in posts), posts
    history = await _history(harness)
    s1 = min(session for session, *_ in history)
    assert {status for session, _, status in history if session == s1} == {"dropped"}
    # What is left is session 2's summary: one step.
    assert list((await _pending_steps(harness)).values()) == [1]
