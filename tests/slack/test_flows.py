"""Every capability through the real Slack adapter and the real core, in one process.

The bot serves HTTP on loopback; the tests send what Slack sends (signed slash commands,
button clicks, view submissions, events) and read what the fake Slack recorded. Time moves
only when a test moves the simulated clock (`advance_to`), so reminders, rotations, check-ins
and summaries are tested without waiting for them.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.db.tables import metadata
from tests.slack.conftest import START, SlackBot
from tests.support.slack import WORKSPACE as W

SCHEDULE = "weekly tue 14:00 Europe/London for 90m"
MENTION = re.compile(r"<@([A-Z0-9]+)>")


async def setup_cohort(bot: SlackBot, *, release: str | None = None) -> None:
    await bot.command(W.admin, "cohort create Peer A")
    await bot.command(W.admin, f"cohort schedule {SCHEDULE}")
    await bot.command(W.admin, f"cohort members add <@{W.alice}|alice> <@{W.bob}|bob> "
                               f"<@{W.admin}|ada>")
    await bot.command(W.admin, f"cohort facilitators add <@{W.admin}|ada>")
    if release:
        await bot.command(W.admin, f"cohort set question-release {release}")


def view_of(bot: SlackBot, user: str) -> dict[str, Any]:
    stack = bot.fake.modal_stack(user)
    assert stack, f"no modal open for {user}"
    return stack[-1]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks") or [] if b["type"] == "actions"
            for e in b["elements"]]


# ---------------------------------------------------------------------------- setting up


async def test_a_cohort_is_set_up_from_slash_commands(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)

    [created] = slack_bot.channel_posts()
    assert created.startswith("Created *Peer A* (id peer-a), linked to this channel.")
    replies = slack_bot.replies_to(W.admin)
    assert replies[0].startswith("Schedule for *Peer A*: every Tuesday at 14:00")
    # Times are Slack date tokens: every reader sees their own zone.
    assert "<!date^1796133600^{date_short_pretty} at {time}|Tue 1 Dec 2026, 14:00 GMT>" \
        in replies[0]
    assert replies[1].startswith(f"Added <@{W.alice}>, <@{W.bob}>, <@{W.admin}>.")
    await slack_bot.command(W.bob, "next")
    nxt = slack_bot.last_reply(W.bob)
    assert nxt.startswith("Next session of *Peer A*:")
    assert "|Tue 1 Dec 2026, 06:00 PST>" in nxt  # Bob's zone, from users.info
    assert all(a.status == 200 and a.elapsed < 3.0 for a in slack_bot.acks)


async def test_bad_input_gets_a_clear_private_answer_and_changes_nothing(
        slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    slack_bot.fake.clear_calls()
    posts_before = slack_bot.channel_posts()

    await slack_bot.command(W.admin, "cohort schedule fortnightly-ish at teatime")
    await slack_bot.command(W.alice, "swap moderator")
    await slack_bot.command(W.alice, "frobnicate now")

    schedule_err, swap_err, unknown = slack_bot.replies_to(W.admin)[-1:] + \
        slack_bot.replies_to(W.alice)[-2:]
    assert schedule_err.startswith("I don't understand 'fortnightly-ish'")
    assert swap_err.endswith("Usage: /cohort swap &lt;role&gt; @member")  # shown as <role>
    assert unknown == ("Unknown command 'frobnicate'. '/cohort help' lists what you can do."
                       "\nUsage: /cohort help")
    assert slack_bot.channel_posts() == posts_before
    assert not slack_bot.fake.calls_to("chat.postMessage")


async def test_members_cannot_run_admin_or_facilitator_commands(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)

    await slack_bot.command(W.alice, "cohort archive")
    await slack_bot.command(W.bob, "session start")
    await slack_bot.command(W.bob, "cohort create Takeover", channel=W.channel_without_bot)

    assert slack_bot.replies_to(W.alice)[-1].startswith("Only an admin can use 'cohort archive'")
    bob = slack_bot.replies_to(W.bob)
    assert bob[-2].startswith("Only a facilitator of Peer A can use 'session start'")
    assert bob[-1].startswith("Only an admin can use 'cohort create'")
    # The workspace admin (users.info is_admin) may, with no config entry needed.
    await slack_bot.command(W.admin, "cohort show")
    assert "Peer A" in slack_bot.last_reply(W.admin)


async def test_public_reply_where_the_bot_is_not_a_member_says_to_invite_it(
        slack_bot: SlackBot) -> None:
    await slack_bot.command(W.admin, "cohort create Peer B", channel=W.channel_without_bot)

    [shown] = [m["text"] for m in slack_bot.fake.messages(W.channel_without_bot)]
    assert shown.startswith("Created *Peer B*")  # through the response_url, in the channel
    assert "invite me" in slack_bot.last_reply(W.admin)


# ---------------------------------------------------------------------------- anonymous questions


async def test_question_via_the_modal_is_posted_with_no_trace_of_its_author(
        slack_bot: SlackBot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await setup_cohort(slack_bot, release="immediate")
    question = "How do I say no to my PI <!channel> & keep <@U0ADMIN01> happy?"
    slack_bot.fake.clear_calls()

    await slack_bot.command(W.bob, "ask")
    modal = view_of(slack_bot, W.bob)
    assert modal["callback_id"] == "cohort-ask"
    assert "never stored or shown" in json.dumps(modal["blocks"])
    preview_ack = await slack_bot.post(slack_bot.build.view_submission(
        modal["id"], user_id=W.bob,
        values={"question": {"text": {"type": "plain_text_input", "value": question}}}))
    assert preview_ack.json()["response_action"] == "push"
    slack_bot.fake.apply_view_response(W.bob, preview_ack.json())
    preview = view_of(slack_bot, W.bob)
    assert preview["callback_id"] == "cohort-ask-preview"
    shown = json.dumps(preview["blocks"])
    assert "&lt;!channel&gt;" in shown and "<!channel>" not in shown
    sent = await slack_bot.post(slack_bot.build.view_submission(preview["id"], user_id=W.bob))
    assert sent.json()["response_action"] == "update"  # "Sending…", then the reply in place
    await slack_bot.settle()

    [post] = slack_bot.fake.posts(W.channel)[-1:]
    assert post["text"] == ("*Anonymous question #1*\nHow do I say no to my PI &lt;!channel&gt; "
                            "&amp; keep &lt;@U0ADMIN01&gt; happy?")
    assert post["unfurl_links"] is False and post["unfurl_media"] is False
    assert W.bob not in json.dumps(post)
    assert [b["text"]["text"] for b in buttons(post)] == ["Upvote #1"]
    # The author got the code in the form, and nowhere else (tests/slack/test_question_privacy).
    assert "Your code:" in json.dumps(slack_bot.fake.view(preview["id"])["blocks"])
    assert slack_bot.dms(W.bob) == [] and slack_bot.replies_to(W.bob) == []
    # No Web API call that carries the question also names its author…
    bob_dm = slack_bot.fake.dm_channel(W.bob)
    for call in slack_bot.fake.calls:
        text = json.dumps(call.params)
        if "say no to my PI" in text:
            assert W.bob not in text and (bob_dm is None or bob_dm not in text)
    # …no row of the database, and no log line.
    async with slack_bot.app.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(sa.select(table))).all()
            for row in rows:
                joined = " | ".join(str(v) for v in row)
                if "say no to my PI" in joined:
                    assert W.bob not in joined, table.name
    for record in caplog.records:
        assert "say no to my PI" not in record.getMessage()
        assert W.bob not in record.getMessage()


async def test_an_empty_question_is_refused_in_the_modal(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    await slack_bot.command(W.alice, "ask")
    modal = view_of(slack_bot, W.alice)

    ack = await slack_bot.post(slack_bot.build.view_submission(
        modal["id"], user_id=W.alice,
        values={"question": {"text": {"type": "plain_text_input", "value": "   "}}}))

    assert ack.json() == {"response_action": "errors",
                          "errors": {"question": "Write a question first."}}


async def test_upvote_button_and_moderation_buttons(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    await slack_bot.command(W.admin, "cohort set moderation on")
    await slack_bot.command(W.bob, "ask Is it fine to skip a session?")
    await slack_bot.command(W.admin, "questions review")
    review = slack_bot.fake.ephemerals(user=W.admin)[-1]
    approve = next(b for b in buttons(review) if b["text"]["text"] == "Approve")

    await slack_bot.post(slack_bot.build.block_actions(
        [{"action_id": approve["action_id"], "block_id": "b", "value": approve["value"]}],
        user_id=W.admin, channel_id=W.channel,
        message={"type": "message", "ts": "1.0", "is_ephemeral": True}))
    await slack_bot.settle()
    assert slack_bot.last_reply(W.admin).startswith("Approved")
    await slack_bot.command(W.admin, "release confirm")  # one question alone: on purpose
    [post] = [p for p in slack_bot.fake.posts(W.channel) if "Anonymous" in p["text"]]
    [upvote] = buttons(post)

    for _ in range(2):  # a second click is not a second vote
        await slack_bot.post(slack_bot.build.block_actions(
            [{"action_id": upvote["action_id"], "block_id": "b", "value": upvote["value"]}],
            user_id=W.alice, channel_id=W.channel, message=post))
        await slack_bot.settle()
    first, second = slack_bot.replies_to(W.alice)[-2:]
    assert "upvote" in first.lower() and first != second


# ---------------------------------------------------------------------------- time-driven flows


def shape(message: dict[str, Any]) -> list[tuple[str, str]]:
    """A message's blocks as (type, text): the header's plain text, a section's mrkdwn, a
    context's elements joined; buttons as their labels."""
    out = []
    for b in message.get("blocks") or []:
        if b["type"] in ("header", "section"):
            out.append((b["type"], b["text"]["text"]))
        elif b["type"] == "context":
            out.append(("context", " ".join(e["text"] for e in b["elements"])))
        elif b["type"] == "actions":
            out.append(("actions", ", ".join(e["text"]["text"] for e in b["elements"])))
    return out


async def test_notifications_are_laid_out_as_header_sections_and_context(
        slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    await slack_bot.command(W.alice, "action add Ask <!channel> about *dates*")
    await slack_bot.advance_to(START + timedelta(days=8, hours=5))  # the second session starts
    fake = slack_bot.fake

    posts = {p["text"].split("\n")[0]: p for p in fake.posts(W.channel)}
    date = "<!date^1796738400^{date_short_pretty} at {time}|Tue 8 Dec 2026, 14:00 GMT>"
    early = posts[f"*Reminder: Peer A meets in 1 day* — {date}. /cohort next shows your role."]
    assert shape(early) == [("header", "Reminder: Peer A meets in 1 day"),
                            ("section", f"{date}."),
                            ("context", "/cohort next shows your role.")]
    [roles] = [p for title, p in posts.items() if title == "*Roles for Peer A*"]
    head, when, (cast, cast_text), everyone, swap = shape(roles)
    assert head == ("header", "Roles for Peer A")
    assert when == ("section", f"For the session on {date}:")
    assert cast == "section" and cast_text.startswith("• case-giver: <@U")
    assert cast_text.count("\n• ") == 3 and len(MENTION.findall(cast_text)) == 4
    assert everyone == ("section", "Everyone else consults.")
    assert swap == ("context", "Need to swap? /cohort swap &lt;role&gt; @member")
    last = next(p for title, p in posts.items()
                if title.startswith("*Reminder: Peer A meets in 1 h") and date in title)
    assert [t for t, _ in shape(last)] == ["header", "section", "section"]
    cast_text = shape(last)[2][1]
    assert cast_text.startswith("• case-giver: <@U") and "\n• timekeeper: " in cast_text
    # Alice heard of this session twice (her role, her check-in): named, not notified.
    assert W.alice not in cast_text and "• note-taker: @alice\n" in cast_text, cast_text
    summary = next(p for title, p in posts.items() if title == "*Check-in summary for Peer A*")
    assert shape(summary) == [
        ("header", "Check-in summary for Peer A"),
        ("section", "1 action — 0 done, 0 partly, 0 not yet, 0 dropped, 1 without an answer."),
        ("context", "Open actions carry over to the next session.")]

    dm = fake.dm_channel(W.alice)
    assert dm is not None
    checkin = [m for m in fake.messages(dm) if m["text"].startswith("*Check-in time")][-1]
    assert [t for t, _ in shape(checkin)] == ["header", "section", "section", "context",
                                              "actions"]
    # The member's own words are shown, and can ping no one.
    assert shape(checkin)[2] == ("section", "1. Ask @\u2060channel about *dates*")
    # Every laid-out message still carries its whole text, for notifications and old clients.
    laid_out = [m for m in [*posts.values(), checkin] if shape(m) and shape(m)[0][0] == "header"]
    assert len(laid_out) >= 6
    for message in laid_out:
        assert not message["text_missing"]
        assert message["text"].startswith(f"*{shape(message)[0][1]}*")


async def test_rotation_reminders_checkin_modal_and_summary(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    await slack_bot.command(W.alice, "action add Draft the email")
    await slack_bot.advance_to(START + timedelta(days=1, hours=4))  # Tue 13:00 UTC

    posts = slack_bot.channel_posts()
    reminders = [p for p in posts if p.startswith("*Reminder: Peer A meets in")]
    assert [r.split(" — ")[0] for r in reminders] == [
        "*Reminder: Peer A meets in 1 day*", "*Reminder: Peer A meets in 1 h*"]
    assert all("<!date^1796133600^" in r for r in reminders)
    # Only the last reminder mentions the cast (for real); the first is one quiet line.
    assert not MENTION.findall(reminders[0]) and MENTION.findall(reminders[1])

    # The week after: roles are announced, and the check-in arrives by DM with a button
    # that opens the check-in form.
    await slack_bot.advance_to(START + timedelta(days=6, hours=6))
    [roles] = [p for p in slack_bot.channel_posts() if p.startswith("*Roles for Peer A*")]
    assert "<!date^1796738400^" in roles and MENTION.findall(roles)
    dm = slack_bot.fake.messages(str(slack_bot.fake.dm_channel(W.alice)))[-1]
    assert dm["text"].startswith("*Check-in time (Peer A)*")
    [open_checkin] = [b for b in buttons(dm) if b["value"] == "--cohort peer-a checkin"]
    await slack_bot.post(slack_bot.build.block_actions(
        [{"action_id": open_checkin["action_id"], "block_id": "b",
          "value": open_checkin["value"]}],
        user_id=W.alice, channel_id=str(slack_bot.fake.dm_channel(W.alice)), message=dm))
    await slack_bot.settle()
    modal = view_of(slack_bot, W.alice)
    assert modal["callback_id"] == "cohort-checkin"
    assert "1. Draft the email" in json.dumps(modal["blocks"])
    await slack_bot.post(slack_bot.build.view_submission(modal["id"], user_id=W.alice, values={
        "answer-0": {"answer": {"type": "radio_buttons",
                                "selected_option": {"value": "done"}}},
        "note-0": {"note": {"type": "plain_text_input", "value": "sent it, went fine"}},
    }))
    await slack_bot.settle()
    assert "done" in slack_bot.replies_to(W.alice)[-1].lower()

    await slack_bot.command(W.admin, "summary")
    assert "1 done" in slack_bot.last_reply(W.admin)
    await slack_bot.advance_to(START + timedelta(days=8, hours=5))  # the session starts
    summary = [p for p in slack_bot.channel_posts() if p.startswith("*Check-in summary")][-1]
    assert "1 action — 1 done" in summary
    assert all(a.elapsed < 3.0 for a in slack_bot.acks)
