"""The database goes away: commands get a short "temporarily unavailable" reply, nothing is
half-written, and the bot recovers by itself when the database is back.

PostgreSQL is reached through a proxy the test cuts (every connection dropped, new ones
refused), so the server other tests share keeps running. SQLite is locked by a second
writer holding a write transaction open, as another process would."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.bootstrap import build, ensure_schema
from bot.config import OpsSettings, load_settings
from bot.ops import OpsServer
from bot.scheduling.clock import SimulatedClock
from bot.scheduling.waker import Waker
from tests.conftest import PG_URL, START, Harness, RecordingMessenger
from tests.support.tcp_proxy import TcpProxy

UNAVAILABLE = "temporarily unavailable"


def _harness(url: str) -> Harness:
    settings = load_settings(environ={"COHORTBOT_DATABASE__URL": url,
                                      "COHORTBOT_BOT__ADMINS": '["terminal:root"]'})
    clock = SimulatedClock(START)
    messenger = RecordingMessenger()
    return Harness(build(settings, clock=clock, messengers={"terminal": messenger}),
                   messenger, clock)


@pytest.fixture
async def proxied_pg() -> AsyncIterator[tuple[Harness, TcpProxy]]:
    upstream = make_url(PG_URL)
    proxy = TcpProxy(upstream.host or "127.0.0.1", upstream.port or 5432)
    await proxy.start()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    options = f"?options=-csearch_path%3D{schema}"
    # (Migrations run synchronously: straight to the server, not through the proxy, which
    # needs the event loop they would block.)
    ensure_schema(PG_URL + options)
    url = upstream.set(port=proxy.port).render_as_string(hide_password=False) + options
    harness = _harness(url)
    try:
        yield harness, proxy
    finally:
        await harness.app.close()
        await proxy.cut()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


async def test_postgres_gone_and_back(proxied_pg: tuple[Harness, TcpProxy],
                                      caplog: pytest.LogCaptureFixture) -> None:
    h, proxy = proxied_pg
    ops = OpsServer(OpsSettings(enabled=True, port=0), h.app, [])
    await ops.start()
    health = f"http://127.0.0.1:{ops.port}/healthz"
    try:
        await _gone_and_back(h, proxy, health, caplog)
    finally:
        await ops.stop()


async def _status(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


async def _gone_and_back(h: Harness, proxy: TcpProxy, health: str,
                         caplog: pytest.LogCaptureFixture) -> None:
    await h.setup_cohort()
    assert "Action 1 recorded" in await h.say("ana", "action add Read chapter 3")
    assert (await _status(health))[0] == 200
    await proxy.cut()
    status, body = await _status(health)
    assert status == 503 and '"database": "unreachable"' in body
    # The scheduler's wake-up meets the outage too: one warning, no traceback, no crash.
    waker = Waker(h.app.dispatcher, h.app.planner, h.clock, sweep_seconds=60)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(waker.wake(), 30)
    [outage] = [r for r in caplog.records if "dispatch failed" in r.getMessage()]
    assert "database unavailable" in outage.getMessage() and outage.exc_info is None
    for text in ("action add Call the mentor", "next"):
        [answer] = await asyncio.wait_for(h.replies("ana", text), 30)
        reply = answer.message.plain()
        assert answer.private and UNAVAILABLE in reply and "ref " in reply
        assert "Traceback" not in reply and "psycopg" not in reply.lower()
    await proxy.restore()
    assert (await _status(health))[0] == 200
    # Back by itself: no restart, the pool replaces the dropped connections.
    listing = await h.say("ana", "action list")
    assert "Read chapter 3" in listing and "Call the mentor" not in listing
    assert "Action 2 recorded" in await h.say("ana", "action add Call the mentor")


async def test_sqlite_locked_by_another_writer(tmp_path: object) -> None:
    path = f"{tmp_path}/cohortbot.db"
    url = f"sqlite+aiosqlite:///{path}"
    ensure_schema(url)
    h = _harness(url)
    try:
        await h.setup_cohort()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock, as a second process would
        try:
            [answer] = await asyncio.wait_for(h.replies("ana", "action add Call the mentor"),
                                              30)
            reply = answer.message.plain()
            assert answer.private and UNAVAILABLE in reply and "locked" not in reply
        finally:
            other.execute("ROLLBACK")
            other.close()
        listing = await h.say("ana", "action list")
        assert "Call the mentor" not in listing
        assert "Action 1 recorded" in await h.say("ana", "action add Call the mentor")
    finally:
        await h.app.close()
