"""One person's commands one at a time, in the order they arrive; other people's side by side
(bot/service/turns.py), through the real core on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from bot.service.turns import Turns
from tests.conftest import Harness


async def test_commands_typed_at_once_are_handled_in_the_order_they_came(
        harness: Harness) -> None:
    # An admin pastes the whole set-up: each command must see what the one before did.
    replies = await asyncio.gather(
        harness.say("root", "cohort create Peer A"),
        harness.say("root", "cohort schedule weekly tue 14:00 Europe/London for 90m"),
        harness.say("root", "cohort members add @ana @ben @cleo"),
        harness.say("root", "cohort facilitators add @fay"),
    )
    assert [r.split()[0] for r in replies] == ["Created", "Schedule", "Added", "@fay"], replies
    added = await asyncio.gather(*(harness.say("ana", f"action add Step {n}")
                                   for n in (1, 2, 3)))
    assert [a.split(".")[0] for a in added] == ["Action 1 recorded", "Action 2 recorded",
                                                "Action 3 recorded"], added
    listed = await harness.say("ana", "action list")
    assert listed.index("Step 1") < listed.index("Step 2") < listed.index("Step 3")
    assert len(harness.app.bot.turns) == 0  # nothing kept for people with nothing in hand


async def test_one_key_waits_its_turn_and_other_keys_do_not() -> None:
    turns = Turns()
    log: list[str] = []
    release_ana = asyncio.Event()

    async def work(key: str, name: str, hold: asyncio.Event | None = None) -> None:
        async with turns.turn(key):
            log.append(f"{name} in")
            if hold is not None:
                await hold.wait()
            log.append(f"{name} out")

    first = asyncio.create_task(work("ana", "ana-1", release_ana))
    later = [asyncio.create_task(work("ana", f"ana-{n}")) for n in (2, 3, 4)]
    ben = asyncio.create_task(work("ben", "ben-1"))
    await ben  # ben is not held up by ana's first command
    assert log == ["ana-1 in", "ben-1 in", "ben-1 out"]
    assert not any(t.done() for t in later)
    release_ana.set()
    await asyncio.gather(first, *later)
    assert log[3:] == ["ana-1 out", "ana-2 in", "ana-2 out", "ana-3 in", "ana-3 out",
                       "ana-4 in", "ana-4 out"]
    assert len(turns) == 0


async def test_a_failed_or_cancelled_turn_lets_the_next_one_go() -> None:
    turns = Turns()
    hold = asyncio.Event()

    async def fail() -> None:
        async with turns.turn("ana"):
            raise ValueError("a bug")

    async def held() -> None:
        async with turns.turn("ana"):
            await hold.wait()

    async def after() -> str:
        async with turns.turn("ana"):
            return "ran"

    failing = asyncio.create_task(fail())
    stuck = asyncio.create_task(held())
    last = asyncio.create_task(after())
    await asyncio.sleep(0)  # (one turn of the loop: all three have taken their places)
    stuck.cancel()
    assert await last == "ran"
    assert isinstance(failing.exception(), ValueError)
    assert len(turns) == 0
