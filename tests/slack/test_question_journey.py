"""A posted anonymous question withdrawn by its author, through the real Bolt app and the
real core against the fake Web API: the bot deletes its own post (chat.delete)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from tests.slack.conftest import SlackBot
from tests.slack.test_flows import setup_cohort
from tests.support.slack import WORKSPACE as W

QUESTION = "Is it fine to skip a session when the deadline is close?"
CODE = re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b")


async def test_withdrawing_a_posted_question_deletes_the_bots_post(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot, release="immediate")
    await slack_bot.command(W.bob, f"ask {QUESTION}")
    found = CODE.search(slack_bot.last_reply(W.bob))
    assert found is not None
    [post] = [p for p in slack_bot.fake.posts(W.channel) if QUESTION in p["text"]]
    slack_bot.fake.clear_calls()

    await slack_bot.command(W.alice, "retract ZZZZ-ZZZZ-ZZZZ")  # a wrong code: nothing goes
    assert "No question has that code" in slack_bot.last_reply(W.alice)
    assert not slack_bot.fake.calls_to("chat.delete")

    await slack_bot.command(W.bob, f"retract {found[0]}")
    assert "withdrawn: its post is being removed" in slack_bot.last_reply(W.bob)
    [delete] = slack_bot.fake.calls_to("chat.delete")
    assert delete.ok and delete.params["channel"] == W.channel
    assert delete.params["ts"] == post["ts"]
    assert not any(QUESTION in p for p in slack_bot.channel_posts())
    assert slack_bot.dms(W.bob) == []  # the author's link to it is nowhere in Slack
    await slack_bot.command(W.alice, "questions")
    assert QUESTION not in slack_bot.last_reply(W.alice)


async def test_the_author_is_told_ephemerally_in_the_channel_never_by_dm(
        slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    await slack_bot.command(W.admin, "cohort set moderation on")
    await slack_bot.command(W.bob, f"ask {QUESTION}")
    await slack_bot.command(W.admin, "questions review")
    found = re.search(r"\[(\w+)\]", slack_bot.last_reply(W.admin))
    assert found is not None
    slack_bot.fake.clear_calls()

    await slack_bot.command(W.admin, f"return {found[1]} please add <!channel> context")
    told = [c for c in slack_bot.fake.calls_to("chat.postEphemeral")
            if c.params.get("user") == W.bob]
    assert len(told) == 1 and told[0].ok
    assert told[0].params["channel"] == W.channel
    text = str(told[0].params["text"])
    assert "was returned by a facilitator" in text and "please add" in text
    assert "<!channel>" not in text  # the note is shown, and pings nobody
    assert slack_bot.dms(W.bob) == []
    assert not any(c.params.get("channel") == slack_bot.fake.dm_channel(W.bob)
                   for c in slack_bot.fake.calls if c.method == "chat.postMessage")


async def test_the_count_on_the_post_is_updated_in_place_not_once_per_vote(
        slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot, release="immediate")
    await slack_bot.command(W.bob, f"ask {QUESTION}")
    [post] = [p for p in slack_bot.fake.posts(W.channel) if QUESTION in p["text"]]
    slack_bot.fake.clear_calls()
    for who in (W.alice, W.admin):
        await slack_bot.command(who, "upvote 1")
    assert not slack_bot.fake.calls_to("chat.update")
    now = slack_bot.app.clock.now()
    await slack_bot.advance_to(now + timedelta(minutes=13))
    [update] = slack_bot.fake.calls_to("chat.update")
    assert update.ok and update.params["ts"] == post["ts"]
    assert update.params["channel"] == W.channel
    assert "▲ 2 upvotes" in str(update.params["text"])
    assert "Upvote #1" in json.dumps(update.params.get("blocks"))  # still open
    [shown] = [p for p in slack_bot.fake.posts(W.channel) if QUESTION in p["text"]]
    assert "▲ 2 upvotes" in shown["text"] and shown["ts"] == post["ts"]
    # Voting closes at the end of the session: one last update, without the button.
    await slack_bot.advance_to(now + timedelta(days=8))
    last = slack_bot.fake.calls_to("chat.update")[-1]
    assert len(slack_bot.fake.calls_to("chat.update")) == 2
    assert "voting closed" in str(last.params["text"])
    assert "Upvote #1" not in json.dumps(last.params.get("blocks"))
