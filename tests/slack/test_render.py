"""Pure parts of the Slack adapter: rendering, escaping, decoding, forms and the manifest."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.slack import inbound, render, views
from adapters.slack.manifest import BOT_SCOPES, manifest, render_manifest
from bot.chat.message import Action, Mention, Message, Strong, Text, When
from bot.domain.refs import ChannelRef, UserRef
from bot.service.api import CheckinItem

# What would ping someone, or link anything, if it reached Slack's mrkdwn unescaped.
PINGS = re.compile(r"<[!@#]|<https?:|<mailto:")
SLACKY = st.sampled_from(["<!channel>", "<!here>", "<!everyone>", "<@U0ALICE01>",
                          "<@U0ALICE01|alice>", "<!subteam^S0TEAM|@team>", "<#C0COHORT1>",
                          "&lt;!here&gt;", "&amp;", "@channel", "@here", "<", ">", "&", "|",
                          "<!date^1^{time}|x>", "<https://evil.example|click>"])
USER_TEXT = st.lists(st.one_of(st.text(), SLACKY), max_size=8).map("".join)


@given(USER_TEXT)
def test_no_user_text_can_mention_anyone(text: str) -> None:
    for message in (Message.of(text), Message.of(Strong(text)),
                    Message((Text(text),), (Action(text, text),))):
        out = render.text(message)
        assert not PINGS.search(out)
        assert "<" not in out and ">" not in out
        assert not re.search(r"@(channel|here|everyone)\b", out, re.IGNORECASE)
        for block in render.blocks(message) or []:
            for field in _texts(block):
                assert not PINGS.search(field)


@given(USER_TEXT)
def test_decoding_then_rendering_shows_the_text_once_escaped(text: str) -> None:
    # What the user typed in a modal arrives raw; rendering escapes it exactly once.
    shown = _unescape(render.text(Message.of(text))).replace(render.WORD_JOINER, "")
    assert shown == text.replace(render.WORD_JOINER, "")
    # What they typed in a slash command arrives encoded by Slack: decoding gives it back.
    encoded = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert inbound.decode(encoded) == text


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _texts(value: Any) -> list[str]:
    """The mrkdwn Slack would parse (plain_text fields and button values are literal)."""
    if isinstance(value, dict):
        parsed = value.get("type") == "mrkdwn" and isinstance(value.get("text"), str)
        out = [value["text"]] if parsed else []
        return out + [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def test_mentions_and_times_render_as_slack_tokens() -> None:
    when = When(datetime(2026, 12, 1, 14, 0, tzinfo=UTC), "Europe/London")
    message = Message.of(Strong("Roles"), " for ", when, ": ",
                         Mention(UserRef("slack", "U0ALICE01")), " & ",
                         Mention(UserRef("terminal", "<!here>")))

    assert render.text(message) == (
        "*Roles* for <!date^1796133600^{date_short_pretty} at {time}|Tue 1 Dec 2026, 14:00 GMT>"
        ": <@U0ALICE01> &amp; @&lt;!here&gt;")
    assert render.payload(message) == {"text": render.text(message), "unfurl_links": False,
                                       "unfurl_media": False}


def test_buttons_carry_their_command_and_the_cohort_flag() -> None:
    message = Message((Text("Question #1"),), (Action("Upvote #1", "upvote 1"),))

    blocks = render.blocks(message, prefix="--cohort peer-a ")

    assert blocks is not None
    section, actions = blocks
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": "Question #1"}}
    [button] = actions["elements"]
    assert button["value"] == "--cohort peer-a upvote 1"
    assert button["action_id"].startswith(render.COMMAND_ACTION)


def test_long_messages_are_split_into_valid_sections() -> None:
    message = Message((Text("\n".join(f"line {i} " + "x" * 80 for i in range(200))),),
                      (Action("Go", "next"),))

    blocks = render.blocks(message) or []

    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert len(blocks) <= 50


def test_slash_command_text_is_decoded_exactly_once() -> None:
    assert inbound.decode("cohort members add <@U0ALICE01|alice> <@U0BOB0001>") == \
        "cohort members add <@U0ALICE01> <@U0BOB0001>"
    assert inbound.decode("ask is 1 &lt; 2 &amp;&amp; <!here> ok? &amp;lt;") == \
        "ask is 1 < 2 && @here ok? &lt;"
    assert inbound.decode("ask see <#C0COHORT1|general> and <https://x.example|x.example>"
                          " <!subteam^S1|@mentors>") == \
        "ask see #general and x.example @mentors"


def test_invocations_from_payloads() -> None:
    inv = inbound.command({"user_id": "U0ALICE01", "channel_id": "C0COHORT1",
                           "text": "next", "trigger_id": "1.2.abc"}, tenant="slack:T0COHORT1")
    assert inv.user == UserRef("slack", "U0ALICE01") and inv.tenant == "slack:T0COHORT1"
    assert inv.channel == ChannelRef("slack", "C0COHORT1")
    assert inv.event_id == "slack:cmd:1.2.abc" and inv.seen_by_channel is False
    dm = inbound.command({"user_id": "U0ALICE01", "channel_id": "D0123", "text": ""},
                         tenant="slack")
    assert dm.channel is None
    assert inbound.split_cohort("--cohort peer-a  ask") == inbound.Split("--cohort peer-a ", "ask")
    assert inbound.split_cohort("--cohort=peer-a action add") == \
        inbound.Split("--cohort=peer-a ", "action add")
    body = {"event_id": "Ev1", "event": {"type": "message", "channel_type": "im",
                                         "user": "U0BOB0001", "text": "/cohort next"}}
    msg = inbound.direct_message(body, command_word="cohort", tenant="slack")
    assert msg is not None and msg.text == "next" and msg.event_id == "slack:ev:Ev1"
    assert inbound.direct_message({"event": {**body["event"], "bot_id": "B1"}},
                                  command_word="cohort", tenant="slack") is None


def test_checkin_form_submits_one_command_per_changed_answer() -> None:
    items = [CheckinItem(cohort="peer-a", number=1, text="Draft it", answer=None, note=None),
             CheckinItem(cohort="peer-a", number=2, text="Ask", answer="partly", note="half"),
             CheckinItem(cohort="peer-b", number=1, text="Read", answer="done", note=None)]
    modal = views.checkin_modal(views.Origin("C0COHORT1"), items)
    assert len(modal["title"]["text"]) <= 24
    state = {"values": {
        "answer-0": {"answer": {"type": "radio_buttons", "selected_option": {"value": "dropped"}}},
        "note-0": {"note": {"type": "plain_text_input", "value": " too   big "}},
        "answer-1": {"answer": {"type": "radio_buttons", "selected_option": {"value": "partly"}}},
        "note-1": {"note": {"type": "plain_text_input", "value": "half"}},
        "answer-2": {"answer": {"type": "radio_buttons", "selected_option": {"value": "notyet"}}},
    }}

    origin, commands = views.checkin_commands({**modal, "state": state})

    assert origin.channel == "C0COHORT1"
    assert commands == ["--cohort peer-a action drop 1 too big",
                        "--cohort peer-b action notyet 1"]


def test_ask_preview_shows_the_question_escaped() -> None:
    preview = views.ask_preview(views.Origin(None, "", None), "<!here> & me")

    text = " ".join(_texts(preview["blocks"]))
    assert "> &lt;!here&gt; &amp; me" in text and "<!here>" not in text
    assert views.previewed_question(preview)[1] == "<!here> & me"


def _parse_yaml(text: str) -> Any:
    """Enough YAML to read back what manifest.to_yaml writes (block maps, lists, JSON
    scalars)."""
    import json

    lines = [ln for ln in text.splitlines() if ln.strip()]

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i].strip().startswith("- "):
            out_l: list[Any] = []
            while i < len(lines) and _indent(lines[i]) == indent and \
                    lines[i].strip().startswith("- "):
                rest = lines[i].strip()[2:]
                if ":" in rest and not rest.startswith('"'):
                    lines[i] = " " * (indent + 2) + rest
                    value, i = block(i, indent + 2)
                    out_l.append(value)
                else:
                    out_l.append(json.loads(rest))
                    i += 1
            return out_l, i
        out: dict[str, Any] = {}
        while i < len(lines) and _indent(lines[i]) == indent:
            key, _, rest = lines[i].strip().partition(":")
            rest = rest.strip()
            if rest:
                out[key] = json.loads(rest)
                i += 1
            else:
                out[key], i = block(i + 1, _indent(lines[i + 1]))
        return out, i

    return block(0, 0)[0]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def test_manifest_round_trips_and_asks_only_for_what_it_uses() -> None:
    for mode, url in (("socket", None), ("http", "https://bot.example.org/")):
        text = render_manifest(mode=mode, url=url, command="cohort")
        assert _parse_yaml(text) == manifest(mode=mode, url=url, command="cohort")
    http = manifest(mode="http", url="https://bot.example.org", command="mentor")
    [slash] = http["features"]["slash_commands"]
    assert slash["command"] == "/mentor" and slash["should_escape"] is True
    assert slash["url"] == "https://bot.example.org/slack/events"
    assert http["settings"]["interactivity"]["request_url"] == slash["url"]
    assert http["settings"]["socket_mode_enabled"] is False
    assert set(http["oauth_config"]["scopes"]["bot"]) == set(BOT_SCOPES)
    assert "chat:write.public" not in BOT_SCOPES and "users:read.email" not in BOT_SCOPES
    assert "app_home_opened" in http["settings"]["event_subscriptions"]["bot_events"]
    socket = manifest(mode="socket", url=None, command="cohort")
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in socket["settings"]["interactivity"]
