"""Requests as Slack sends them: signatures, retries, redeliveries, events, App Home, the
3-second rule, and errors that happen after the acknowledgement."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from adapters.slack.listeners import Listeners
from tests.slack.conftest import SlackBot
from tests.slack.test_flows import buttons, setup_cohort, view_of
from tests.support.slack import WORKSPACE as W


async def test_bad_and_stale_signatures_are_rejected(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    answered = len(slack_bot.fake.response_url_posts())
    build = slack_bot.build

    for options in ({"bad_signature": True}, {"stale": True}):
        request = build.slash_command("/cohort", "cohort archive", user_id=W.admin,
                                      channel_id=W.channel, **options)
        result = await slack_bot.post(request)
        assert result.status == 401, options
    await slack_bot.settle()

    assert len(slack_bot.fake.response_url_posts()) == answered
    await slack_bot.command(W.admin, "next")
    assert "Peer A" in slack_bot.last_reply(W.admin)  # not archived


async def test_url_verification_and_health(slack_bot: SlackBot) -> None:
    import aiohttp

    result = await slack_bot.post(slack_bot.build.url_verification("c-123"))
    assert result.json() == {"challenge": "c-123"}
    async with aiohttp.ClientSession() as session, session.get(
            slack_bot.url.replace("/slack/events", "/healthz")) as resp:
        assert resp.status == 200
        assert (await resp.json())["ok"] is True


async def test_a_retried_event_is_handled_once(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    dm = slack_bot.fake.open_dm(W.bob)
    build = slack_bot.build
    event = build.message_event(user_id=W.bob, channel_id=dm, text="next")
    first = build.event_callback(event, event_id="Ev0DUPLICATE")
    retry = build.event_callback(event, event_id="Ev0DUPLICATE", retry_num=1,
                                 retry_reason="http_timeout")

    await slack_bot.post(first)
    await slack_bot.post(retry)
    await slack_bot.settle()

    answers = [m["text"] for m in slack_bot.fake.messages(dm)]
    assert len(answers) == 1 and answers[0].startswith("Next session of *Peer A*")


async def test_own_and_bot_messages_are_ignored(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    dm = slack_bot.fake.open_dm(W.bob)
    build = slack_bot.build
    own = build.message_event(user_id=W.bot_user, channel_id=dm, text="next")
    own["bot_id"] = W.bot_id
    edited = {**build.message_event(user_id=W.bob, channel_id=dm, text="next"),
              "subtype": "message_changed"}

    for event in (own, edited):
        await slack_bot.post(build.event_callback(event))
    await slack_bot.settle()

    assert slack_bot.fake.messages(dm) == []


async def test_app_home_shows_next_session_role_and_actions(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    await slack_bot.command(W.alice, "action add Ask for feedback on the talk")
    build = slack_bot.build

    await slack_bot.post(build.event_callback(build.app_home_opened_event(
        user_id=W.alice, channel_id="D0ALICEDM1")))
    await slack_bot.settle()

    home = slack_bot.fake.home_view(W.alice)
    assert home is not None
    shown = json.dumps(home["blocks"])
    assert "Next session of *Peer A*" in shown and "Your role:" in shown
    assert "Ask for feedback on the talk" in shown
    labels = [b["text"]["text"] for b in buttons(home)]
    assert labels[:3] == ["Check in", "Ask anonymously", "Add an action"]
    # The home's "Add an action" button opens the form; submitting it records the action.
    add = next(b for b in buttons(home) if b["text"]["text"] == "Add an action")
    await slack_bot.post(build.block_actions(
        [{"action_id": add["action_id"], "block_id": "b", "value": add["value"]}],
        user_id=W.alice, view=home))
    await slack_bot.settle()
    modal = view_of(slack_bot, W.alice)
    await slack_bot.post(build.view_submission(modal["id"], user_id=W.alice, values={
        "action": {"text": {"type": "plain_text_input", "value": "Write the abstract"}}}))
    await slack_bot.settle()
    await slack_bot.command(W.alice, "action list")
    assert "Write the abstract" in slack_bot.last_reply(W.alice)


async def test_swap_buttons_answer_as_the_clicking_user(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    await slack_bot.command(W.alice, "next")
    role = slack_bot.last_reply(W.alice).split("Your role: ")[1].split(" ")[0].rstrip(",")
    await slack_bot.command(W.alice, f"swap {role} <@{W.bob}|bob>")
    [request] = [m for m in slack_bot.fake.messages(str(slack_bot.fake.dm_channel(W.bob)))]
    accept = next(b for b in buttons(request) if b["text"]["text"] == "Accept")

    await slack_bot.post(slack_bot.build.block_actions(
        [{"action_id": accept["action_id"], "block_id": "b", "value": accept["value"]}],
        user_id=W.bob, channel_id=str(slack_bot.fake.dm_channel(W.bob)), message=request))
    await slack_bot.settle()

    assert slack_bot.last_reply(W.bob).startswith(f"You take {role}")


async def test_an_error_after_the_ack_is_logged_and_the_user_told(
        slack_bot: SlackBot, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: Listeners, *args: Any) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(Listeners, "_run", broken)
    caplog.set_level(logging.ERROR)

    result = await slack_bot.command(W.alice, "next")

    assert result.status == 200
    told = slack_bot.last_reply(W.alice)
    assert told.startswith("Something went wrong on our side (ref ")
    assert "fire" not in told and "RuntimeError" not in told
    ref = told.split("(ref ")[1].split(")")[0]
    [record] = [r for r in caplog.records if ref in r.getMessage()]
    assert record.exc_info is not None and "database on fire" in str(record.exc_info[1])


async def test_socket_mode_in_process(socket_bot: SlackBot) -> None:
    bot = socket_bot
    build = bot.build
    command = build.slash_command_payload("/cohort", "cohort create Peer S",
                                          user_id=W.admin, channel_id=W.channel)

    delivery = await bot.fake.socket_send("slash_commands", command)
    await bot.settle()

    assert delivery.acked and delivery.ack_elapsed is not None and delivery.ack_elapsed < 3.0
    assert bot.channel_posts()[-1].startswith("Created *Peer S*")
    event = build.event_callback_payload(build.app_home_opened_event(
        user_id=W.admin, channel_id="D0ADMINDM1"), event_id="Ev0SOCKET01")
    first = await bot.fake.socket_send("events_api", event)
    await bot.fake.socket_redeliver(first)
    await bot.settle()
    assert bot.fake.home_view(W.admin) is not None
