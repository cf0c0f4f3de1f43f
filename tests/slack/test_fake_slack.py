"""The fake Slack behaves like Slack, as seen through the real slack_sdk and slack_bolt.

Every test drives the fake with the unmodified libraries the adapter uses, so a fake that
drifts from what those libraries expect fails here first.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.support.slack import FakeSlack, Workspace, post_signed

ROOT = Path(__file__).resolve().parents[2]


def client_for(fake: FakeSlack, token: str | None = "xoxb-test", **kwargs: Any
               ) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=fake.api_url, **kwargs)


async def slack_error(call: Awaitable[Any]) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# ---------------------------------------------------------------------------- Web API


async def test_post_message_to_a_member_channel_is_stored(fake_slack: FakeSlack,
                                                          slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Week 1*"}}]
    metadata = {"event_type": "cohort_reminder", "event_payload": {"session": 7}}

    resp = await client.chat_postMessage(channel=slack_ws.channel, text="Week 1", blocks=blocks,
                                         metadata=metadata, unfurl_links=False)

    assert resp["ok"] is True
    assert resp["channel"] == slack_ws.channel
    ts = resp["ts"]
    assert isinstance(ts, str) and "." in ts
    assert resp["message"]["bot_id"] == slack_ws.bot_id
    [stored] = fake_slack.messages(slack_ws.channel)
    assert stored["ts"] == ts
    assert stored["text"] == "Week 1"
    assert stored["blocks"] == blocks
    assert stored["metadata"] == metadata
    assert stored["user"] == slack_ws.bot_user
    assert stored["unfurl_links"] is False and stored["unfurl_media"] is None
    [call] = fake_slack.calls_to("chat.postMessage")
    assert call.token == slack_ws.bot_token and call.status == 200
    assert call.content_type.startswith("application/json")
    assert fake_slack.posts() == [stored]


async def test_post_message_where_the_bot_is_not_a_member(fake_slack: FakeSlack,
                                                          slack_ws: Workspace) -> None:
    client = client_for(fake_slack)

    err = await slack_error(client.chat_postMessage(channel=slack_ws.channel_without_bot,
                                                    text="hello"))

    assert err.response.status_code == 200
    assert err.response["error"] == "not_in_channel"
    assert fake_slack.messages(slack_ws.channel_without_bot) == []
    # Joining fixes it, exactly as on Slack.
    joined = await client.conversations_join(channel=slack_ws.channel_without_bot)
    assert joined["channel"]["is_member"] is True
    await client.chat_postMessage(channel=slack_ws.channel_without_bot, text="hello")
    assert [m["text"] for m in fake_slack.messages(slack_ws.channel_without_bot)] == ["hello"]


async def test_unknown_and_private_channels_are_not_found(fake_slack: FakeSlack,
                                                          slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    secret = fake_slack.add_channel("mentors", private=True, members=[slack_ws.admin])

    for channel in ("C0NOPE0000", secret):
        err = await slack_error(client.chat_postMessage(channel=channel, text="x"))
        assert err.response["error"] == "channel_not_found"
    err = await slack_error(client.conversations_info(channel=secret))
    assert err.response["error"] == "channel_not_found"


@pytest.mark.parametrize(("token", "setup", "error"), [
    ("xoxb-wrong", None, "invalid_auth"),
    (None, None, "not_authed"),
    ("xoxb-test", "revoke", "token_revoked"),
    ("xoxb-test", "deactivate", "account_inactive"),
    ("xapp-test", None, "not_allowed_token_type"),
])
async def test_token_problems(fake_slack: FakeSlack, slack_ws: Workspace, token: str | None,
                              setup: str | None, error: str) -> None:
    client = client_for(fake_slack, token=token)
    assert (await client_for(fake_slack).auth_test())["ok"]
    if setup == "revoke":
        fake_slack.revoke_token(slack_ws.bot_token)
    elif setup == "deactivate":
        fake_slack.deactivate_token(slack_ws.bot_token)

    err = await slack_error(client.chat_postMessage(channel=slack_ws.channel, text="x"))

    assert err.response.status_code == 200
    assert err.response["error"] == error
    assert fake_slack.messages(slack_ws.channel) == []


async def test_missing_scope_and_unknown_method(fake_slack: FakeSlack,
                                                slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    fake_slack.set_scopes(slack_ws.bot_token, {"users:read"})

    err = await slack_error(client.chat_postMessage(channel=slack_ws.channel, text="x"))
    assert err.response["error"] == "missing_scope"
    assert err.response["needed"] == "chat:write"
    assert err.response["provided"] == "users:read"

    err = await slack_error(client.api_call("cohorts.frobnicate"))
    assert err.response.status_code == 200
    assert err.response.data == {"ok": False, "error": "unknown_method",
                                 "req_method": "cohorts.frobnicate"}


async def test_auth_test_identifies_the_bot(fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    resp = await client_for(fake_slack).auth_test()

    assert resp["user_id"] == slack_ws.bot_user
    assert resp["bot_id"] == slack_ws.bot_id
    assert resp["team_id"] == slack_ws.team_id
    assert "chat:write" in resp.headers["x-oauth-scopes"].split(",")
    team = (await client_for(fake_slack).team_info())["team"]
    assert team["id"] == slack_ws.team_id and team["domain"] == slack_ws.team_domain


async def test_users_carry_their_time_zones(fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    client = client_for(fake_slack)

    alice = (await client.users_info(user=slack_ws.alice))["user"]
    bob = (await client.users_info(user=slack_ws.bob))["user"]
    admin = (await client.users_info(user=slack_ws.admin))["user"]

    assert alice["tz"] == "Europe/Berlin" and bob["tz"] == "America/Los_Angeles"
    assert alice["tz_offset"] - bob["tz_offset"] == 9 * 3600
    assert admin["is_admin"] is True and alice["is_admin"] is False
    members = (await client.users_list())["members"]
    ids = {m["id"] for m in members}
    assert {slack_ws.admin, slack_ws.alice, slack_ws.bob, slack_ws.bot_user} <= ids
    assert next(m for m in members if m["id"] == slack_ws.bot_user)["is_bot"] is True
    err = await slack_error(client.users_info(user="U0NOBODY00"))
    assert err.response["error"] == "user_not_found"


async def test_pagination_follows_cursors(fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    seen: list[str] = []
    async for page in await client.conversations_members(channel=slack_ws.channel, limit=2):
        seen.extend(page["members"])
    assert seen == [slack_ws.admin, slack_ws.alice, slack_ws.bob, slack_ws.bot_user]


async def test_dm_channels_open_once_and_take_posts(fake_slack: FakeSlack,
                                                    slack_ws: Workspace) -> None:
    client = client_for(fake_slack)

    first = await client.conversations_open(users=slack_ws.alice)
    again = await client.conversations_open(users=[slack_ws.alice])
    dm = first["channel"]["id"]

    assert dm.startswith("D")
    assert "already_open" not in first.data
    assert again["channel"]["id"] == dm and again["already_open"] is True
    info = (await client.conversations_info(channel=dm))["channel"]
    assert info["is_im"] is True and info["user"] == slack_ws.alice
    await client.chat_postMessage(channel=dm, text="your check-in")
    by_user_id = await client.chat_postMessage(channel=slack_ws.alice, text="and another")
    assert by_user_id["channel"] == dm
    assert [m["text"] for m in fake_slack.messages(dm)] == ["your check-in", "and another"]
    assert fake_slack.dm_channel(slack_ws.alice) == dm


async def test_history_threads_and_metadata(fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    meta = {"event_type": "session", "event_payload": {"id": 3}}
    parent = await client.chat_postMessage(channel=slack_ws.channel, text="parent", metadata=meta)
    await client.chat_postMessage(channel=slack_ws.channel, text="reply", thread_ts=parent["ts"])
    user_msg = fake_slack.add_user_message(slack_ws.channel, slack_ws.alice, "thanks")

    plain = await client.conversations_history(channel=slack_ws.channel)
    full = await client.conversations_history(channel=slack_ws.channel, include_all_metadata=True)

    assert [m["text"] for m in plain["messages"]] == ["thanks", "parent"]  # newest first
    assert "metadata" not in plain["messages"][1]
    assert full["messages"][1]["metadata"] == meta
    assert full["messages"][1]["reply_count"] == 1
    assert full["messages"][0]["user"] == slack_ws.alice == user_msg["user"]
    replies = await client.conversations_replies(channel=slack_ws.channel, ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == ["parent", "reply"]
    err = await slack_error(client.conversations_history(channel=slack_ws.channel_without_bot))
    assert err.response["error"] == "not_in_channel"


async def test_update_delete_and_ephemeral(fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    posted = await client.chat_postMessage(channel=slack_ws.channel, text="draft")

    updated = await client.chat_update(channel=slack_ws.channel, ts=posted["ts"], text="final")
    assert updated["text"] == "final"
    assert [m["text"] for m in fake_slack.messages(slack_ws.channel)] == ["final"]
    eph = await client.chat_postEphemeral(channel=slack_ws.channel, user=slack_ws.bob,
                                          text="only you")
    assert eph["message_ts"]
    assert [e["text"] for e in fake_slack.ephemerals(user=slack_ws.bob)] == ["only you"]
    outsider = fake_slack.add_user(None, "carol")
    err = await slack_error(client.chat_postEphemeral(channel=slack_ws.channel, user=outsider,
                                                      text="x"))
    assert err.response["error"] == "user_not_in_channel"

    await client.chat_delete(channel=slack_ws.channel, ts=posted["ts"])
    assert fake_slack.messages(slack_ws.channel) == []
    err = await slack_error(client.chat_delete(channel=slack_ws.channel, ts=posted["ts"]))
    assert err.response["error"] == "message_not_found"
    human = fake_slack.add_user_message(slack_ws.channel, slack_ws.bob, "mine")
    err = await slack_error(client.chat_update(channel=slack_ws.channel, ts=human["ts"],
                                               text="hijack"))
    assert err.response["error"] == "cant_update_message"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_invalid_payloads_are_refused(fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    cases = [
        ({"text": ""}, "no_text"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({"text": "x", "blocks": [{"type": "section"}]}, "invalid_blocks"),
        ({"text": "x", "blocks": [{"type": "input", "element": {}}]}, "invalid_blocks"),
        ({"text": "x", "metadata": {"event_payload": {}}}, "invalid_metadata_format"),
    ]
    for kwargs, error in cases:
        err = await slack_error(client.chat_postMessage(channel=slack_ws.channel, **kwargs))
        assert err.response["error"] == error, kwargs
    assert fake_slack.messages(slack_ws.channel) == []


def _header(text: Any) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def _mrkdwn(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, **extra}


@pytest.mark.parametrize(("blocks", "messages"), [
    pytest.param([_header("")],
                 ["must be more than 0 characters [json-pointer:/blocks/0/text/text]"],
                 id="header-empty"),
    pytest.param([_header("x" * 151)],
                 ["must be less than 151 characters [json-pointer:/blocks/0/text/text]"],
                 id="header-too-long"),
    pytest.param([{"type": "header", "text": _mrkdwn("Week 1")}],
                 ["header text must be plain_text [json-pointer:/blocks/0]"], id="header-mrkdwn"),
    pytest.param([{"type": "section", "text": {"type": "markdown", "text": "*hi*"}}],
                 ["failed to match all allowed schemas [json-pointer:/blocks/0/text]"],
                 id="section-text-type"),
    pytest.param([{"type": "section", "text": "*hi*"}],
                 ["failed to match all allowed schemas [json-pointer:/blocks/0/text]"],
                 id="section-text-not-an-object"),
    pytest.param([{"type": "section", "text": _mrkdwn("x" * 3001)}],
                 ["must be less than 3001 characters [json-pointer:/blocks/0/text/text]"],
                 id="section-text-too-long"),
    pytest.param([{"type": "section", "text": _mrkdwn("hi", emoji=True)}],
                 ["failed to match all allowed schemas [json-pointer:/blocks/0/text]",
                  "invalid additional property: emoji [json-pointer:/blocks/0/text]"],
                 id="section-mrkdwn-emoji"),
    pytest.param([{"type": "section", "text": {"type": "plain_text", "text": "hi",
                                               "emoji": "true"}}],
                 ["failed to match all allowed schemas [json-pointer:/blocks/0/text]",
                  "must be a boolean [json-pointer:/blocks/0/text/emoji]"],
                 id="section-emoji-not-boolean"),
    pytest.param([{"type": "section", "fields": [_mrkdwn(f"f{n}") for n in range(11)]}],
                 ["no more than 10 items allowed [json-pointer:/blocks/0/fields]"],
                 id="section-eleven-fields"),
    pytest.param([{"type": "section", "fields": [_mrkdwn("ok"), _mrkdwn(""),
                                                 _mrkdwn("x" * 2001)]}],
                 ["must be more than 0 characters [json-pointer:/blocks/0/fields/1/text]",
                  "must be less than 2001 characters [json-pointer:/blocks/0/fields/2/text]"],
                 id="section-field-lengths"),
    pytest.param([{"type": "context"}],
                 ["missing required field: elements [json-pointer:/blocks/0]"],
                 id="context-no-elements"),
    pytest.param([{"type": "context", "elements": []}],
                 ["missing required field: elements [json-pointer:/blocks/0]"],
                 id="context-empty-elements"),
    pytest.param([{"type": "context", "elements": [_mrkdwn(f"e{n}") for n in range(11)]}],
                 ["no more than 10 items allowed [json-pointer:/blocks/0/elements]"],
                 id="context-eleven-elements"),
    pytest.param([{"type": "context", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Go"}, "action_id": "go"},
        _mrkdwn(""),
        {"type": "image", "alt_text": "logo"},
        {"type": "image", "image_url": "https://example.invalid/a.png"},
    ]}], ["failed to match all allowed schemas [json-pointer:/blocks/0/elements/0]",
          "must be more than 0 characters [json-pointer:/blocks/0/elements/1/text]",
          "must provide either `image_url` or `slack_file` [json-pointer:/blocks/0/elements/2]",
          "missing required field: alt_text [json-pointer:/blocks/0/elements/3]"],
        id="context-bad-elements"),
    pytest.param([{"type": "divider", "block_id": "d" * 256}],
                 ["must be less than 256 characters [json-pointer:/blocks/0/block_id]"],
                 id="block-id-too-long"),
])
async def test_layout_blocks_are_validated_as_slack_does(
        fake_slack: FakeSlack, slack_ws: Workspace, blocks: list[dict[str, Any]],
        messages: list[str]) -> None:
    client = client_for(fake_slack)

    err = await slack_error(client.chat_postMessage(channel=slack_ws.channel, text="fallback",
                                                    blocks=blocks))

    assert err.response["error"] == "invalid_blocks"
    assert err.response["errors"] == messages
    assert err.response["response_metadata"]["messages"] == [f"[ERROR] {m}" for m in messages]
    assert fake_slack.messages(slack_ws.channel) == []


async def test_update_and_ephemeral_validate_layout_blocks(fake_slack: FakeSlack,
                                                           slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    posted = await client.chat_postMessage(channel=slack_ws.channel, text="draft")
    bad = [{"type": "context", "elements": [_mrkdwn("fine"), _mrkdwn("")]}]

    update_err = await slack_error(client.chat_update(channel=slack_ws.channel, ts=posted["ts"],
                                                      text="final", blocks=bad))
    eph_err = await slack_error(client.chat_postEphemeral(
        channel=slack_ws.channel, user=slack_ws.bob, text="only you", blocks=bad))

    for err in (update_err, eph_err):
        assert err.response["error"] == "invalid_blocks"
        assert err.response["errors"] == [
            "must be more than 0 characters [json-pointer:/blocks/0/elements/1/text]"]
    assert [m["text"] for m in fake_slack.messages(slack_ws.channel)] == ["draft"]
    assert fake_slack.ephemerals() == []


async def test_a_header_section_context_and_actions_message_reads_back(
        fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    blocks = [
        {"type": "header", "block_id": "title",
         "text": {"type": "plain_text", "text": "x" * 150, "emoji": True}},
        {"type": "section", "text": _mrkdwn("y" * 3000, verbatim=True),
         "fields": [_mrkdwn("*When*"), {"type": "plain_text", "text": "z" * 2000}]
         + [_mrkdwn(f"f{n}") for n in range(8)]},
        {"type": "divider"},
        {"type": "context", "elements": [
            {"type": "image", "image_url": "https://example.invalid/a.png", "alt_text": "a"},
            {"type": "image", "slack_file": {"id": "F0123456"}, "alt_text": "b"},
        ] + [_mrkdwn(f"c{n}") for n in range(8)]},
        {"type": "actions", "block_id": "b" * 255, "elements": [
            {"type": "button", "action_id": "go",
             "text": {"type": "plain_text", "text": "Go", "emoji": False}}]},
    ]

    posted = await client.chat_postMessage(channel=slack_ws.channel, text="Week 1 is on",
                                           blocks=blocks)

    assert posted["ok"] is True and "warning" not in posted.data
    assert posted["message"]["blocks"] == blocks
    [stored] = fake_slack.messages(slack_ws.channel)
    assert stored["text"] == "Week 1 is on" and stored["blocks"] == blocks
    assert stored["text_missing"] is False
    history = await client.conversations_history(channel=slack_ws.channel)
    assert history["messages"][0]["blocks"] == blocks
    assert not any(k.startswith("_") for k in history["messages"][0])


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_blocks_without_fallback_text_are_accepted_and_noted(
        fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    blocks = [{"type": "section", "text": _mrkdwn("*Week 1*")}]

    posted = await client.chat_postMessage(channel=slack_ws.channel, blocks=blocks)
    # Slack accepts it without a warning of its own; only the SDK warns.
    assert posted["ok"] is True and "warning" not in posted.data
    assert "_text_missing" not in posted["message"]
    assert [m["text_missing"] for m in fake_slack.messages(slack_ws.channel)] == [True]

    await client.chat_update(channel=slack_ws.channel, ts=posted["ts"], text="Week 1",
                             blocks=blocks)
    assert [m["text_missing"] for m in fake_slack.messages(slack_ws.channel)] == [False]
    await client.chat_update(channel=slack_ws.channel, ts=posted["ts"], text=" ", blocks=blocks)
    assert [m["text_missing"] for m in fake_slack.messages(slack_ws.channel)] == [True]

    await client.chat_postEphemeral(channel=slack_ws.channel, user=slack_ws.bob, blocks=blocks)
    await client.chat_postEphemeral(channel=slack_ws.channel, user=slack_ws.bob, text="hi",
                                    blocks=blocks)
    assert [e["text_missing"] for e in fake_slack.ephemerals(user=slack_ws.bob)] == [True, False]


def test_sync_client_with_form_bodies_against_the_threaded_fake(
        fake_slack_thread: FakeSlack, slack_ws: Workspace) -> None:
    client = WebClient(token=slack_ws.bot_token, base_url=fake_slack_thread.api_url)
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "hi"}}]

    # Form-encoded, structured arguments as JSON strings, token as a form field.
    resp = WebClient(base_url=fake_slack_thread.api_url).api_call(
        "chat.postMessage", data={"token": slack_ws.bot_token, "channel": slack_ws.channel,
                                  "text": "form", "blocks": json.dumps(blocks),
                                  "unfurl_media": "false"})
    assert resp["ok"] is True
    assert client.chat_postMessage(channel=slack_ws.channel, text="json")["ok"] is True

    stored = fake_slack_thread.messages(slack_ws.channel)
    assert [m["text"] for m in stored] == ["form", "json"]
    assert stored[0]["blocks"] == blocks and stored[0]["unfurl_media"] is False
    form_call, json_call = fake_slack_thread.calls_to("chat.postMessage")
    assert form_call.content_type.startswith("application/x-www-form-urlencoded")
    assert form_call.token == json_call.token == slack_ws.bot_token
    assert "token" not in form_call.params


# ---------------------------------------------------------------------------- rate limits


async def test_a_burst_to_one_channel_is_rate_limited(fake_slack: FakeSlack,
                                                      slack_ws: Workspace) -> None:
    fake_slack.set_latency(0)
    client = client_for(fake_slack, retry_handlers=[])
    for i in range(3):  # the burst allowance
        await client.chat_postMessage(channel=slack_ws.channel, text=f"m{i}")

    err = await slack_error(client.chat_postMessage(channel=slack_ws.channel, text="m3"))

    assert err.response.status_code == 429
    assert err.response["error"] == "ratelimited"
    retry_after = err.response.headers["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    assert len(fake_slack.messages(slack_ws.channel)) == 3
    # Another channel has its own allowance.
    dm = (await client.conversations_open(users=slack_ws.bob))["channel"]["id"]
    assert (await client.chat_postMessage(channel=dm, text="elsewhere"))["ok"]


async def test_rate_limit_retries_deliver_each_post_exactly_once(
        fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    fake_slack.set_post_rate_limit(2.0, burst=2)
    other = fake_slack.add_channel("cohort-2", members=[slack_ws.alice, slack_ws.bot_user])
    client = client_for(fake_slack, retry_handlers=[
        AsyncRateLimitErrorRetryHandler(max_retry_count=10)])
    texts = [f"reminder {i}" for i in range(6)]

    async def post_other(i: int) -> None:
        await asyncio.sleep(0.05 * i)  # spread over the window in which channel 1 is throttled
        await client.chat_postMessage(channel=other, text=f"other {i}")

    results = await asyncio.gather(
        *(client.chat_postMessage(channel=slack_ws.channel, text=t) for t in texts),
        *(post_other(i) for i in range(2)))

    assert all(r is None or r["ok"] for r in results)
    assert sorted(m["text"] for m in fake_slack.messages(slack_ws.channel)) == texts
    calls = fake_slack.calls_to("chat.postMessage")
    throttled = [c for c in calls if c.status == 429]
    assert throttled, "the burst should have been throttled"
    assert all(c.params["channel"] == slack_ws.channel for c in throttled)
    assert all(c.response == {"ok": False, "error": "ratelimited"} for c in throttled)
    assert [m["text"] for m in fake_slack.messages(other)] == ["other 0", "other 1"]


async def test_server_errors_are_retried_by_the_sdk(fake_slack: FakeSlack,
                                                    slack_ws: Workspace) -> None:
    fast = FixedValueRetryIntervalCalculator(0.05)
    client = client_for(fake_slack, retry_handlers=[
        AsyncServerErrorRetryHandler(max_retry_count=1, interval_calculator=fast)])
    fake_slack.fail_next("chat.postMessage", status=500)

    resp = await client.chat_postMessage(channel=slack_ws.channel, text="after a blip")

    assert resp["ok"] is True
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [500, 200]
    assert [m["text"] for m in fake_slack.messages(slack_ws.channel)] == ["after a blip"]
    # Without a retry handler the failure surfaces (and nothing is posted).
    fake_slack.fail_next("chat.postMessage", status=503, count=2)
    err = await slack_error(client_for(fake_slack, retry_handlers=[]).chat_postMessage(
        channel=slack_ws.channel, text="lost"))
    assert err.response.status_code == 503
    assert len(fake_slack.messages(slack_ws.channel)) == 1


async def test_injected_429_and_hangs(fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    fake_slack.ratelimit_next("users.info", retry_after=7)
    err = await slack_error(client_for(fake_slack).users_info(user=slack_ws.alice))
    assert err.response.status_code == 429
    assert err.response.headers["Retry-After"] == "7"

    fake_slack.set_method_limit("conversations.info", per_minute=60, burst=1)
    client = client_for(fake_slack)
    await client.conversations_info(channel=slack_ws.channel)
    err = await slack_error(client.conversations_info(channel=slack_ws.channel))
    assert err.response.status_code == 429 and err.response["error"] == "ratelimited"
    assert err.response.headers["Retry-After"] == "1"

    fake_slack.hang_next("chat.postMessage", 0.6)
    impatient = client_for(fake_slack, timeout=0.2, retry_handlers=[])
    with pytest.raises(asyncio.TimeoutError):
        await impatient.chat_postMessage(channel=slack_ws.channel, text="slow")
    # Slack did carry the request out; the client just never heard back.
    await fake_slack.wait_for(lambda: fake_slack.messages(slack_ws.channel), timeout=5,
                              what="the hung post to land")
    [call] = fake_slack.calls_to("chat.postMessage")
    assert call.elapsed >= 0.6


# ---------------------------------------------------------------------------- views


async def test_modals_need_fresh_trigger_ids(fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    modal = {"type": "modal", "callback_id": "ask", "title": {"type": "plain_text",
                                                               "text": "Ask"},
             "submit": {"type": "plain_text", "text": "Send"},
             "blocks": [{"type": "input", "block_id": "q", "label": {"type": "plain_text",
                                                                     "text": "Q"},
                         "element": {"type": "plain_text_input", "action_id": "q"}}]}
    trigger = fake_slack.issue_trigger(slack_ws.alice)

    opened = (await client.views_open(trigger_id=trigger, view=modal))["view"]

    assert opened["id"].startswith("V") and opened["callback_id"] == "ask"
    assert [v["id"] for v in fake_slack.modal_stack(slack_ws.alice)] == [opened["id"]]
    err = await slack_error(client.views_open(trigger_id=trigger, view=modal))
    assert err.response["error"] == "exchanged_trigger_id"
    err = await slack_error(client.views_open(trigger_id="1.2.nope", view=modal))
    assert err.response["error"] == "invalid_trigger_id"
    fake_slack.trigger_ttl = 0.0
    stale = fake_slack.issue_trigger(slack_ws.alice)
    err = await slack_error(client.views_open(trigger_id=stale, view=modal))
    assert err.response["error"] == "expired_trigger_id"
    fake_slack.trigger_ttl = 3.0
    no_submit = {k: v for k, v in modal.items() if k != "submit"}
    err = await slack_error(client.views_open(trigger_id=fake_slack.issue_trigger(
        slack_ws.alice), view=no_submit))
    assert err.response["error"] == "invalid_arguments"
    assert err.response["response_metadata"]["messages"]

    pushed = (await client.views_push(trigger_id=fake_slack.issue_trigger(slack_ws.alice),
                                      view=modal))["view"]
    assert pushed["root_view_id"] == opened["id"] == pushed["previous_view_id"]
    err = await slack_error(client.views_update(view_id=opened["id"], hash="stale.hash",
                                                view=modal))
    assert err.response["error"] == "hash_conflict"
    updated = (await client.views_update(view_id=opened["id"], hash=opened["hash"],
                                         view={**modal, "callback_id": "ask2"}))["view"]
    assert updated["callback_id"] == "ask2" and updated["hash"] != opened["hash"]


async def test_app_home_is_published_per_user(fake_slack: FakeSlack,
                                              slack_ws: Workspace) -> None:
    client = client_for(fake_slack)
    home = {"type": "home", "blocks": [{"type": "section",
                                        "text": {"type": "mrkdwn", "text": "Next: Tue"}}]}

    first = (await client.views_publish(user_id=slack_ws.bob, view=home))["view"]
    second = (await client.views_publish(user_id=slack_ws.bob, view=home))["view"]

    assert first["id"] == second["id"] and first["type"] == "home"
    assert (fake_slack.home_view(slack_ws.bob) or {})["blocks"] == home["blocks"]
    assert fake_slack.home_view(slack_ws.alice) is None
    err = await slack_error(client.views_publish(user_id=slack_ws.bob, view={"type": "modal"}))
    assert err.response["error"] == "invalid_arguments"


# ---------------------------------------------------------------------------- workspaces

BETA = "T0BETA001"
BEA = "U0BETABEA"
BETA_BOT = "U0BETABOT"
BETA_CHANNEL = "C0BETA001"
BETA_TOKEN = "xoxb-beta"
HOME = {"type": "home", "blocks": []}
MODAL = {"type": "modal", "callback_id": "ask", "title": {"type": "plain_text", "text": "Ask"},
         "blocks": []}


def add_beta(fake: FakeSlack) -> AsyncWebClient:
    """A second workspace with the app installed: Bea, the bot user, and a #cohort-1 of its
    own (the same name as the first workspace's). Returns a client with Beta's bot token."""
    fake.add_team(BETA, "Beta Corp", "beta-corp")
    fake.add_user(BEA, "bea", real_name="Bea Beta", tz="Asia/Tokyo", team_id=BETA)
    fake.add_bot(user_id=BETA_BOT, bot_id="B0BETABOT", token=BETA_TOKEN, team_id=BETA)
    fake.add_channel("cohort-1", channel_id=BETA_CHANNEL, members=[BEA, BETA_BOT],
                     team_id=BETA)
    return client_for(fake, BETA_TOKEN)


async def outcomes(*calls: Awaitable[Any]) -> list[str]:
    """Each call's error code, or "ok" for one that succeeded."""
    out = []
    for call in calls:
        try:
            await call
            out.append("ok")
        except SlackApiError as e:
            out.append(e.response["error"])
    return out


async def test_each_workspace_sees_its_own_users_and_channels(fake_slack: FakeSlack,
                                                              slack_ws: Workspace) -> None:
    beta, alpha = add_beta(fake_slack), client_for(fake_slack)

    bea = (await beta.users_info(user=BEA))["user"]
    assert (bea["real_name"], bea["team_id"], bea["profile"]["team"]) == ("Bea Beta", BETA, BETA)
    alice = (await alpha.users_info(user=slack_ws.alice))["user"]
    assert (alice["real_name"], alice["team_id"]) == ("Alice Berg", slack_ws.team_id)
    assert (await beta.auth_test())["team_id"] == BETA
    team = (await beta.team_info())["team"]
    assert (team["id"], team["name"], team["domain"]) == (BETA, "Beta Corp", "beta-corp")
    assert (await alpha.team_info())["team"]["id"] == slack_ws.team_id
    beta_people = {m["id"]: m["team_id"] for m in (await beta.users_list())["members"]}
    assert beta_people == {"USLACKBOT": BETA, BEA: BETA, BETA_BOT: BETA}
    alpha_people = {m["id"] for m in (await alpha.users_list())["members"]}
    assert slack_ws.alice in alpha_people and not alpha_people & {BEA, BETA_BOT}

    info = (await beta.conversations_info(channel=BETA_CHANNEL))["channel"]
    assert (info["name"], info["context_team_id"], info["is_member"]) == ("cohort-1", BETA, True)
    posted = await beta.chat_postMessage(channel="#cohort-1", text="hello beta")
    assert posted["channel"] == BETA_CHANNEL
    assert (posted["message"]["team"], posted["message"]["bot_profile"]["team_id"]) == (
        BETA, BETA)
    alpha_post = await alpha.chat_postMessage(channel="#cohort-1", text="hello alpha")
    assert alpha_post["channel"] == slack_ws.channel
    dm = (await beta.conversations_open(users=BEA))["channel"]["id"]
    assert fake_slack.open_dm(BEA) == dm == fake_slack.dm_channel(BEA)
    assert fake_slack.channel(dm)["context_team_id"] == BETA

    # Another workspace's people and conversations do not exist, both ways round.
    assert await outcomes(
        alpha.users_info(user=BEA), alpha.conversations_open(users=BEA),
        alpha.views_publish(user_id=BEA, view=HOME),
        alpha.chat_postEphemeral(channel=slack_ws.channel, user=BEA, text="x"),
        beta.users_info(user=slack_ws.alice), beta.conversations_open(users=slack_ws.alice),
        beta.views_publish(user_id=slack_ws.alice, view=HOME),
        beta.chat_postEphemeral(channel=BETA_CHANNEL, user=slack_ws.alice, text="x"),
    ) == ["user_not_found"] * 8
    for client, channel, ts, person in ((alpha, BETA_CHANNEL, posted["ts"], BEA),
                                        (beta, slack_ws.channel, alpha_post["ts"],
                                         slack_ws.alice)):
        assert await outcomes(
            client.conversations_info(channel=channel),
            client.conversations_members(channel=channel),
            client.conversations_history(channel=channel),
            client.conversations_replies(channel=channel, ts=ts),
            client.conversations_join(channel=channel),
            client.chat_postMessage(channel=channel, text="x"),
            client.chat_postMessage(channel=person, text="x"),  # a DM by user id
            client.chat_postEphemeral(channel=channel, user=person, text="x"),
            client.chat_update(channel=channel, ts=ts, text="x"),
            client.chat_delete(channel=channel, ts=ts),
        ) == ["channel_not_found"] * 10, channel
    assert await outcomes(alpha.conversations_info(channel=dm),
                          beta.chat_postMessage(channel="#random", text="x")) == [
        "channel_not_found"] * 2

    # Nothing was done in the other workspace on the way.
    assert [m["text"] for m in fake_slack.messages(BETA_CHANNEL)] == ["hello beta"]
    assert [m["text"] for m in fake_slack.messages(slack_ws.channel)] == ["hello alpha"]
    assert fake_slack.channel(BETA_CHANNEL)["members"] == [BEA, BETA_BOT]
    assert BETA_BOT not in fake_slack.channel(slack_ws.channel)["members"]
    assert fake_slack.ephemerals() == []
    assert fake_slack.home_view(BEA) is None and fake_slack.home_view(slack_ws.alice) is None
    assert fake_slack.dm_channel(slack_ws.alice) is None
    # Each token still does everything in its own workspace.
    assert await outcomes(
        beta.views_publish(user_id=BEA, view=HOME),
        beta.chat_postEphemeral(channel=BETA_CHANNEL, user=BEA, text="psst"),
        alpha.chat_postEphemeral(channel=slack_ws.channel, user=slack_ws.alice, text="psst"),
    ) == ["ok"] * 3
    assert (fake_slack.home_view(BEA) or {}).get("team_id") == BETA


async def test_requests_and_handles_from_a_second_workspace_carry_its_team(
        fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    beta, alpha = add_beta(fake_slack), client_for(fake_slack)
    build = fake_slack.requests(BETA)

    cmd = build.slash_command_payload("/cohort", "ask", user_id=BEA, channel_id=BETA_CHANNEL)
    assert (cmd["team_id"], cmd["team_domain"], cmd["channel_name"], cmd["user_name"]) == (
        BETA, "beta-corp", "cohort-1", "bea")
    click = build.block_actions_payload([{"action_id": "rsvp", "value": "yes"}], user_id=BEA,
                                        channel_id=BETA_CHANNEL)
    assert (click["team"]["id"], click["user"]["team_id"]) == (BETA, BETA)
    event = build.event_callback_payload(build.message_event(
        user_id=BEA, channel_id=BETA_CHANNEL, text="hi"))
    assert (event["team_id"], event["context_team_id"], event["event"]["team"]) == (
        BETA, BETA, BETA)
    assert [(a["team_id"], a["user_id"]) for a in event["authorizations"]] == [
        (BETA, BETA_BOT)]
    home = fake_slack.requests().event_callback_payload({"type": "app_mention", "text": "hi"})
    assert [(a["team_id"], a["user_id"]) for a in home["authorizations"]] == [
        (slack_ws.team_id, slack_ws.bot_user)]
    assert fake_slack.add_user_message(BETA_CHANNEL, BEA, "from bea")["team"] == BETA
    assert fake_slack.add_user_message(slack_ws.channel, slack_ws.bob, "hi")["team"] == (
        slack_ws.team_id)

    # A trigger from Beta opens a modal with Beta's token only; the view is Beta's.
    assert await outcomes(alpha.views_open(trigger_id=cmd["trigger_id"], view=MODAL)) == [
        "invalid_trigger_id"]
    opened = (await beta.views_open(trigger_id=cmd["trigger_id"], view=MODAL))["view"]
    assert (opened["team_id"], opened["app_installed_team_id"], opened["bot_id"]) == (
        BETA, BETA, "B0BETABOT")
    assert await outcomes(alpha.views_update(view_id=opened["id"], view=MODAL),
                          beta.views_update(view_id=opened["id"], view=MODAL)) == [
        "not_found", "ok"]

    # A reply in the channel through the response URL is posted by Beta's bot user.
    hook = AsyncWebhookClient(cmd["response_url"])
    assert (await hook.send(text="asked", response_type="in_channel")).status_code == 200
    [reply] = fake_slack.posts(BETA_CHANNEL)
    assert (reply["text"], reply["user"], reply["team"]) == ("asked", BETA_BOT, BETA)


async def test_setup_across_workspaces_must_be_consistent(fake_slack: FakeSlack,
                                                          slack_ws: Workspace) -> None:
    with pytest.raises(ValueError, match="add_team"):
        fake_slack.add_user(None, "nobody", team_id=BETA)
    with pytest.raises(ValueError, match="add_team"):
        fake_slack.add_channel("nowhere", team_id=BETA)
    add_beta(fake_slack)
    assert fake_slack.user(BEA)["profile"]["email"] == "bea@beta-corp.example"

    with pytest.raises(ValueError, match=f"{slack_ws.alice} is in workspace"):
        fake_slack.add_channel("mixed", members=[BEA, slack_ws.alice], team_id=BETA)
    with pytest.raises(ValueError, match=f"{BEA} is in workspace {BETA}"):
        fake_slack.join(slack_ws.channel, BEA)
    assert BEA not in fake_slack.channel(slack_ws.channel)["members"]
    assert fake_slack.bot_user_id == slack_ws.bot_user
    assert fake_slack.bot_user_of(BETA) == BETA_BOT


# ---------------------------------------------------------------------------- signing


async def test_built_requests_verify_with_the_sdk(fake_slack: FakeSlack,
                                                  slack_ws: Workspace) -> None:
    verifier = SignatureVerifier(slack_ws.signing_secret)
    build = fake_slack.requests()
    requests = [
        build.slash_command("/cohort", "status", user_id=slack_ws.alice,
                            channel_id=slack_ws.channel),
        build.block_actions([{"action_id": "rsvp", "block_id": "b", "value": "yes"}],
                            user_id=slack_ws.bob, channel_id=slack_ws.channel),
        build.event_callback(build.message_event(user_id=slack_ws.bob,
                                                 channel_id=slack_ws.channel, text="hi")),
        build.url_verification(),
    ]
    for request in requests:
        headers, body = request
        assert verifier.is_valid_request(body, headers)
        assert not verifier.is_valid_request(body + b"x", headers)

    cmd = build.slash_command("/cohort", user_id=slack_ws.alice, channel_id=slack_ws.channel,
                              bad_signature=True)
    assert not verifier.is_valid_request(cmd.body, cmd.headers)
    stale = build.slash_command("/cohort", user_id=slack_ws.alice, channel_id=slack_ws.channel,
                                stale=True)
    assert not verifier.is_valid_request(stale.body, stale.headers)
    assert int(stale.headers["X-Slack-Request-Timestamp"]) < time.time() - 300
    retried = build.event_callback({"type": "app_mention", "text": "hi"}, retry_num=1,
                                   retry_reason="http_timeout")
    assert retried.headers["X-Slack-Retry-Num"] == "1"
    assert verifier.is_valid_request(retried.body, retried.headers)


async def test_response_urls_are_recorded_and_limited(fake_slack: FakeSlack,
                                                      slack_ws: Workspace) -> None:
    payload = fake_slack.requests().slash_command_payload(
        "/cohort", "x", user_id=slack_ws.alice, channel_id=slack_ws.channel)
    hook = AsyncWebhookClient(payload["response_url"])

    assert (await hook.send(text="just you")).status_code == 200
    assert (await hook.send(text="everyone", response_type="in_channel")).status_code == 200
    for _ in range(3):
        await hook.send(text="again")
    refused = await hook.send(text="sixth")

    assert refused.status_code == 404 and "used_url" in refused.body
    posts = fake_slack.response_url_posts()
    assert [p.body["text"] for p in posts][:2] == ["just you", "everyone"]
    assert posts[0].user_id == slack_ws.alice and posts[0].channel_id == slack_ws.channel
    assert fake_slack.ephemerals(user=slack_ws.alice)[0]["text"] == "just you"
    assert [m["text"] for m in fake_slack.messages(slack_ws.channel)] == ["everyone"]
    gone = await AsyncWebhookClient(f"{fake_slack.url}/response/nope").send(text="x")
    assert gone.status_code == 404 and "expired_url" in gone.body


# ---------------------------------------------------------------------------- Bolt, HTTP mode


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture
async def bolt_http(fake_slack: FakeSlack, slack_ws: Workspace
                    ) -> AsyncIterator[tuple[AsyncApp, str]]:
    # The token goes on the client: Bolt ignores ``token=`` when ``client=`` is given.
    bolt = AsyncApp(client=client_for(fake_slack, token=slack_ws.bot_token),
                    signing_secret=slack_ws.signing_secret)

    @bolt.command("/cohort")
    async def cohort(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        await ack()
        await respond(f"status for <@{command['user_id']}>: {command['text']}")

    runner, url = await serve(bolt.web_app(path="/slack/events"))
    try:
        yield bolt, f"{url}/slack/events"
    finally:
        await runner.cleanup()


async def test_bolt_acks_a_signed_slash_command_and_responds(
        fake_slack: FakeSlack, slack_ws: Workspace, bolt_http: tuple[AsyncApp, str]) -> None:
    _, url = bolt_http
    request = fake_slack.requests().slash_command("/cohort", "week 2", user_id=slack_ws.bob,
                                                  channel_id=slack_ws.channel)

    result = await post_signed(url, request)

    assert result.status == 200
    assert result.elapsed < 3.0
    [post] = await fake_slack.wait_for(fake_slack.response_url_posts, what="respond()")
    assert post.body["text"] == f"status for <@{slack_ws.bob}>: week 2"
    assert post.user_id == slack_ws.bob
    assert [e["text"] for e in fake_slack.ephemerals(user=slack_ws.bob)] == [post.body["text"]]
    # Bolt checked the token once, against the fake.
    assert [c.status for c in fake_slack.calls_to("auth.test")] == [200]


async def test_bolt_rejects_bad_and_stale_signatures(
        fake_slack: FakeSlack, slack_ws: Workspace, bolt_http: tuple[AsyncApp, str]) -> None:
    _, url = bolt_http
    build = fake_slack.requests()
    for options in ({"bad_signature": True}, {"stale": True}):
        request = build.slash_command("/cohort", user_id=slack_ws.bob,
                                      channel_id=slack_ws.channel, **options)
        result = await post_signed(url, request)
        assert result.status == 401, options
    assert fake_slack.response_url_posts() == []
    challenge = await post_signed(url, build.url_verification("abc123"))
    assert challenge.status == 200 and challenge.json() == {"challenge": "abc123"}


# ---------------------------------------------------------------------------- Socket Mode


@pytest.fixture
async def socket_client(fake_slack: FakeSlack, slack_ws: Workspace
                        ) -> AsyncIterator[tuple[SocketModeClient, list[SocketModeRequest]]]:
    client = SocketModeClient(app_token=slack_ws.app_token,
                              web_client=client_for(fake_slack, token=None))
    received: list[SocketModeRequest] = []

    async def on_request(c: SocketModeClient, req: SocketModeRequest) -> None:
        received.append(req)
        await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    client.socket_mode_request_listeners.append(on_request)
    await client.connect()
    try:
        yield client, received
    finally:
        await client.close()


async def test_socket_mode_envelopes_are_delivered_and_acked(
        fake_slack: FakeSlack, slack_ws: Workspace,
        socket_client: tuple[SocketModeClient, list[SocketModeRequest]]) -> None:
    _, received = socket_client
    [opened] = fake_slack.calls_to("apps.connections.open")
    assert opened.token == slack_ws.app_token and opened.response
    assert opened.response["url"].startswith(f"ws://127.0.0.1:{fake_slack.port}/link/?ticket=")
    build = fake_slack.requests()
    command = build.slash_command_payload("/cohort", "status", user_id=slack_ws.alice,
                                          channel_id=slack_ws.channel)

    delivery = await fake_slack.socket_send("slash_commands", command)

    assert delivery.acked and delivery.ack == {"envelope_id": delivery.envelope_id}
    assert delivery.ack_elapsed is not None and delivery.ack_elapsed < 3.0
    assert received[0].type == "slash_commands" and received[0].payload == command
    assert received[0].accepts_response_payload is True
    assert fake_slack.socket_acks[-1]["envelope_id"] == delivery.envelope_id

    event = build.event_callback_payload(build.message_event(
        user_id=slack_ws.bob, channel_id=slack_ws.channel, text="hello"))
    first = await fake_slack.socket_send("events_api", event)
    retry = await fake_slack.socket_redeliver(first)

    assert retry.envelope_id != first.envelope_id and retry.acked
    events = [r for r in received if r.type == "events_api"]
    assert [r.retry_attempt for r in events] == [0, 1]
    assert [r.retry_reason for r in events] == ["", "timeout"]
    assert {r.payload["event_id"] for r in events} == {event["event_id"]}


async def test_socket_mode_reconnects_when_told_or_dropped(
        fake_slack: FakeSlack, slack_ws: Workspace,
        socket_client: tuple[SocketModeClient, list[SocketModeRequest]]) -> None:
    _, received = socket_client
    build = fake_slack.requests()

    await fake_slack.socket_disconnect("refresh_requested")
    await fake_slack.socket_wait_connected(2)
    await fake_slack.wait_for(lambda: len(fake_slack.socket.open_connections()) == 1,
                              what="the old connection to close")
    await fake_slack.socket_close()
    await fake_slack.socket_wait_connected(3)

    delivery = await fake_slack.socket_send("interactive", build.block_actions_payload(
        [{"action_id": "rsvp", "block_id": "b", "value": "yes"}], user_id=slack_ws.bob,
        channel_id=slack_ws.channel))
    assert delivery.acked and delivery.connection_id == 3
    assert received[-1].payload["actions"][0]["action_id"] == "rsvp"
    assert len(fake_slack.calls_to("apps.connections.open")) == 3


async def test_bolt_socket_mode_ack_payload_reaches_the_user(
        fake_slack: FakeSlack, slack_ws: Workspace) -> None:
    bolt = AsyncApp(client=client_for(fake_slack, token=slack_ws.bot_token),
                    signing_secret=slack_ws.signing_secret)

    @bolt.command("/cohort")
    async def cohort(ack: Any, say: Any) -> None:
        await ack("Working on it")
        await say("Cohort status: on track")

    handler = AsyncSocketModeHandler(bolt, slack_ws.app_token)
    await handler.connect_async()
    try:
        command = fake_slack.requests().slash_command_payload(
            "/cohort", "", user_id=slack_ws.admin, channel_id=slack_ws.channel)
        delivery = await fake_slack.socket_send("slash_commands", command)

        assert delivery.ack_payload == {"text": "Working on it"}
        assert [e["text"] for e in fake_slack.ephemerals(user=slack_ws.admin)] == [
            "Working on it"]
        [said] = await fake_slack.wait_for(lambda: fake_slack.messages(slack_ws.channel),
                                           what="say()")
        assert said["text"] == "Cohort status: on track"
    finally:
        await handler.close_async()


async def test_socket_mode_against_the_threaded_fake(fake_slack_thread: FakeSlack,
                                                     slack_ws: Workspace) -> None:
    client = SocketModeClient(app_token=slack_ws.app_token,
                              web_client=client_for(fake_slack_thread, token=None))
    seen: list[str] = []

    async def on_request(c: SocketModeClient, req: SocketModeRequest) -> None:
        seen.append(req.payload["command"])
        await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    client.socket_mode_request_listeners.append(on_request)
    await client.connect()
    try:
        payload = fake_slack_thread.requests().slash_command_payload(
            "/cohort", "", user_id=slack_ws.bob, channel_id=slack_ws.channel)
        delivery = await fake_slack_thread.socket_send("slash_commands", payload)
        assert delivery.acked and seen == ["/cohort"]
    finally:
        await client.close()


# ---------------------------------------------------------------------------- other processes


def test_a_separate_process_can_use_the_threaded_fake(fake_slack_thread: FakeSlack,
                                                      slack_ws: Workspace) -> None:
    script = textwrap.dedent("""
        import os, sys
        from slack_sdk.web import WebClient
        client = WebClient(token="xoxb-test", base_url=os.environ["SLACK_API_URL"])
        resp = client.chat_postMessage(channel=sys.argv[1], text="from another process")
        print(resp["ts"])
    """)
    env = {**os.environ, "SLACK_API_URL": fake_slack_thread.api_url}
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        env.pop(name, None)

    done = subprocess.run([sys.executable, "-c", script, slack_ws.channel], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    [stored] = fake_slack_thread.messages(slack_ws.channel)
    assert stored["ts"] == done.stdout.strip()
    assert stored["text"] == "from another process"
