"""`/healthz` and `/metrics` over real HTTP, next to the real core on both databases."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.config import OpsSettings
from bot.ops import OpsServer
from bot.service.api import Core
from bot.service.ports import DeliveryError, Directory, Messenger, NullDirectory
from tests.conftest import Harness


class _Platform:
    """A platform that reports what the test says about its connection."""

    name = "terminal"
    exclusive = False

    def __init__(self, messenger: Messenger) -> None:
        self.messenger = messenger
        self.directory: Directory = NullDirectory()
        self.problem: str | None = None

    async def start(self, core: Core) -> None: ...

    async def stop(self) -> None: ...

    async def health(self) -> str | None:
        return self.problem


@pytest.fixture
async def ops(harness: Harness) -> AsyncIterator[tuple[OpsServer, _Platform, str]]:
    platform = _Platform(harness.messenger)
    server = OpsServer(OpsSettings(enabled=True, port=0), harness.app, [platform])
    await server.start()
    try:
        yield server, platform, f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


def _sample(page: str, name: str, **labels: str) -> float:
    for line in page.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if found == labels:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_healthz_is_ready_only_when_every_component_is(
        harness: Harness, ops: tuple[OpsServer, _Platform, str]) -> None:
    _, platform, base = ops
    status, body = await _get(base + "/healthz")
    assert status == 200 and '"status": "ready"' in body and '"database": "ok"' in body
    platform.problem = "not syncing with the homeserver"
    status, body = await _get(base + "/healthz")
    assert status == 503 and "not syncing with the homeserver" in body
    platform.problem = None
    # A send that finds the platform down makes it unready until a send gets through.
    await harness.setup_cohort()
    await harness.app.planner.plan_all()
    due = await harness.app.dispatcher.next_due()
    assert due is not None
    harness.clock.set(due)
    harness.messenger.fail_next = [DeliveryError("unreachable", unreachable=True)]
    await harness.app.dispatcher.run_due()  # the first message due finds the platform down
    assert harness.messenger.calls == 1 and not harness.messenger.sent
    status, body = await _get(base + "/healthz")
    assert status == 503 and "unreachable on the last send" in body
    await harness.advance("1m")
    assert harness.messenger.sent  # the postponed message went out
    status, _ = await _get(base + "/healthz")
    assert status == 200


async def test_metrics_count_what_happened_and_show_no_user_data(
        harness: Harness, ops: tuple[OpsServer, _Platform, str]) -> None:
    _, _, base = ops
    _, before = await _get(base + "/metrics")
    await harness.setup_cohort()
    await harness.say("ana", "action add Ring Zanzibar about @ben")
    await harness.say("ana", "frobnicate")
    await harness.say("ana", "next")
    await harness.advance("8d")
    status, page = await _get(base + "/metrics")
    assert status == 200

    def grew(name: str, **labels: str) -> float:
        return _sample(page, name, **labels) - _sample(before, name, **labels)

    assert grew("cohortbot_commands_total", platform="terminal", outcome="ok") == 6
    assert grew("cohortbot_commands_total", platform="terminal", outcome="refused") == 1
    assert grew("cohortbot_notifications_total", outcome="on_time") >= 2
    sent = grew("cohortbot_messages_total", platform="terminal", outcome="sent")
    assert sent == len(harness.messenger.sent) > 0
    assert "cohortbot_outbox_depth 0.0" in page
    for private in ("Zanzibar", "ana", "ben", "peer-a", "Peer A", "root"):
        assert private not in page
