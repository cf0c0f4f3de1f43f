"""The workspace the Slack tests start from (shared by the fixtures and subprocess tests)."""

from __future__ import annotations

from dataclasses import dataclass

from .webapi import FakeSlack


@dataclass(frozen=True)
class Workspace:
    team_id: str = "T0COHORT1"
    team_domain: str = "cohort-test"
    app_id: str = "A0COHORT1"
    admin: str = "U0ADMIN01"  # workspace admin, Europe/London
    alice: str = "U0ALICE01"  # member, Europe/Berlin
    bob: str = "U0BOB0001"  # member, America/Los_Angeles
    bot_user: str = "U0BOT0001"
    bot_id: str = "B0BOT0001"
    channel: str = "C0COHORT1"  # #cohort-1: admin, alice, bob and the bot
    channel_without_bot: str = "C0RANDOM1"  # #random: admin, alice, bob
    bot_token: str = "xoxb-test"
    app_token: str = "xapp-test"
    signing_secret: str = "8f742231b10e8888abcd99yyyzzz85a5"


WORKSPACE = Workspace()


def seed_workspace(fake: FakeSlack, ws: Workspace = WORKSPACE) -> Workspace:
    fake.add_user(ws.admin, "ada", real_name="Ada Admin", tz="Europe/London", is_admin=True)
    fake.add_user(ws.alice, "alice", real_name="Alice Berg", tz="Europe/Berlin")
    fake.add_user(ws.bob, "bob", real_name="Bob Lee", tz="America/Los_Angeles")
    fake.add_bot(user_id=ws.bot_user, bot_id=ws.bot_id, token=ws.bot_token)
    fake.add_app_token(ws.app_token)
    humans = [ws.admin, ws.alice, ws.bob]
    fake.add_channel("cohort-1", channel_id=ws.channel, members=[*humans, ws.bot_user])
    fake.add_channel("random", channel_id=ws.channel_without_bot, members=humans,
                     is_general=True)
    return ws
