"""Nobody can flood through Slack: a burst of slash commands is answered, a flood is told to
slow down and does nothing, on the bot's (simulated) clock (bot/service/limits.py)."""

from __future__ import annotations

from datetime import timedelta

from tests.slack.conftest import SlackBot
from tests.slack.test_flows import setup_cohort
from tests.support.slack import WORKSPACE as W


async def test_a_flood_of_slash_commands_is_told_to_slow_down(slack_bot: SlackBot) -> None:
    await setup_cohort(slack_bot)
    for _ in range(30):
        await slack_bot.command(W.bob, "next")
    assert all(r.startswith("Next session of *Peer A*")
               for r in slack_bot.replies_to(W.bob)[-30:])
    await slack_bot.command(W.bob, "action add Call the lab manager")
    assert slack_bot.last_reply(W.bob).startswith(
        "You are sending commands faster than I can take them")
    await slack_bot.command(W.alice, "next")  # others go on
    assert slack_bot.last_reply(W.alice).startswith("Next session of *Peer A*")

    slack_bot.clock.set(slack_bot.clock.now() + timedelta(seconds=61))
    await slack_bot.command(W.bob, "action list")
    assert "Call the lab manager" not in slack_bot.last_reply(W.bob)  # nothing was done
    await slack_bot.command(W.bob, "action add Call the lab manager")
    assert slack_bot.last_reply(W.bob).startswith("Action 1 recorded.")
