"""A question's code is seen only by its author, and nothing ties them to it in Slack's history.

Through the real Bolt app and the real core, against the fake Web API:

- the code of `/cohort ask …` is ephemeral (the command's response_url, else
  chat.postEphemeral where it was typed), never in a message that stays (chat.postMessage,
  chat.update: a DM would keep it beside the author's name);
- the ask form shows the code in the form itself (views.update); if the form cannot show it,
  it is ephemeral, still never a DM;
- `ask …`, `question <code>` and `retract <code>` sent to the bot as direct messages stay in
  that conversation under the sender's name (a bot cannot delete them): they are refused with
  a pointer to the slash command, without running, storing or repeating anything; other
  commands still work as direct messages.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
import sqlalchemy as sa

from tests.slack.conftest import SlackBot
from tests.slack.test_flows import setup_cohort, view_of
from tests.support.slack import WORKSPACE as W

CODE = re.compile(r"\b[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}\b")
QUESTION = "Is it fine to skip a session when the deadline is close?"
#: Web API methods whose messages stay in a conversation.
LASTING = ("chat.postMessage", "chat.update", "chat.scheduleMessage", "chat.meMessage")


def codes_in(value: Any) -> list[str]:
    """The distinct codes in `value` (a reply names its code three times)."""
    return sorted(set(CODE.findall(json.dumps(value))))


def lasting_calls_with(bot: SlackBot, code: str) -> list[str]:
    """The calls that would leave `code` in a conversation's history: there must be none."""
    return [c.method for c in bot.fake.calls
            if c.method in LASTING and code in json.dumps(c.params)]


async def question_rows(bot: SlackBot) -> list[tuple[Any, ...]]:
    async with bot.app.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(sa.text(
            "SELECT text, status FROM questions ORDER BY id"))).all()]


async def submit_question(bot: SlackBot, user: str, question: str) -> tuple[str, Any]:
    """`/cohort ask` → the form → preview → send. Returns the sent view's id and the ack."""
    await bot.command(user, "ask")
    modal = view_of(bot, user)
    preview_ack = await bot.post(bot.build.view_submission(
        modal["id"], user_id=user,
        values={"question": {"text": {"type": "plain_text_input", "value": question}}}))
    bot.fake.apply_view_response(user, preview_ack.json())
    preview = view_of(bot, user)
    assert preview["callback_id"] == "cohort-ask-preview"
    sent = await bot.post(bot.build.view_submission(preview["id"], user_id=user))
    await bot.settle()
    return str(preview["id"]), sent.json()


# ---------------------------------------------------------------------------- /cohort ask …


async def test_the_code_of_a_typed_question_is_ephemeral_and_in_no_lasting_message(
        slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot, release="immediate")
    slack_bot.fake.clear_calls()

    await slack_bot.command(W.bob, f"ask {QUESTION}")

    shown = [p for p in slack_bot.fake.response_url_posts() if codes_in(p.body)]
    assert len(shown) == 1, "the code is shown once, through the command's response_url"
    [code] = codes_in(shown[0].body)
    assert shown[0].body["response_type"] == "ephemeral" and shown[0].status == 200
    assert shown[0].user_id == W.bob
    assert "Your code:" in slack_bot.last_reply(W.bob)
    assert lasting_calls_with(slack_bot, code) == []
    assert not slack_bot.fake.calls_to("conversations.open")
    assert slack_bot.dms(W.bob) == []
    # The question itself was posted (immediate release), without the code.
    assert any(p.startswith("*Anonymous question #1*") for p in slack_bot.channel_posts())


async def test_without_a_response_url_the_code_is_posted_ephemerally_where_it_was_typed(
        slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    slack_bot.fake.clear_calls()
    slack_bot.fake.response_url_uses = 0  # every response_url answers used_url

    await slack_bot.command(W.bob, f"ask {QUESTION}")

    [ephemeral] = slack_bot.fake.calls_to("chat.postEphemeral")
    assert ephemeral.ok and ephemeral.params["channel"] == W.channel
    assert ephemeral.params["user"] == W.bob
    [code] = codes_in(ephemeral.params)
    assert lasting_calls_with(slack_bot, code) == []
    assert slack_bot.dms(W.bob) == []


async def test_with_no_ephemeral_way_the_code_is_dropped_not_sent_by_dm(
        slack_bot: SlackBot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await setup_cohort(slack_bot)
    slack_bot.fake.clear_calls()
    slack_bot.fake.response_url_uses = 0
    slack_bot.fake.fail_next("chat.postEphemeral", status=200, error="channel_not_found")

    await slack_bot.command(W.bob, f"ask {QUESTION}")

    assert len(await question_rows(slack_bot)) == 1  # the question is in
    # The code went only into the ephemeral attempt that failed.
    tried = [(c.method, c.ok) for c in slack_bot.fake.calls if codes_in(c.params)]
    assert tried == [("chat.postEphemeral", False)]
    assert not slack_bot.fake.calls_to("conversations.open")
    assert slack_bot.dms(W.bob) == []
    warned = [r.getMessage() for r in caplog.records if r.name.startswith("adapters.slack")
              and r.levelno >= logging.WARNING]
    assert any("could not be shown" in m for m in warned), warned
    for message in (r.getMessage() for r in caplog.records):
        assert W.bob not in message and "skip a session" not in message
        assert not CODE.search(message)


# ---------------------------------------------------------------------------- the ask form


async def test_the_form_shows_the_code_in_place_and_no_message_holds_it(
        slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    slack_bot.fake.clear_calls()

    view_id, ack = await submit_question(slack_bot, W.bob, QUESTION)

    # The submission is answered at once with a form that says it is being sent…
    assert ack["response_action"] == "update"
    assert "Sending your question" in json.dumps(ack["view"]) and not codes_in(ack)
    # …and the same view then shows the core's reply, the code included.
    [update] = slack_bot.fake.calls_to("views.update")
    assert update.ok and update.params["view_id"] == view_id
    [code] = codes_in(update.params)
    shown = slack_bot.fake.view(view_id)
    assert code in json.dumps(shown["blocks"]) and shown["submit"] is None
    assert shown["close"]["text"] == "Close" and shown["clear_on_close"] is True
    # Nowhere else: no lasting message, no ephemeral, no DM.
    assert lasting_calls_with(slack_bot, code) == []
    assert not any(codes_in(p.body) for p in slack_bot.fake.response_url_posts())
    assert not any(codes_in(e) for e in slack_bot.fake.ephemerals())
    assert slack_bot.dms(W.bob) == []
    assert [r[0] for r in await question_rows(slack_bot)] == [QUESTION]


@pytest.mark.parametrize("response_url", ["works", "expired"])
async def test_when_the_form_is_gone_the_code_is_ephemeral_never_a_dm(
        slack_bot: SlackBot, response_url: str) -> None:
    await setup_cohort(slack_bot)
    slack_bot.fake.clear_calls()
    slack_bot.fake.fail_next("views.update", status=200, error="not_found")  # closed
    if response_url == "expired":
        slack_bot.fake.response_url_uses = 0

    await submit_question(slack_bot, W.bob, QUESTION)

    [update] = slack_bot.fake.calls_to("views.update")
    assert not update.ok
    [ephemeral] = slack_bot.fake.ephemerals(user=W.bob)
    [code] = codes_in(ephemeral)
    assert ephemeral["channel"] == W.channel  # where the form was opened
    assert ephemeral["via"] == ("response_url" if response_url == "works"
                                else "chat.postEphemeral")
    assert lasting_calls_with(slack_bot, code) == []
    assert slack_bot.dms(W.bob) == []


# ---------------------------------------------------------------------------- direct messages


async def send_dm(bot: SlackBot, user: str, text: str) -> str:
    """`text` sent to the bot as a direct message; returns the DM conversation."""
    dm = bot.fake.open_dm(user)
    await bot.post(bot.build.event_callback(bot.build.message_event(
        user_id=user, channel_id=dm, text=text)))
    await bot.settle()
    return dm


def bot_answers(bot: SlackBot, dm: str) -> list[str]:
    return [m["text"] for m in bot.fake.messages(dm) if m.get("user") == W.bot_user]


async def test_ask_as_a_direct_message_is_refused_and_nothing_is_stored(
        slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot, release="immediate")
    posts_before = slack_bot.channel_posts()
    slack_bot.fake.clear_calls()

    dm = await send_dm(slack_bot, W.bob, f"ask {QUESTION}")
    await send_dm(slack_bot, W.bob, f"/cohort ask {QUESTION}")  # a slash command sent as text

    assert await question_rows(slack_bot) == []
    assert slack_bot.channel_posts() == posts_before
    refusals = bot_answers(slack_bot, dm)
    assert len(refusals) == 2
    for refusal in refusals:
        assert "/cohort ask" in refusal  # where to ask instead
        assert "skip a session" not in refusal and not CODE.search(refusal)
    # Private: only in the bot's conversation with Bob, nothing posted anywhere else.
    assert {c.params.get("channel") for c in slack_bot.fake.calls_to("chat.postMessage")} \
        == {dm}
    assert not any("skip a session" in json.dumps(c.params) for c in slack_bot.fake.calls)


@pytest.mark.parametrize("verb", ["question", "retract"])
async def test_code_commands_as_direct_messages_are_refused(slack_bot: SlackBot,
                                                            verb: str) -> None:
    await setup_cohort(slack_bot)
    await slack_bot.command(W.bob, f"ask {QUESTION}")
    [code] = codes_in(slack_bot.last_reply(W.bob))
    before = await question_rows(slack_bot)
    slack_bot.fake.clear_calls()

    dm = await send_dm(slack_bot, W.bob, f"{verb} {code}")

    [refusal] = bot_answers(slack_bot, dm)
    assert f"/cohort {verb}" in refusal and code not in refusal
    assert "skip a session" not in refusal
    assert await question_rows(slack_bot) == before  # not retracted, nothing looked up
    # The slash command still does it.
    await slack_bot.command(W.bob, f"{verb} {code}")
    assert slack_bot.last_reply(W.bob) != refusal


async def test_other_commands_still_work_as_direct_messages(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)

    dm = await send_dm(slack_bot, W.bob, "next")
    await send_dm(slack_bot, W.bob, "help")

    nxt, helped = bot_answers(slack_bot, dm)
    assert nxt.startswith("Next session of *Peer A*:")
    assert "ask" in helped
