"""Anonymous questions against a database reader and against timing: the keys, the cap, the
redelivery guard, batches that give cover and the voting window (bot/service/questions.py,
bot/service/anonymity.py). The database-adversary attacks themselves are in tests/privacy/."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import sqlalchemy as sa

from bot.bootstrap import build
from bot.config import load_settings
from bot.domain.refs import UserRef
from bot.scheduling.clock import SimulatedClock
from bot.service.api import Invocation
from tests.conftest import START, Harness, RecordingMessenger

SECRET = "a-test-secret-of-enough-length"


async def _rows(harness: Harness, sql: str) -> list[tuple[object, ...]]:
    async with harness.app.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.text(sql))).all()]


def _anonymous(posts: list[str]) -> list[str]:
    return [p for p in posts if p.startswith("Anonymous question")]


async def test_a_batch_of_one_waits_and_facilitators_hear_after_two_held_releases(
        harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("ana", "ask Is it fine to be this tired?", channel=None)
    await harness.advance("7d")  # Tuesday's release: one question alone is held back
    assert _anonymous(harness.channel_posts()) == []
    assert not any("waiting" in d for d in harness.dms("fay"))
    await harness.advance("7d")  # held back a second time: the facilitator hears
    told = [d for d in harness.dms("fay") if "waiting" in d]
    assert len(told) == 1
    assert told[0].startswith("1 anonymous question is waiting in Peer A")
    assert "release confirm" in told[0]
    assert not any("waiting" in d for m in ("ana", "ben", "cleo") for d in harness.dms(m))

    await harness.say("ben", "ask What if I disagree with my mentor?", channel=None)
    await harness.advance("7d")  # two now: they go out together
    assert sorted(p.split("\n", 1)[1] for p in _anonymous(harness.channel_posts())) == [
        "Is it fine to be this tired?", "What if I disagree with my mentor?"]
    assert len([d for d in harness.dms("fay") if "waiting" in d]) == 1  # told once


async def test_a_facilitator_confirms_a_small_release_and_a_lone_confirm_is_harmless(
        harness: Harness) -> None:
    await harness.setup_cohort()
    assert await harness.say("fay", "release confirm") == \
        "No approved questions are waiting, so there is nothing to confirm."
    await harness.say("ana", "ask Can we meet in person once?", channel=None)
    reply = await harness.say("fay", "release")
    assert "Only 1 question waits, fewer than the 2 a batch needs" in reply
    assert "release confirm" in reply
    assert _anonymous(harness.channel_posts()) == []
    assert await harness.say("fay", "release confirm") == \
        "Released 1 question in random order."
    assert _anonymous(harness.channel_posts()) == [
        "Anonymous question #1\nCan we meet in person once?"]
    assert "Usage:" in await harness.say("fay", "release now please")
    assert "Only a facilitator" in await harness.say("ana", "release confirm")


async def test_settings_that_weaken_anonymity_say_what_they_cost(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("root", "cohort set question-release immediate")
    assert "posted the moment it is asked" in reply and "whoever was around" in reply
    reply = await harness.say("root", "cohort set min-batch 1")
    assert "no cover" in reply
    assert "no cover" not in await harness.say("root", "cohort set min-batch 3")
    assert "from 1 to 10" in await harness.say("root", "cohort set min-batch 0")
    await harness.say("root", "cohort set question-release batch")
    for who in ("ana", "ben"):
        await harness.say(who, f"ask A question from {who}?", channel=None)
    assert "fewer than the 3" in await harness.say("fay", "release")


async def test_voting_closes_with_the_session_and_its_voters_are_forgotten(
        harness: Harness) -> None:
    await harness.setup_cohort()
    for who in ("ana", "ben"):
        await harness.say(who, f"ask Something from {who}?", channel=None)
    await harness.advance("1d4h")  # released Tuesday 13:00, for the 14:00–15:30 session
    assert len(_anonymous(harness.channel_posts())) == 2
    assert "Upvoted #1 (now 1)" in await harness.say("cleo", "upvote 1")
    assert "already upvoted" in await harness.say("cleo", "upvote 1")
    assert len(await _rows(harness, "SELECT voter_hash FROM upvotes")) == 1

    await harness.advance("2h31m")  # 15:31: the session is over
    assert "Voting on #1 has closed" in await harness.say("dev", "upvote 1")
    await harness.advance("9h")  # the next purge (hourly when running; here at midnight)
    assert await _rows(harness, "SELECT voter_hash FROM upvotes") == []
    assert await _rows(harness, "SELECT vote_salt FROM questions WHERE vote_salt IS NOT NULL"
                       ) == []
    assert "(1 ▲)" in await harness.say("dev", "questions")  # the count stays


async def test_a_days_keys_and_counts_are_gone_when_the_day_is(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("ana", "ask First of the day?", channel=None)
    today = f"day:{harness.clock.now().date().isoformat()}"
    assert [s for (s,) in await _rows(harness, "SELECT scope FROM key_salts")] == [today]
    assert len(await _rows(harness, "SELECT key_hash FROM rate_counts")) == 1
    await harness.advance("15h")  # to midnight UTC: the day is over
    assert await _rows(harness, "SELECT scope FROM key_salts") == []
    assert await _rows(harness, "SELECT key_hash FROM rate_counts") == []


async def test_a_secret_commands_redelivery_is_dropped_under_a_keyed_hash(
        harness: Harness) -> None:
    await harness.setup_cohort()
    harness.clock.set(START + timedelta(minutes=26, seconds=37))
    inv = Invocation(user=UserRef("terminal", "ana"), text="ask Asked once, delivered twice?",
                     channel=None, event_id="terminal:ev:ask-1")
    assert "Your code:" in (await harness.app.bot.handle(inv))[0].message.plain()
    assert await harness.app.bot.handle(inv) == []
    assert len(await _rows(harness, "SELECT id FROM questions")) == 1
    guards = await _rows(harness, "SELECT event_id, seen_at FROM seen_events")
    assert len(guards) == 1
    guard, seen_at = guards[0]
    assert re.fullmatch(r"k:[0-9a-f]{64}", str(guard))
    assert "ev:ask-1" not in str(guard)
    assert ":26" not in str(seen_at) and "09:00:00" in str(seen_at)  # only the hour


async def test_the_daily_cap_holds_across_instances(db_url: str) -> None:
    environ = {"COHORTBOT_DATABASE__URL": db_url, "COHORTBOT_BOT__ADMINS": '["terminal:root"]',
               "COHORTBOT_BOT__QUESTION_SECRET": SECRET, "COHORTBOT_BOT__QUESTIONS_PER_DAY": "3"}
    apps = [build(load_settings(environ=environ), clock=SimulatedClock(START),
                  messengers={"terminal": RecordingMessenger()}) for _ in range(2)]
    try:
        first = Harness(apps[0], RecordingMessenger(), SimulatedClock(START))
        await first.setup_cohort()
        asks = [apps[i % 2].bot.handle(Invocation(
            user=UserRef("terminal", "ana"), text=f"ask Question number {i}, ok?", channel=None))
            for i in range(8)]
        replies = [r[0].message.plain() for r in await asyncio.gather(*asks)]
    finally:
        for app in apps:
            await app.close()
    assert sum("Your code:" in r for r in replies) == 3
    assert sum("at most 3 questions a day" in r for r in replies) == 5
