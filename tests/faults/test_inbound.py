"""Inbound duplicates and reordering never change the outcome.

Slack redelivers an event it thinks was lost (HTTP retries with `X-Slack-Retry-Num`), and a
retry may come late, after later events were handled. A Matrix bot sees events again when it
syncs from an older point (its sync token lost, or another instance taking over). Either way
each event is handled once, and what people see and what is stored is what one delivery of
each, in their original order, gives.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from tests.matrix.support import BotProcess, Member, answer, from_bot
from tests.slack.conftest import running_bot
from tests.slack.test_flows import setup_cohort
from tests.support.matrix_fixtures import ClientFactory
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack, seed_workspace
from tests.support.synapse import SynapseServer

#: What Bob sends the bot in his direct conversation, in this order.
SAYS = ["action add Read chapter 3", "action add Call my mentor", "action done 1 read it",
        "away 2026-12-08", "action drop 2", "action add Write the summary", "action list",
        "next"]


async def _slack_outcome(tmp_path: Path, retries: int, seed: int) -> tuple[list[str], str]:
    """Bob's answers and his final action list, with `retries` late copies of each event."""
    tmp_path.mkdir()
    async with FakeSlack(team_id=W.team_id, app_id=W.app_id,
                         signing_secret=W.signing_secret) as fake:
        seed_workspace(fake)
        async with running_bot(fake, tmp_path) as bot:
            await setup_cohort(bot)
            dm = fake.open_dm(W.bob)
            events = [bot.build.message_event(user_id=W.bob, channel_id=dm, text=text)
                      for text in SAYS]
            deliveries = [(i, 0) for i in range(len(SAYS))]
            rng = random.Random(seed)
            for i in range(len(SAYS)):
                for n in range(1, retries + 1):
                    # A retry comes after its original, anywhere later in the stream.
                    at = rng.randint(deliveries.index((i, n - 1)) + 1, len(deliveries))
                    deliveries.insert(at, (i, n))
            for i, n in deliveries:
                await bot.post(bot.build.event_callback(
                    events[i], event_id=f"Ev0BOB{i:04d}", retry_num=n or None,
                    retry_reason="http_timeout" if n else None))
                await bot.settle()
            answers = [m["text"] for m in fake.messages(dm)]
            await bot.post(bot.build.event_callback(bot.build.message_event(
                user_id=W.bob, channel_id=dm, text="action list"), event_id="Ev0BOBLAST"))
            await bot.settle()
            return answers, fake.messages(dm)[-1]["text"]


@pytest.mark.parametrize("seed", range(3))
async def test_slack_retries_arriving_late_change_nothing(tmp_path: Path, seed: int) -> None:
    once, final_once = await _slack_outcome(tmp_path / "once", retries=0, seed=seed)
    noisy, final_noisy = await _slack_outcome(tmp_path / "noisy", retries=2, seed=seed)
    assert len(once) == len(SAYS)  # one answer each
    assert final_once.endswith("1. Read chapter 3 [done]\n2. Call my mentor [dropped]\n"
                               "3. Write the summary")
    assert noisy == once
    assert final_noisy == final_once


async def test_matrix_events_seen_again_after_the_sync_token_is_lost_are_not_handled_again(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path
) -> None:
    admin, ana = Member(await matrix_client_factory()), Member(await matrix_client_factory())
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[admin.user_id])
    bot.start()
    try:
        bot.wait_log("matrix: logged in")
        ana.join_invites_from = {admin.user_id}
        room = await admin.create_room([bot.user_id, ana.user_id])
        await ana.wait_room(room)
        await admin.joined(room, bot.user_id)
        await admin.say(room, "!cohort cohort create Replay Circle")
        await admin.wait_for(from_bot(bot, room, contains="Created Replay Circle"))
        await admin.say(room, f"!cohort cohort members add {ana.user_id}")
        await admin.wait_for(from_bot(bot, room, contains="Added"))
        # (answered in her direct room, with a one-line notice in the room)
        assert "Action 1 recorded" in (await answer(ana, bot, room,
                                                    "!cohort action add Read chapter 3")).body
        assert "done" in (await answer(ana, bot, room, "!cohort action done 1 read it")).body
        bot.stop()
        await ana.sync()
        answered = sum(s.sender == bot.user_id for s in ana.seen)

        # The bot forgets where its sync had got to: the next sync starts over and brings
        # the room's recent timeline, these commands included, well inside the replay window.
        (store,) = bot.store.glob("*.db")
        with sqlite3.connect(store) as db:
            assert db.execute("DELETE FROM synctokens").rowcount == 1
        bot.start()
        bot.wait_log("matrix: logged in", count=2)
        listed = await answer(ana, bot, room, "!cohort action list")
        await ana.sync()
    finally:
        bot.stop()
    replies = [s.body for s in ana.seen if s.sender == bot.user_id]
    # One more answer (to `action list`: the notice and the list) and nothing else: no
    # command answered again.
    assert len(replies) == answered + 2, replies[answered:]
    assert listed.body.count("Read chapter 3") == 1, listed.body
    assert "Traceback" not in bot.log()
