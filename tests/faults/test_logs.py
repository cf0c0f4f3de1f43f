"""Logs: JSON lines with the reference id of every unexpected error; no secret and no
anonymous question's author in them, at any level."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import platforms_from, serve
from bot.chat import commands as c
from bot.config import load_settings
from bot.logs import JsonFormatter, quiet_libraries
from bot.service import bus
from tests.conftest import Harness
from tests.support.slack.process import free_port

SECRETS = {
    "COHORTBOT_SLACK__BOT_TOKEN": "xoxb-1111-2222-bot-secret-token",
    "COHORTBOT_SLACK__APP_TOKEN": "xapp-1-A111-3333-app-secret-token",
    "COHORTBOT_SLACK__SIGNING_SECRET": "signing-secret-5c6f0e",
    "COHORTBOT_MATRIX__PASSWORD": "matrix-password-9d1b7a",
    "COHORTBOT_MATRIX__STORE_KEY": "matrix-store-key-4e8c2f",
}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every logger at DEBUG (libraries as the bot configures them), as JSON lines."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    quiet_libraries()
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


def _lines(out: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]  # each one is JSON


async def test_an_unexpected_error_is_logged_with_the_reference_the_user_saw(
        harness: Harness, json_log: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    await harness.setup_cohort()

    async def broken(ctx: object, cmd: object) -> None:
        raise RuntimeError("a bug in the handler")

    monkeypatch.setitem(bus.HANDLERS, c.Next, broken)
    [reply] = await harness.replies("ana", "next")
    text = reply.message.plain()
    ref = re.search(r"\(ref ([0-9a-f]{8})\)", text)
    assert reply.private and ref is not None and "RuntimeError" not in text
    [logged] = [line for line in _lines(json_log) if line.get("ref") == ref[1]]
    assert logged["level"] == "ERROR" and "RuntimeError: a bug in the handler" in logged["exc"]


async def test_no_secret_reaches_the_log_at_debug(tmp_path: Path, json_log: io.StringIO) -> None:
    # Both platforms enabled, pointed at ports where nothing listens: they log their failed
    # connections and retries, the places where a careless line would print a credential.
    nothing = f"http://127.0.0.1:{free_port()}"
    settings = load_settings(environ={
        **SECRETS,
        "COHORTBOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        "COHORTBOT_BOT__LOG_LEVEL": "DEBUG",
        "COHORTBOT_SLACK__ENABLED": "true", "COHORTBOT_SLACK__MODE": "socket",
        "COHORTBOT_SLACK__API_BASE_URL": nothing + "/api/",
        "COHORTBOT_MATRIX__ENABLED": "true", "COHORTBOT_MATRIX__HOMESERVER": nothing,
        "COHORTBOT_MATRIX__USER_ID": "@cohortbot:localhost",
        "COHORTBOT_MATRIX__STORE_PATH": str(tmp_path / "matrix-store"),
    })
    from bot.bootstrap import ensure_schema

    ensure_schema(settings.database.url)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, platforms_from(settings), stop))

    async def logged(*needles: str) -> None:
        while not all(n in json_log.getvalue() for n in needles):
            await asyncio.sleep(0.05)  # polling the log, not waiting for a scheduled event

    await asyncio.wait_for(logged("matrix: homeserver unreachable",
                                  "Failed to connect"), 30)  # (the Slack SDK retrying)
    stop.set()
    await asyncio.wait_for(task, 30)
    lines = _lines(json_log)
    assert any(line["level"] == "DEBUG" for line in lines)  # DEBUG really was on
    text = json_log.getvalue()
    for name, secret in SECRETS.items():
        assert secret not in text, name
        assert secret[-10:] not in text, name  # not even a tail of it
