"""Tenants never reach each other, through the real Bolt app with three OAuth installs.

Alpha runs Peer A, whose member has a question waiting for moderation. Two outsiders attack
it with every command of the grammar, as a client sends them: Bea, an admin of the Beta
workspace, and Gus, who owns the Gamma workspace and has just installed the app there. For
them Peer A does not exist: every command naming `--cohort peer-a` gets, word for word, the
answer a made-up id gets; `cohort list` and `cohort link` show nothing of it; no message of
theirs reaches Alpha, no reply tells them anything of Alpha's, and Alpha's rows do not change.
Each workspace's admin is still an admin at home.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from bot.chat.grammar import COMMANDS
from bot.db.engine import sync_url
from tests.faults.test_authorization import invocation_text
from tests.slack.conftest import BETA, BETA_ADMIN, BETA_BOT, BETA_CHANNEL, OAuthBot
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack, SlackRequestBuilder, post_signed

GAMMA, GAMMA_OWNER, GAMMA_BOT, GAMMA_CHANNEL = "T0GAMMA01", "U0GAMOWNR", "U0GAMBOT", "C0GAMMA01"
QUESTION = "Is it normal that my PI reads my email?"

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning")  # slack_sdk's oauth.v2.access call


@dataclass
class Outsider:
    kind: str
    team: str
    user: str
    channel: str


OUTSIDERS = (
    Outsider("admin of another workspace", BETA, BETA_ADMIN, BETA_CHANNEL),
    Outsider("owner who just installed the app elsewhere", GAMMA, GAMMA_OWNER, GAMMA_CHANNEL),
)


def _rows(db_url: str) -> dict[str, list[Any]]:
    """Everything stored about Alpha's cohorts."""
    engine = sa.create_engine(sync_url(db_url))
    try:
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.text(
                "SELECT id FROM cohorts WHERE tenant = :t"), {"t": f"slack:{W.team_id}"})]
            out = {}
            for table, col in (("cohorts", "id"), ("members", "cohort_id"),
                               ("questions", "cohort_id"), ("sessions", "cohort_id"),
                               ("outbox", "cohort_id")):
                stmt = sa.text(f"SELECT * FROM {table} WHERE {col} IN :ids ORDER BY id"
                               ).bindparams(sa.bindparam("ids", expanding=True))
                out[table] = [tuple(r) for r in conn.execute(stmt, {"ids": ids})]
            return out
    finally:
        engine.dispose()


class Asker:
    """One person's slash commands, each answered (ephemerally) before the next is sent."""

    def __init__(self, bot: OAuthBot, build: SlackRequestBuilder, user: str,
                 channel: str) -> None:
        self.bot, self.build, self.user, self.channel = bot, build, user, channel

    async def __call__(self, text: str, channel: str | None = None) -> str:
        fake = self.bot.fake
        before = len(fake.ephemerals(user=self.user))
        await self.bot.command(self.build, self.user, channel or self.channel, text)
        await fake.wait_for(lambda: len(fake.ephemerals(user=self.user)) > before,
                            what=f"the answer to {text!r}")
        return "\n".join(e["text"] for e in fake.ephemerals(user=self.user)[before:])


def _texts(fake: FakeSlack, user: str) -> Iterator[str]:
    yield from (e["text"] for e in fake.ephemerals(user=user))
    for channel in (fake.dm_channel(user),):
        if channel:
            yield from (m["text"] for m in fake.messages(channel))


async def test_another_workspaces_admins_find_nothing_of_alpha(oauth_bot: OAuthBot) -> None:
    bot, fake = oauth_bot, oauth_bot.fake
    fake.add_team(GAMMA, "Gamma", "gamma")
    fake.add_user(GAMMA_OWNER, "gus", is_owner=True, team_id=GAMMA)
    fake.add_channel("gamma", channel_id=GAMMA_CHANNEL, members=[GAMMA_OWNER, GAMMA_BOT],
                     team_id=GAMMA)
    await bot.install(W.team_id, W.admin, W.bot_user, W.bot_id)
    await bot.install(BETA, BETA_ADMIN, BETA_BOT, "B0BETABOT")
    await bot.install(GAMMA, GAMMA_OWNER, GAMMA_BOT, "B0GAMBOT")  # just now

    ada = Asker(bot, fake.requests(), W.admin, W.channel)
    await bot.command(fake.requests(), W.admin, W.channel, "cohort create Peer A")
    [created] = await bot.wait_posts(W.channel, 1)  # answered where everyone sees it
    assert created.startswith("Created *Peer A*"), created
    assert "Added" in await ada(f"cohort members add <@{W.alice}|alice> <@{W.bob}|bob>")
    assert "oderation" in await ada("cohort set moderation on")
    alice = Asker(bot, fake.requests(), W.alice, fake.open_dm(W.alice))
    assert "anonymous question is in" in await alice(f"ask {QUESTION}")
    assert QUESTION in await ada("questions review")
    before = _rows(bot.db_url)
    alpha_posts = len(fake.posts(W.channel))

    for who in OUTSIDERS:
        ask = Asker(bot, fake.requests(who.team), who.user, who.channel)
        assert "(as admin)" in await ask("help"), who.kind  # an admin at home
        for spec in COMMANDS:
            text = invocation_text(spec)
            there = await ask(f"--cohort peer-a {text}")
            nowhere = await ask(f"--cohort nonesuch {text}")
            assert there == nowhere.replace("nonesuch", "peer-a"), (who.kind, text, there)
            # …from a direct message with the bot too.
            dm = fake.open_dm(who.user)
            assert await ask(f"--cohort peer-a {text}", dm) == there, (who.kind, text)
        listed = await ask("cohort list")
        assert "Peer A" not in listed and "peer-a" not in listed, (who.kind, listed)
        linked = await ask("cohort link peer-a")
        assert linked == (await ask("cohort link nonesuch")).replace("nonesuch", "peer-a")
        assert "This channel is not linked" in await ask("questions review"), who.kind
        for said in _texts(fake, who.user):
            assert QUESTION not in said and "Peer A" not in said, (who.kind, said)
        # Their own cohort may even take the same name and id: ids are per workspace.
        await bot.command(fake.requests(who.team), who.user, who.channel,
                          "cohort create Peer A")
        [created] = await bot.wait_posts(who.channel, 1)
        assert created.startswith("Created *Peer A* (id peer-a)"), (who.kind, created)

    assert _rows(bot.db_url) == before
    assert len(fake.posts(W.channel)) == alpha_posts
    # Alpha's admin still rules Peer A, and sees only Alpha's cohort.
    listed = await ada("cohort list")
    assert "Peer A (id peer-a) — active, 2 members" in listed.replace("*", "")
    assert listed.count("Peer A") == 1, listed


async def test_one_person_in_two_workspaces_is_two_people(oauth_bot: OAuthBot) -> None:
    """One user id in two workspaces (an Enterprise Grid organisation's): a member of a
    cohort in each, answered in each about that workspace's cohort only, reached through each
    workspace's own token, and forgotten in one without being forgotten in the other."""
    bot, fake = oauth_bot, oauth_bot.fake
    gia = "U0GRIDGIA"
    fake.add_user(gia, "gia", team_id=W.team_id, also_in=(BETA,))
    alpha_token = await bot.install(W.team_id, W.admin, W.bot_user, W.bot_id)
    beta_token = await bot.install(BETA, BETA_ADMIN, BETA_BOT, "B0BETABOT")
    alpha, beta = fake.requests(), fake.requests(BETA)
    for build, admin, channel, name in ((alpha, W.admin, W.channel, "Peer A"),
                                        (beta, BETA_ADMIN, BETA_CHANNEL, "Peer B")):
        await bot.command(build, admin, channel, f"cohort create {name}")
        await bot.wait_posts(channel, 1)
        assert "Added" in await Asker(bot, build, admin, channel)(
            f"cohort members add <@{gia}|gia>")

    in_alpha = Asker(bot, alpha, gia, "D0GIAALPH")  # from a direct conversation
    in_beta = Asker(bot, beta, gia, "D0GIABETA")
    assert await in_alpha("next") == "Peer A has no upcoming session (no schedule yet)."
    assert await in_beta("next") == "Peer B has no upcoming session (no schedule yet)."

    # A question's code is shown to her ephemerally in each workspace, never by DM…
    fake.clear_calls()
    assert "anonymous question is in" in await in_alpha("ask Who reviews your code?")
    assert "anonymous question is in" in await in_beta("ask Who reviews your papers?")
    assert not fake.calls_to("chat.postMessage") and not fake.calls_to("conversations.open")
    # …and a message to each workspace's bot is answered in that bot's own conversation with
    # her, with that workspace's token.
    dm_alpha, dm_beta = fake.open_dm(gia, team_id=W.team_id), fake.open_dm(gia, team_id=BETA)
    for build, dm in ((alpha, dm_alpha), (beta, dm_beta)):
        result = await post_signed(bot.base + "/slack/events", build.event_callback(
            build.message_event(user_id=gia, channel_id=dm, text="next")))
        assert result.status == 200
    await fake.wait_for(lambda: len(fake.calls_to("chat.postMessage")) >= 2,
                        what="the two answers by DM")
    posted = {c.token: c.params.get("channel") for c in fake.calls_to("chat.postMessage")}
    assert posted == {alpha_token: dm_alpha, beta_token: dm_beta}
    assert dm_alpha != dm_beta

    # Forgotten in Beta, still a member in Alpha.
    assert "deleted" in await in_beta("forget-me confirm")
    assert await in_beta("next") == "You are not in any cohort yet.\nUsage: /cohort next"
    assert await in_alpha("next") == "Peer A has no upcoming session (no schedule yet)."
