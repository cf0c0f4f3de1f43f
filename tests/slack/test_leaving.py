"""Leaving the cohort's channel, through the real Bolt app: Slack's `member_left_channel`
(also sent when someone else removes a member) suspends the membership until its
`member_joined_channel`, and the facilitators are told each time. The core's side is in
tests/service/test_leaving.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.slack.manifest import BOT_EVENTS, BOT_SCOPES, manifest
from tests.slack.conftest import BETA, BETA_ADMIN, BETA_BOT, START, OAuthBot, SlackBot
from tests.support.slack import WORKSPACE as W
from tests.support.slack import SlackRequestBuilder, post_signed

SCHEDULE = "weekly tue 14:00 Europe/London for 90m"
LEFT = (f"<@{W.bob}> left the channel of Peer A: until they are back, they get no roles, "
        "reminders, messages or questions from it.")
BACK = f"<@{W.bob}> is back in the channel of Peer A: they take part again."
REFUSED = "You left the channel of Peer A, so its commands wait until you are back in it."

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning")  # slack_sdk's oauth.v2.access call


async def setup_cohort(bot: SlackBot) -> None:
    """Peer A in #cohort-1: ana (alice) and bob are members, the admin facilitates."""
    await bot.command(W.admin, "cohort create Peer A")
    await bot.command(W.admin, f"cohort schedule {SCHEDULE}")
    await bot.command(W.admin, f"cohort members add <@{W.alice}|alice> <@{W.bob}|bob> "
                               f"<@{W.admin}|ada>")
    await bot.command(W.admin, f"cohort facilitators add <@{W.admin}|ada>")


async def moved(bot: SlackBot, user: str, *, present: bool, channel: str = W.channel) -> None:
    """`user` leaves (or joins) `channel` in the fake, and Slack tells the bot."""
    if present:
        bot.fake.join(channel, user)
        event = bot.build.member_joined_channel_event(user_id=user, channel_id=channel)
    else:
        bot.fake.leave(channel, user)
        event = bot.build.member_left_channel_event(user_id=user, channel_id=channel)
    result = await bot.post(bot.build.event_callback(event))
    assert result.status == 200
    await bot.settle()


async def next_in_dm(bot: SlackBot, user: str) -> str:
    await bot.command(user, "next", channel=bot.fake.open_dm(user))
    return bot.last_reply(user)


def test_the_manifest_subscribes_to_leaving_and_joining_with_their_scopes() -> None:
    for mode, url in (("socket", None), ("http", "https://bot.example.org")):
        made = manifest(mode=mode, url=url, command="cohort")
        events = made["settings"]["event_subscriptions"]["bot_events"]
        assert {"member_left_channel", "member_joined_channel"} <= set(events)
        assert {"channels:read", "groups:read"} <= set(made["oauth_config"]["scopes"]["bot"])
    assert {"member_left_channel", "member_joined_channel"} <= set(BOT_EVENTS)
    assert {"channels:read", "groups:read"} <= set(BOT_SCOPES)


async def test_who_leaves_waits_until_back_and_the_facilitator_is_told(
        slack_bot: SlackBot) -> None:
    bot = slack_bot
    await setup_cohort(bot)
    await bot.command(W.admin, "cohort set reminders-to both")
    assert (await next_in_dm(bot, W.bob)).startswith("Next session of *Peer A*")
    told_bob = len(bot.replies_to(W.bob))

    await moved(bot, W.bob, present=False)
    assert [d for d in bot.dms(W.admin) if "channel of" in d] == [LEFT]
    assert bot.dms(W.bob) == [] and len(bot.replies_to(W.bob)) == told_bob  # not told
    assert (await next_in_dm(bot, W.bob)).startswith(REFUSED)
    await bot.command(W.bob, "--cohort peer-a action list", channel=W.channel_without_bot)
    assert bot.last_reply(W.bob).startswith(REFUSED)

    # Through Tuesday's session: the reminders reach ana by DM, and never bob.
    await bot.advance_to(START + timedelta(days=1, hours=4))  # Tue 13:00 UTC
    assert any("Reminder: Peer A meets in" in d for d in bot.dms(W.alice))
    assert not any("Reminder" in d for d in bot.dms(W.bob))
    assert [d for d in bot.dms(W.admin) if "channel of" in d] == [LEFT]

    told_bob = len(bot.replies_to(W.bob))
    dms_bob = bot.dms(W.bob)
    await moved(bot, W.bob, present=True)
    assert bot.dms(W.bob) == dms_bob and len(bot.replies_to(W.bob)) == told_bob
    assert [d for d in bot.dms(W.admin) if "channel of" in d] == [LEFT, BACK]
    assert (await next_in_dm(bot, W.bob)).startswith("Next session of *Peer A*")
    assert all(a.status == 200 and a.elapsed < 3.0 for a in bot.acks)


async def test_a_leave_elsewhere_or_the_bots_own_changes_nothing(slack_bot: SlackBot) -> None:
    bot = slack_bot
    await setup_cohort(bot)
    # Even with the bot listed as a member by mistake, its own moves are not a member's.
    await bot.command(W.admin, f"cohort members add <@{W.bot_user}|cohortbot>")
    assert bot.last_reply(W.admin).startswith(f"Added <@{W.bot_user}>")

    await moved(bot, W.bob, present=False, channel=W.channel_without_bot)  # another channel
    # The bot removed from the cohort's channel (Bolt does not drop its own
    # member_left_channel), and its channel_left.
    await moved(bot, W.bot_user, present=False)
    result = await bot.post(bot.build.event_callback(
        {"type": "channel_left", "channel": W.channel, "actor_id": W.admin}))
    assert result.status == 200
    await bot.settle()
    bot.fake.join(W.channel, W.bot_user)
    # A redelivered join of someone who never left changes nothing either.
    await moved(bot, W.alice, present=True)

    assert bot.dms(W.admin) == []
    assert (await next_in_dm(bot, W.bob)).startswith("Next session of *Peer A*")
    assert (await next_in_dm(bot, W.alice)).startswith("Next session of *Peer A*")
    # The same event in the cohort's own channel is heard (so the ones above were seen, and
    # set aside).
    await moved(bot, W.bob, present=False)
    assert [d for d in bot.dms(W.admin) if "channel of" in d] == [LEFT]


async def test_leave_and_join_over_socket_mode(socket_bot: SlackBot) -> None:
    bot, fake = socket_bot, socket_bot.fake

    async def command(user: str, text: str, channel: str = W.channel) -> None:
        delivery = await fake.socket_send("slash_commands", bot.build.slash_command_payload(
            "/cohort", text, user_id=user, channel_id=channel))
        assert delivery.acked and delivery.ack_elapsed is not None
        assert delivery.ack_elapsed < 3.0
        await bot.settle()

    async def event(payload: dict[str, object]) -> None:
        delivery = await fake.socket_send("events_api", bot.build.event_callback_payload(payload))
        assert delivery.acked
        await bot.settle()

    await command(W.admin, "cohort create Peer A")
    await command(W.admin, f"cohort members add <@{W.alice}|alice> <@{W.bob}|bob> "
                           f"<@{W.admin}|ada>")
    await command(W.admin, f"cohort facilitators add <@{W.admin}|ada>")

    fake.leave(W.channel, W.bob)  # removed by someone else: the same event
    await event(bot.build.member_left_channel_event(user_id=W.bob, channel_id=W.channel))
    assert [d for d in bot.dms(W.admin) if "channel of" in d] == [LEFT]
    await command(W.bob, "next", fake.open_dm(W.bob))
    assert bot.last_reply(W.bob).startswith(REFUSED)

    fake.join(W.channel, W.bob)
    await event(bot.build.member_joined_channel_event(user_id=W.bob, channel_id=W.channel,
                                                      inviter=W.admin))
    assert [d for d in bot.dms(W.admin) if "channel of" in d] == [LEFT, BACK]
    await command(W.bob, "next", fake.open_dm(W.bob))
    assert bot.last_reply(W.bob).startswith("Peer A has no upcoming session")


async def test_a_leave_in_another_workspace_suspends_no_one_here(oauth_bot: OAuthBot) -> None:
    """Beta says that a user with bob's id left a channel with the cohort's channel id: that
    is Beta's user and Beta's channel, not Alpha's, so bob stays a member of Peer A."""
    bot, fake = oauth_bot, oauth_bot.fake
    await bot.install(W.team_id, W.admin, W.bot_user, W.bot_id)
    await bot.install(BETA, BETA_ADMIN, BETA_BOT, "B0BETABOT")
    alpha, beta = fake.requests(), fake.requests(BETA)

    async def ask(user: str, text: str, channel: str = W.channel) -> str:
        before = len(fake.ephemerals(user=user))
        await bot.command(alpha, user, channel, text)
        await fake.wait_for(lambda: len(fake.ephemerals(user=user)) > before,
                            what=f"the answer to {text!r}")
        return str(fake.ephemerals(user=user)[-1]["text"])

    async def send(build: SlackRequestBuilder, event: dict[str, object]) -> None:
        result = await post_signed(bot.base + "/slack/events", build.event_callback(event))
        assert result.status == 200 and result.elapsed < 3.0

    await bot.command(alpha, W.admin, W.channel, "cohort create Peer A")
    await bot.wait_posts(W.channel, 1)
    assert "Added" in await ask(W.admin, f"cohort members add <@{W.alice}|alice> "
                                         f"<@{W.bob}|bob> <@{W.admin}|ada>")
    await ask(W.admin, f"cohort facilitators add <@{W.admin}|ada>")

    await send(beta, beta.member_left_channel_event(user_id=W.bob, channel_id=W.channel))
    # Alpha's own leave of alice comes after it, and is heard.
    await send(alpha, alpha.member_left_channel_event(user_id=W.alice, channel_id=W.channel))
    admin_dm = fake.open_dm(W.admin)
    await fake.wait_for(lambda: any(f"<@{W.alice}> left" in m["text"]
                                    for m in fake.messages(admin_dm)),
                        what="the facilitator told that alice left")
    await bot.platform.background.join()
    told = [m["text"] for m in fake.messages(admin_dm)]
    assert not any(W.bob in t for t in told), told
    dm = fake.open_dm(W.bob)
    assert (await ask(W.bob, "next", dm)).startswith("Peer A has no upcoming session")
    assert (await ask(W.alice, "next", fake.open_dm(W.alice))).startswith(
        "You left the channel of Peer A")
