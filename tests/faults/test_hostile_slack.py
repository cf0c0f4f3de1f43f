"""Hostile input through the real Slack adapter: signed slash commands and direct messages,
carrying anything after any command word, go through the Bolt app, the core and back out
through the fake Web API. Every one is acknowledged within Slack's 3 seconds and gets an
answer, and nothing the bot posts, privately or not, can notify anyone but a member it
names on purpose: no `<!channel>`, `<!here>` or `<!subteam…>`, no `<@…>` of a stranger.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.chat.grammar import COMMANDS
from tests.faults.test_hostile_input import BROKEN, INJECTIONS, TAILS
from tests.slack.conftest import SlackBot, running_bot
from tests.slack.test_flows import setup_cohort
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack, seed_workspace

MEMBERS = {W.alice, W.bob, W.admin}
_TOKEN = re.compile(r"<([^<>]*)>")
SLACK = settings(max_examples=60, deadline=None, derandomize=True,  # (the same 60 in CI)
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[SlackBot]:
    async with FakeSlack(team_id=W.team_id, app_id=W.app_id,
                         signing_secret=W.signing_secret) as fake:
        seed_workspace(fake)
        async with running_bot(fake, tmp_path) as running:
            await setup_cohort(running)
            yield running


def _texts(message: dict[str, Any]) -> list[str]:
    """What Slack would parse for mentions: the text and every text object in the blocks."""
    out = [str(message.get("text") or "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.get("blocks") or [])
    return out


async def members(bot: SlackBot) -> set[str]:
    """Everyone the bot may name: the cohort's people as they are now (an admin's `cohort
    members add` makes a new one, whom the answer then names)."""
    async with bot.app.engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT user_id FROM members"))
        return {str(r[0]) for r in rows} | MEMBERS


def assert_cannot_ping(message: dict[str, Any], known: set[str]) -> None:
    for text in _texts(message):
        for token in _TOKEN.finditer(text):
            inner = token[1]
            if inner.startswith("!date^") or inner.startswith("#"):
                continue  # a time in each reader's zone; a channel link (notifies no one)
            assert inner.startswith("@") and inner[1:].split("|")[0] in known, (token[0], text)


def _everything(bot: SlackBot) -> list[dict[str, Any]]:
    fake = bot.fake
    return [*fake.ephemerals(), *fake.posts(W.channel),
            *(m for u in (W.alice, W.bob, W.admin) if (dm := fake.dm_channel(u))
              for m in fake.messages(dm))]


@SLACK
@given(name=st.sampled_from([spec.name for spec in COMMANDS]), tail=TAILS,
       who=st.sampled_from([W.bob, W.admin]),
       where=st.sampled_from(["slash", "dm"]))
async def test_anything_after_any_command_through_bolt_gets_an_answer_and_pings_no_one(
    bot: SlackBot, name: str, tail: str, who: str, where: str
) -> None:
    before = len(_everything(bot))
    text = f"{name} {tail}"
    if where == "slash":
        # A form body is UTF-8: a lone surrogate cannot travel in one (JSON events can carry
        # it escaped, and do below).
        assume(not any("\ud800" <= ch <= "\udfff" for ch in text))
        result = await bot.command(who, text)
        assert result.status == 200 and result.elapsed < 3.0
    else:
        dm = bot.fake.open_dm(who)
        event = bot.build.message_event(user_id=who, channel_id=dm, text=text)
        await bot.post(bot.build.event_callback(event))
        await bot.settle()
    new = _everything(bot)[before:]
    opened = bot.fake.modal_stack(who)
    assert new or opened, f"no answer to {text!r}"
    known = await members(bot)
    for message in new:
        assert not any(b in str(message.get("text")) for b in BROKEN), message
        assert_cannot_ping(message, known)
    bot.fake.close_modal(who, clear=True)


@pytest.mark.parametrize("injection", INJECTIONS)
async def test_each_known_injection_in_an_action_is_repeated_inert(
    bot: SlackBot, injection: str
) -> None:
    before = len(_everything(bot))
    await bot.command(W.bob, f"action add {injection}")
    await bot.command(W.bob, "action list")
    new = _everything(bot)[before:]
    assert len(new) >= 2
    for message in new:
        assert_cannot_ping(message, MEMBERS)
