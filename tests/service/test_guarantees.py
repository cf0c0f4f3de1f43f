"""PRODUCT.md's guarantees, through the real core: authorization, bad input changes nothing,
the author of a question is in no row with the question and in no log line, downtime."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db.tables import metadata
from bot.domain.model import Notification, OutboxMessage
from tests.conftest import Harness


async def _dump(engine: AsyncEngine) -> dict[str, list[str]]:
    """Every row of every table, as text."""
    out: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(sa.select(table))).all()
            out[table.name] = [" | ".join(str(v) for v in row) for row in rows]
    return out


async def _fingerprint(harness: Harness) -> dict[str, list[str]]:
    dump = await _dump(harness.app.engine)
    dump.pop("seen_events", None)
    return dump


async def test_question_author_is_in_no_row_with_the_question_and_in_no_log(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await harness.setup_cohort(members="@ana @ben @zed-the-author")
    author = "zed-the-author"
    await harness.say("root", "cohort set moderation on")
    texts = ["Why is the quiet one always me?", "Can we talk about burnout?"]
    codes = []
    for text in texts:
        reply = await harness.say(author, f"ask {text}", channel=None)
        codes.append(re.search(r"Your code: (\S+)", reply)[1])  # type: ignore[index]
    rid = re.search(r"\[(\w+)\] Why", await harness.say("fay", "questions review"))
    assert rid is not None
    await harness.say("fay", f"approve {rid[1]}")
    await harness.say(author, f"question {codes[0]}", channel=None)
    await harness.say(author, f"retract {codes[1]}", channel=None)
    assert "release confirm" in await harness.say("fay", "release")  # a batch of one
    await harness.say("fay", "release confirm")
    await harness.say(author, "upvote 1")
    await harness.advance("2d")

    posted = [p for p in harness.channel_posts() if p.startswith("Anonymous question")]
    assert posted == ["Anonymous question #1\nWhy is the quiet one always me?"]
    dump = await _dump(harness.app.engine)
    for table, rows in dump.items():
        for row in rows:
            if "quiet one" in row or "burnout" in row:
                assert author not in row, f"{table}: {row}"
    # The author appears only where a member is listed, never next to question data.
    tables_with_author = {t for t, rows in dump.items() if any(author in r for r in rows)}
    assert tables_with_author <= {"members", "outbox"}
    for row in dump["outbox"]:
        if author in row:
            assert "quiet one" not in row and "burnout" not in row and "question" not in row
    assert author not in caplog.text
    assert "quiet one" not in caplog.text


@pytest.mark.parametrize("user,text,expected", [
    ("ana", "cohort schedule weekly mon 10:00 UTC", "Only an admin can use 'cohort schedule'"),
    ("ana", "session start", "Only a facilitator of Peer A can use 'session start'"),
    ("ana", "approve abcd", "Only a facilitator of Peer A"),
    ("stranger", "next", "Only members of Peer A can use 'next'"),
    ("stranger", "ask hello?", "Only members of Peer A"),
    ("ana", "cohort members add @x", "Only a facilitator"),
])
async def test_authorization_is_checked_in_the_core(
    harness: Harness, user: str, text: str, expected: str
) -> None:
    await harness.setup_cohort()
    before = await _fingerprint(harness)
    reply = await harness.replies(user, text)
    assert len(reply) == 1 and reply[0].private
    assert expected in reply[0].message.plain()
    assert "Usage: /cohort" in reply[0].message.plain()
    assert await _fingerprint(harness) == before


async def test_facilitator_of_one_cohort_has_no_power_in_another(harness: Harness) -> None:
    await harness.setup_cohort()
    assert "Created" in await harness.say("root", "cohort create Peer B", channel="peer-b")
    await harness.say("root", "cohort members add @fay", channel="peer-b")
    reply = await harness.say("fay", "session cancel next", channel="peer-b")
    assert "Only a facilitator of Peer B" in reply
    reply = await harness.say("fay", "--cohort peer-b prompt hi", channel=None)
    assert "Only a facilitator of Peer B" in reply


@pytest.mark.parametrize("text,expected", [
    ("frobnicate", "Unknown command 'frobnicate'."),
    ("away", "Missing a day"),
    ("away 2026-13-45", "2026-13-45"),
    ("away 2026-12-09..2026-12-01", "The range ends before it starts."),
    ("tz Mars/Olympus", "Unknown time zone"),
    ("swap case-giver @nobody", "nobody is not a member of Peer A"),
    ("swap wizard @ben", "'wizard' is not a role in Peer A"),
    ("swap case-giver ben", "is not a mention of a person"),
    ("action done 7", "You have no open action 7"),
    ("action add " + "x" * 400, "too long (400 characters; at most 300)"),
    ("ask " + "y" * 2500, "too long (2500 characters; at most 2000)"),
    ("upvote lots", "'lots' is not a question number"),
    ("schedule 99", "Show between 1 and 12 sessions."),
    ("next please", "Unexpected 'please'."),
])
async def test_bad_input_gets_a_private_reason_and_usage_and_changes_nothing(
    harness: Harness, text: str, expected: str
) -> None:
    await harness.setup_cohort()
    before = await _fingerprint(harness)
    replies = await harness.replies("ana", text)
    assert len(replies) == 1 and replies[0].private
    body = replies[0].message.plain()
    assert expected in body, body
    assert re.search(r"\nUsage: /cohort \S", body), body
    assert "Traceback" not in body and "Error" not in body
    assert await _fingerprint(harness) == before


async def test_admin_bad_schedule_and_unknown_member_in_dm(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("root", "cohort schedule fortnightly on tuesdays")
    assert "Usage:" in reply
    reply = await harness.say("root", "cohort schedule weekly tue 14:00 Europe/Lundon")
    assert "Europe/Lundon" in reply and "Usage:" in reply
    assert "not in any cohort" in await harness.say("nobody", "next", channel=None)
    assert "not linked to a cohort" in await harness.say("ana", "next", channel="random")


async def test_unexpected_errors_reply_with_a_reference_only(
    harness: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.setup_cohort()
    from bot.service import bus

    async def boom(ctx: object, cmd: object) -> None:
        raise RuntimeError("secret internals at 0xdeadbeef")

    monkeypatch.setitem(bus.HANDLERS, bus.c.Next, boom)
    reply = await harness.say("ana", "next")
    ref = re.search(r"\(ref ([0-9a-f]{8})\)", reply)
    assert ref is not None and "0xdeadbeef" not in reply and "RuntimeError" not in reply
    assert f"ref={ref[1]}" in caplog.text and "0xdeadbeef" in caplog.text


async def test_downtime_sends_late_while_useful_and_drops_stale(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await harness.setup_cohort()
    await harness.app.planner.plan_all()
    harness.clear()
    # The bot was down from Monday 09:00 until 14:30; the 24 h reminder was due at 14:00.
    harness.clock.set(harness.clock.now() + timedelta(hours=5, minutes=30))
    await harness.app.dispatcher.run_due()
    posts = harness.channel_posts()
    # Late but still useful: sent once, marked late.
    assert len(posts) == 1 and posts[0].startswith("(Sent late")
    assert "meets in 1 day" in posts[0]
    await harness.app.dispatcher.run_due()
    assert len(harness.channel_posts()) == 1
    # Down again until after the session started at 14:00: the 1 h reminder is stale and
    # dropped with a log line; the summary (useful until the session ends) goes out late.
    await harness.say("ana", "action add Something")  # so there is a summary to post
    harness.clear()
    harness.clock.set(harness.clock.now().replace(day=1, month=12, hour=14, minute=10))
    await harness.app.dispatcher.run_due()
    assert not any("meets in 1 h" in p for p in harness.channel_posts())
    assert re.search(r"dropped stale notification reminder:\d+\.0:60", caplog.text)
    assert any(p.startswith("(Sent late") and "Check-in summary" in p
               for p in harness.channel_posts())


async def test_transient_delivery_errors_back_off_and_deliver_once(harness: Harness) -> None:
    from bot.service.ports import DeliveryError

    await harness.setup_cohort()
    harness.clear()
    harness.messenger.fail_next = [DeliveryError("429", retry_after=30),
                                   DeliveryError("503")]
    await harness.say("fay", "prompt Hello all")
    assert harness.channel_posts() == []
    await harness.advance("31s")
    assert harness.channel_posts() == []  # second failure: backs off again
    await harness.advance("5m")
    assert harness.channel_posts() == ["Prompt: Hello all"]
    await harness.advance("1h")
    assert harness.channel_posts() == ["Prompt: Hello all"]
    async with harness.app.bot._uow() as uow:
        rows = await uow.find(OutboxMessage, status="sent")
        assert any(r.attempts == 3 for r in rows)
        assert not await uow.find(Notification, status="pending", kind="nope")


async def test_a_platform_that_is_down_is_tried_rarely_and_loses_nothing(
    harness: Harness,
) -> None:
    from bot.service.ports import DeliveryError

    await harness.setup_cohort()
    harness.clear()
    messenger = harness.messenger
    down = DeliveryError("connection refused", unreachable=True)
    messenger.fail_next = [down] * 4
    calls = messenger.calls
    for i in range(5):
        await harness.say("fay", f"prompt Hello {i}")
    # Five messages due, one request: the platform is down, the rest wait without trying.
    assert messenger.calls - calls == 1
    nxt = await harness.app.dispatcher.next_due()
    assert nxt == harness.clock.now() + timedelta(seconds=5)  # no busy loop until then
    await harness.app.dispatcher.run_due()
    assert messenger.calls - calls == 1
    # Still down at 5 s, 15 s and 35 s (pauses double): one request each time.
    for wait in (5, 10, 20):
        harness.clock.set(harness.clock.now() + timedelta(seconds=wait))
        await harness.app.dispatcher.run_due()
    assert messenger.calls - calls == 4 and harness.channel_posts() == []
    # Back: everything goes out once, none of the failed tries counted as an attempt.
    harness.clock.set(harness.clock.now() + timedelta(seconds=40))
    await harness.app.dispatcher.run_due()
    assert sorted(harness.channel_posts()) == [f"Prompt: Hello {i}" for i in range(5)]
    async with harness.app.bot._uow() as uow:
        attempts = sorted(r.attempts for r in await uow.find(OutboxMessage, status="sent"))
    assert attempts == [1, 1, 1, 1, 1]
