"""Installing into several workspaces through OAuth, with the real `cohortbot run` wiring.

The bot runs `bot.bootstrap.serve` in this loop with OAuth credentials and no bot token. Two
workspaces install it through the real flow (`/slack/install` → Slack's authorize page, played
by the fake → `/slack/oauth_redirect`); each workspace's commands are then served with its own
token; uninstalling one removes its installation and stops serving it, while the other goes on.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.platform import SlackPlatform
from adapters.slack.workspaces import BoltInstallationStore, ManyWorkspaces
from bot.bootstrap import build, ensure_schema
from bot.config import load_settings
from bot.db.engine import create_engine, session_factory
from bot.db.slack_installations import (
    SqlSlackInstallations,
    TokenCipher,
    TokenKeyError,
    new_token_key,
)
from bot.scheduling.clock import SimulatedClock
from bot.service.ports import DeliveryError, SlackInstallation
from tests.e2e.conftest import COHORTBOT
from tests.slack.conftest import (
    BETA,
    BETA_ADMIN,
    BETA_BOT,
    BETA_CHANNEL,
    START,
    TOKEN_KEY,
    OAuthBot,
    oauth_environ,
)
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack, post_signed

CIPHER = TokenCipher(TOKEN_KEY)

pytestmark = pytest.mark.filterwarnings(
    "ignore:BasicAuth is deprecated:DeprecationWarning")  # slack_sdk's oauth.v2.access call

async def test_two_workspaces_install_are_served_with_their_own_tokens_and_uninstall(
        oauth_bot: OAuthBot, caplog: pytest.LogCaptureFixture) -> None:
    bot, fake = oauth_bot, oauth_bot.fake
    alpha_token = await bot.install(W.team_id, W.admin, W.bot_user, W.bot_id)
    beta_token = await bot.install(BETA, BETA_ADMIN, BETA_BOT, "B0BETABOT")
    assert alpha_token != beta_token
    assert [(r["team_id"], r["bot_user_id"], r["installer_user_id"]) for r in bot.rows()] == [
        (BETA, BETA_BOT, BETA_ADMIN), (W.team_id, W.bot_user, W.admin)]
    assert {r["enterprise_id"] for r in bot.rows()} == {""}

    alpha, beta = fake.requests(), fake.requests(BETA)
    await bot.command(alpha, W.admin, W.channel, "cohort create Peer A")
    await bot.command(beta, BETA_ADMIN, BETA_CHANNEL, "cohort create Peer B")
    [created_a] = await bot.wait_posts(W.channel, 1)
    [created_b] = await bot.wait_posts(BETA_CHANNEL, 1)
    assert created_a.startswith("Created *Peer A*") and created_b.startswith("Created *Peer B*")

    def in_alpha(p: dict[str, Any]) -> bool:
        return p.get("channel") == W.channel or p.get("user") == W.admin

    def in_beta(p: dict[str, Any]) -> bool:
        return p.get("channel") == BETA_CHANNEL or p.get("user") == BETA_ADMIN

    assert bot.tokens_used("chat.postMessage", in_alpha) == {alpha_token}
    assert bot.tokens_used("chat.postMessage", in_beta) == {beta_token}
    # The workspace-admin check looked Bea up in her own workspace.
    assert bot.tokens_used("users.info", in_alpha) <= {alpha_token}
    assert bot.tokens_used("users.info", in_beta) == {beta_token}

    # Beta uninstalls the app.
    caplog.set_level("INFO", logger="adapters.slack")
    result = await post_signed(bot.base + "/slack/events", beta.event_callback(
        {"type": "app_uninstalled"}))
    assert result.status == 200
    assert [r["team_id"] for r in bot.rows()] == [W.team_id]
    assert any("app_uninstalled in workspace T0BETA001" in r.getMessage()
               for r in caplog.records)
    assert not any(t in r.getMessage() for r in caplog.records
                   for t in (alpha_token, beta_token))

    fake.clear_calls()
    await bot.command(beta, BETA_ADMIN, BETA_CHANNEL, "cohort members add <@U0BETAADM|bea>")
    await bot.command(alpha, W.admin, W.channel, f"cohort members add <@{W.alice}|alice>")
    await fake.wait_for(lambda: any(e["text"].startswith("Added")
                                    for e in fake.ephemerals(user=W.admin)),
                        what="alpha's answer")
    await fake.wait_for(lambda: fake.ephemerals(user=BETA_ADMIN), what="beta's answer")
    await asyncio.sleep(0.3)  # room for anything beta's command might (wrongly) do
    # Beta's command never reached the core: Bolt found no installation and said so.
    assert "install" in fake.ephemerals(user=BETA_ADMIN)[-1]["text"].lower()
    assert not [e for e in fake.ephemerals(user=BETA_ADMIN) if "Added" in e["text"]]
    assert all(c.token != beta_token for c in fake.calls), "beta was served after uninstall"
    assert {c.token for c in fake.calls if c.token} <= {alpha_token}
    assert len(fake.posts(BETA_CHANNEL)) == 1


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_installation_store_contract(db_url: str) -> None:
    engine = create_engine(db_url)
    store = SqlSlackInstallations(session_factory(engine), CIPHER)
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    def inst(team: str | None, token: str, enterprise: str | None = None
             ) -> SlackInstallation:
        return SlackInstallation(enterprise_id=enterprise, team_id=team, bot_token=token,
                                 bot_user_id="UB", bot_id="BB", installer_user_id="UI",
                                 scopes=("commands", "chat:write"), installed_at=at)

    try:
        assert await store.find(enterprise_id=None, team_id="T1") is None
        await store.save(inst("T1", "xoxb-one"))
        await store.save(inst("T2", "xoxb-two"))
        await store.save(inst(None, "xoxb-org", enterprise="E1"))
        found = await store.find(enterprise_id=None, team_id="T1")
        assert found == inst("T1", "xoxb-one")
        assert "xoxb-one" not in repr(found)
        await store.save(inst("T1", "xoxb-one-again"))  # a reinstall replaces
        again = await store.find(enterprise_id=None, team_id="T1")
        assert again is not None and again.bot_token == "xoxb-one-again"
        assert (await store.find(enterprise_id="E1", team_id=None)) == inst(
            None, "xoxb-org", enterprise="E1")

        assert await store.delete(enterprise_id=None, team_id="T2") is True
        assert await store.delete(enterprise_id=None, team_id="T2") is False
        assert await store.find(enterprise_id=None, team_id="T2") is None
        assert (await store.find(enterprise_id=None, team_id="T1")) is not None
    finally:
        await engine.dispose()


async def test_tenants_route_tokens_after_a_restart_and_fail_for_good_when_uninstalled(
        tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'route.db'}"
    ensure_schema(url)
    engine = create_engine(url)
    store = SqlSlackInstallations(session_factory(engine), CIPHER)
    made: list[str] = []

    def make(token: str) -> AsyncWebClient:
        made.append(token)
        return AsyncWebClient(token=token, base_url="http://127.0.0.1:9/api/")

    try:
        at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
        bolt = BoltInstallationStore(store)
        await bolt.async_save(Installation(
            team_id="T1", user_id="UI", bot_token="xoxb-t1", bot_id="B1", bot_user_id="UB1",
            bot_scopes=["commands"], installed_at=at.timestamp()))
        bot = await bolt.async_find_bot(enterprise_id=None, team_id="T1")
        assert bot is not None and bot.bot_token == "xoxb-t1" and bot.bot_user_id == "UB1"

        # A tenant names its workspace: no place has to have been seen before, and a
        # restarted bot (nothing in memory) routes the same way.
        restarted = ManyWorkspaces(store, make)
        assert (await restarted.client_for("slack:T1")).token == "xoxb-t1"
        assert (await restarted.client_for("slack:T1")).token == "xoxb-t1"
        assert made == ["xoxb-t1"]  # one client per workspace
        for elsewhere in ("slack:T404", "slack", "matrix", None):
            with pytest.raises(DeliveryError) as unknown:
                await restarted.client_for(elsewhere)
            assert unknown.value.permanent and unknown.value.reason == "not_installed"

        gone = BoltInstallationStore(store, on_delete=restarted.forget)
        await gone.async_delete_all(enterprise_id=None, team_id="T1")
        assert await gone.async_find_bot(enterprise_id=None, team_id="T1") is None
        with pytest.raises(DeliveryError) as uninstalled:
            await restarted.client_for("slack:T1")
        assert uninstalled.value.permanent
    finally:
        await engine.dispose()


async def test_socket_mode_serves_only_the_install_pages_over_http(
        fake_slack: FakeSlack, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'socket.db'}"
    ensure_schema(url)
    env = oauth_environ(fake_slack, url, mode="socket")
    empty = tmp_path / "cohortbot.toml"
    empty.write_text("")
    settings = load_settings(empty, environ=env)
    engine = create_engine(url)
    platform = SlackPlatform(settings.slack,
                             installations=SqlSlackInstallations(session_factory(engine), CIPHER))
    app = build(settings, clock=SimulatedClock(START), messengers={"slack": platform.messenger})
    await platform.start(app.bot)
    try:
        await fake_slack.socket_wait_connected(1)
        await fake_slack.wait_for(lambda: platform.port is not None, what="the install pages")
        base = f"http://127.0.0.1:{platform.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/slack/install") as resp:
                assert resp.status == 200 and "state=" in await resp.text()
            async with http.post(base + "/slack/events", data=b"{}") as resp:
                assert resp.status in (404, 405)
    finally:
        await platform.stop()
        await app.close()
        await engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_tokens_are_sealed_at_rest_and_their_key_rotates(db_url: str) -> None:
    """Someone holding the database finds no token; an older plain row is sealed at start;
    a new key put first re-seals everything, and then the old key can go."""
    engine = create_engine(db_url)
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    plain = "xoxb-0123456789-alpha-token"
    old_key, new_key = TOKEN_KEY, new_token_key()

    async def stored() -> list[str]:
        async with engine.connect() as conn:
            return [str(v) for (v,) in await conn.execute(sa.text(
                "SELECT bot_token FROM slack_installations ORDER BY team_id"))]

    try:
        store = SqlSlackInstallations(session_factory(engine), TokenCipher(old_key))
        await store.save(SlackInstallation(
            enterprise_id=None, team_id="T1", bot_token=plain, bot_user_id="UB", bot_id="BB",
            installer_user_id="UI", scopes=("commands",), installed_at=at))
        assert [s[:7] for s in await stored()] == ["fernet:"]
        assert not any(plain in s for s in await stored())
        async with engine.begin() as conn:  # a row an older version stored in the clear
            await conn.execute(sa.text(
                "INSERT INTO slack_installations VALUES ('', 'T2', 'xoxb-legacy-beta', 'UB2', "
                "'BB2', 'UI2', 'commands', :at)"), {"at": at})
        assert await store.reseal() == 1
        assert not any("xoxb-" in s for s in await stored())
        beta = await store.find(enterprise_id=None, team_id="T2")
        assert beta is not None and beta.bot_token == "xoxb-legacy-beta"

        rotating = SqlSlackInstallations(session_factory(engine),
                                         TokenCipher(f"{new_key},{old_key}"))
        assert await rotating.reseal() == 2
        assert await rotating.reseal() == 0
        rotated = SqlSlackInstallations(session_factory(engine), TokenCipher(new_key))
        alpha = await rotated.find(enterprise_id=None, team_id="T1")
        assert alpha is not None and alpha.bot_token == plain
        with pytest.raises(TokenKeyError, match="COHORTBOT_SLACK__TOKEN_KEY=new,old"):
            await store.find(enterprise_id=None, team_id="T1")  # the old key alone: no more
    finally:
        await engine.dispose()


def test_start_up_stops_on_a_missing_or_wrong_token_key(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    url = f"sqlite+aiosqlite:///{db}"
    ensure_schema(url)
    sealed = TokenCipher(new_token_key()).seal("xoxb-sealed-with-another-key")
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO slack_installations VALUES ('', 'T1', :t, 'UB', "
                             "'BB', 'UI', 'commands', '2026-11-30 09:00:00')"), {"t": sealed})
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")} | {
        "COHORTBOT_DATABASE__URL": url, "COHORTBOT_SLACK__ENABLED": "true",
        "COHORTBOT_SLACK__MODE": "socket", "COHORTBOT_SLACK__APP_TOKEN": "xapp-1-test",
        "COHORTBOT_SLACK__API_BASE_URL": "http://127.0.0.1:9/",
        "COHORTBOT_SLACK__CLIENT_ID": "1.2", "COHORTBOT_SLACK__CLIENT_SECRET": "cs"}
    for command in ("run", "check-config"):
        missing = subprocess.run([COHORTBOT, command], env=env, capture_output=True, text=True,
                                 cwd=tmp_path, timeout=60)
        assert missing.returncode == 2
        assert missing.stderr.strip().splitlines() == [
            "config error: slack.token_key: required when slack.client_id is set: installs' "
            "tokens are stored sealed with it (make one with 'cohortbot new-key'; set it in "
            "the file or COHORTBOT_SLACK__TOKEN_KEY)"]
    wrong = subprocess.run([COHORTBOT, "run"], env=env | {"COHORTBOT_SLACK__TOKEN_KEY": TOKEN_KEY},
                           capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines()[-1] == (
        "slack.token_key cannot read a stored Slack token: keep the key it was sealed with "
        "after the new one (COHORTBOT_SLACK__TOKEN_KEY=new,old)")
    assert "Traceback" not in wrong.stderr
