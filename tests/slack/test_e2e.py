"""The real `cohortbot run` process on the fake Slack, in HTTP mode and in Socket Mode.

The fake serves from a thread of this test process; the bot runs as a child process with
its config in the environment. Every request it is sent must be acknowledged within Slack's
3 seconds. Waiting is for what the fake records, always bounded. The scheduled test runs on
the real clock with leads of minutes (the process has no simulated clock): it waits for the
bot's posts, never sleeps until a due time.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack
from tests.support.slack.process import SlackProcess

MENTION = re.compile(r"<@([A-Z0-9]+)>")
pytestmark = pytest.mark.e2e


def _next_slot(lead: timedelta) -> datetime:
    """A session start at least `lead` plus half a minute away, on a whole minute."""
    at = datetime.now(UTC) + lead + timedelta(seconds=30)
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks") or [] if b["type"] == "actions"
            for e in b["elements"]]


@pytest.fixture(params=["http", "socket"])
async def bot(request: pytest.FixtureRequest, fake_slack_thread: FakeSlack,
              tmp_path: Path) -> AsyncIterator[SlackProcess]:
    running = SlackProcess(fake_slack_thread, tmp_path, request.param)
    try:
        await running.ready()
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(10)


async def test_a_cohort_from_slash_commands_to_an_anonymous_question(bot: SlackProcess) -> None:
    fake = bot.fake
    await bot.command(W.admin, "cohort create Peer A")
    await bot.command(W.admin, "cohort schedule weekly tue 14:00 Europe/London for 90m")
    await bot.command(W.admin, f"cohort members add <@{W.alice}|alice> <@{W.bob}|bob>")
    await bot.command(W.admin, "cohort set question-release immediate")
    await bot.replies(W.admin, 3)
    await fake.wait_for(lambda: fake.posts(W.channel), what="the creation post")
    assert fake.posts(W.channel)[0]["text"].startswith("Created *Peer A*")

    # Permissions and bad input: clear private answers, nothing changes.
    await bot.command(W.bob, "cohort archive")
    await bot.command(W.alice, "away someday")
    [refused] = (await bot.replies(W.bob, 1))[-1:]
    assert refused.startswith("Only an admin can use 'cohort archive'")
    [bad] = (await bot.replies(W.alice, 1))[-1:]
    assert "Usage: /cohort away" in bad

    # An anonymous question through the modal.
    await bot.command(W.bob, "ask")
    modal = (await fake.wait_for(lambda: fake.modal_stack(W.bob), what="the ask modal"))[-1]
    question = "Is it OK to say <!here> I am lost?"
    ack = await bot.submit(modal["id"], W.bob, {
        "question": {"text": {"type": "plain_text_input", "value": question}}})
    assert ack["response_action"] == "push"
    preview = fake.modal_stack(W.bob)[-1]
    assert preview["callback_id"] == "cohort-ask-preview"
    await bot.submit(preview["id"], W.bob)
    post = await fake.wait_for(
        lambda: [p for p in fake.posts(W.channel) if "Anonymous question" in p["text"]],
        timeout=15, what="the question in the channel")
    assert post[0]["text"] == ("*Anonymous question #1*\n"
                               "Is it OK to say &lt;!here&gt; I am lost?")
    assert W.bob not in json.dumps(post[0])
    for call in fake.calls:
        if "I am lost" in json.dumps(call.params):
            assert W.bob not in json.dumps(call.params)
    log = bot.stop()
    assert "I am lost" not in log and W.bob not in log
    with sqlite3.connect(bot.db) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            for row in db.execute(f'SELECT * FROM "{table}"'):
                joined = " | ".join(map(str, row))
                assert not ("I am lost" in joined and W.bob in joined), table
    assert all(t < 3.0 for t in bot.ack_times)


async def test_duplicates_once_and_a_429_storm_delivers_each_message_once(
        bot: SlackProcess) -> None:
    fake = bot.fake
    await bot.command(W.admin, "cohort create Peer A")
    await bot.command(W.admin, f"cohort members add <@{W.bob}|bob>")
    await bot.replies(W.admin, 1)

    # The same event twice (an HTTP retry / a Socket Mode redelivery): one answer.
    dm = fake.open_dm(W.bob)
    event = bot.build.message_event(user_id=W.bob, channel_id=dm, text="action list")
    await bot.event(event, "Ev0DUPLICATE1")
    await bot.event(event, "Ev0DUPLICATE1", retry=1)
    await fake.wait_for(lambda: fake.messages(dm), what="the answer in the DM")

    # A burst of prompts meets 429s (more than the SDK retries on its own).
    fake.ratelimit_next("chat.postMessage", retry_after=1, count=3)
    texts = [f"Prompt {i}: what went well?" for i in range(6)]
    for text in texts:
        await bot.command(W.admin, f"prompt {text}")
    await fake.wait_for(
        lambda: len([p for p in fake.posts(W.channel) if "Prompt " in p["text"]]) >= 6,
        timeout=30, what="every prompt")
    posted = [p["text"] for p in fake.posts(W.channel) if "Prompt " in p["text"]]
    assert sorted(posted) == sorted(f"*Prompt:* {t}" for t in texts)
    assert [c.status for c in fake.calls_to("chat.postMessage")].count(429) >= 3
    assert len([m for m in fake.messages(dm)]) == 1
    bot.stop()


async def test_scheduled_announcement_checkin_modal_reminder_and_summary(bot: SlackProcess) -> None:
    """The scheduled side of a session, on the real clock: short leads, a start minutes away."""
    fake = bot.fake
    members = {W.alice, W.bob, W.admin}
    # One command at a time, each answered before the next (as a person would type them).
    await bot.command(W.admin, "cohort create Peer A")
    await bot.post("Created *Peer A*", timeout=15)
    added = await bot.answer(W.admin, f"cohort members add <@{W.alice}|alice> <@{W.bob}|bob> "
                                      f"<@{W.admin}|ada>")
    assert added.startswith(f"Added <@{W.alice}>, <@{W.bob}>, <@{W.admin}>."), added
    for setting in ("announce-lead 2m", "checkin-lead 2m", "nudge-lead 1m"):
        assert await bot.answer(W.admin, f"cohort set {setting}") == \
            f"Peer A: {setting.split()[0]} = {setting.split()[1][:-1]} min."
    assert "Reminders for Peer A" in await bot.answer(W.admin, "cohort reminders 1m")
    # The action is recorded before the check-in falls due (two minutes before the start).
    assert "Action 1 recorded" in await bot.answer(W.alice, "action add Read chapter 3")
    start = _next_slot(timedelta(minutes=2))
    schedule = await bot.answer(W.admin,
                                f"cohort schedule dates {start:%Y-%m-%d %H:%M} UTC for 2m")
    assert schedule.startswith("Schedule for *Peer A*"), schedule
    when = f"<!date^{int(start.timestamp())}^"

    # Two minutes before: the roles are announced, mentioning members for real …
    roles = await bot.post("*Roles for Peer A*", timeout=200)
    assert when in roles["text"]
    cast = re.findall(r"^• ([a-z-]+): <@([A-Z0-9]+)>$", roles["text"], re.MULTILINE)
    # Four roles, three members: everyone has one, one has two (never case-giver + moderator).
    assert [r for r, _ in cast] == ["case-giver", "moderator", "note-taker", "timekeeper"]
    assert {u for _, u in cast} == members and cast[0][1] != cast[1][1]
    assert "Everyone else consults." in roles["text"]

    # … and Alice, who has an open action, is asked to check in, by DM, with a button.
    dm = await fake.wait_for(lambda: fake.dm_channel(W.alice), timeout=60, what="Alice's DM")
    checkin = (await fake.wait_for(
        lambda: [m for m in fake.messages(dm) if m["text"].startswith("*Check-in time (Peer A)*")],
        timeout=60, interval=0.2, what="the check-in DM"))[0]
    assert "1. Read chapter 3" in checkin["text"]
    assert "Read chapter 3" not in json.dumps(fake.posts(W.channel))  # only to her
    [open_form] = [b for b in _buttons(checkin) if b["text"]["text"] == "Check in"]
    assert open_form["value"] == "--cohort peer-a checkin"

    # The button opens the check-in form; Alice answers "done" with a note.
    await bot.click(W.alice, dm, checkin, open_form)
    form = (await fake.wait_for(lambda: fake.modal_stack(W.alice), timeout=15,
                                what="the check-in modal"))[-1]
    assert form["callback_id"] == "cohort-checkin"
    assert "1. Read chapter 3" in json.dumps(form["blocks"])
    before = len(fake.ephemerals(user=W.alice))
    ack = await bot.submit(form["id"], W.alice, {
        "answer-0": {"answer": {"type": "radio_buttons", "selected_option": {"value": "done"}}},
        "note-0": {"note": {"type": "plain_text_input", "value": "finished it"}},
    })
    assert not ack.get("response_action"), ack  # the form just closes
    saved = await fake.wait_for(lambda: fake.ephemerals(user=W.alice)[before:], timeout=15,
                                what="the check-in saved")
    assert saved[0]["text"] == ("Action 1: done (with a note). "
                                "You can change it until the session starts.")
    assert not fake.modal_stack(W.alice)

    # `/cohort checkin` opens the same form again, showing the answer given.
    await bot.command(W.alice, "checkin")
    again = (await fake.wait_for(lambda: fake.modal_stack(W.alice), timeout=15,
                                 what="the check-in modal again"))[-1]
    assert again["callback_id"] == "cohort-checkin"
    [answer_block] = [b for b in again["blocks"] if b.get("block_id") == "answer-0"]
    assert answer_block["element"]["initial_option"]["value"] == "done"
    [note_block] = [b for b in again["blocks"] if b.get("block_id") == "note-0"]
    assert note_block["element"]["initial_value"] == "finished it"
    fake.close_modal(W.alice)

    # One minute before: the reminder, with the cast mentioned; Alice, who heard of this
    # session twice (her role, her check-in), is named without a ping.
    reminder = await bot.post("*Reminder: Peer A meets in 1 min*", timeout=120)
    assert when in reminder["text"]
    assert set(MENTION.findall(reminder["text"])) == members - {W.alice}
    assert ": @alice\n" in reminder["text"] + "\n"

    # At the start: the summary counts Alice's answer (her note stays hers: she does not
    # share her check-ins).
    summary = await bot.post("*Check-in summary for Peer A*", timeout=120)
    assert summary["text"] == (
        "*Check-in summary for Peer A*\n1 action — 1 done, 0 partly, 0 not yet, 0 dropped, "
        "0 without an answer.\nOpen actions carry over to the next session.")
    assert [b["type"] for b in summary["blocks"]] == ["header", "section", "context"]
    log = bot.stop()
    assert "Traceback" not in log
    texts = [p["text"] for p in fake.posts(W.channel)]
    for head in ("*Roles for", "*Reminder:", "*Check-in summary"):
        assert sum(t.startswith(head) for t in texts) == 1, (head, texts)
    # Alice answered before the nudge was due, so none came; Bob had no action, so no DM.
    assert [m["text"].split("*")[1] for m in fake.messages(dm)
            if m["text"].startswith("*")] == ["Check-in time (Peer A)"]
    assert fake.dm_channel(W.bob) is None
    assert all(t < 3.0 for t in bot.ack_times)
