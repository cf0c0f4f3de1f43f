"""One `cohortbot run` process serving Matrix (a real Synapse) and Slack (the fake) at once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import COHORTBOT
from tests.matrix.support import Member
from tests.support.matrix_fixtures import ClientFactory
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack, post_signed
from tests.support.slack.process import slack_environ
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.e2e


async def _healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        assert proc.poll() is None, log.read_text()
        try:
            async with aiohttp.ClientSession() as s, s.get(
                    f"http://127.0.0.1:{port}/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"never healthy:\n{log.read_text()}")


async def test_matrix_and_slack_in_one_process(
    synapse: SynapseServer,
    matrix_client_factory: ClientFactory,
    fake_slack_thread: FakeSlack,
    tmp_path: Path,
) -> None:
    admin = Member(await matrix_client_factory())
    account = synapse.register_user()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("COHORTBOT_") and "proxy" not in k.lower()}
    env.update(slack_environ(fake_slack_thread, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
                             admins=(f"slack:{W.admin}", f"matrix:{admin.user_id}")))
    env.update({
        "COHORTBOT_MATRIX__ENABLED": "true",
        "COHORTBOT_MATRIX__HOMESERVER": synapse.base_url,
        "COHORTBOT_MATRIX__USER_ID": account.user_id,
        "COHORTBOT_MATRIX__PASSWORD": account.password,
        "COHORTBOT_MATRIX__STORE_PATH": str(tmp_path / "matrix-store"),
        "PYTHONUNBUFFERED": "1",
    })
    log = tmp_path / "bot.log"
    (tmp_path / "cohortbot.toml").write_text("")
    proc = subprocess.Popen([COHORTBOT, "run"], env=env, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log.open("w"))
    try:
        await _healthy(int(env["COHORTBOT_SLACK__HTTP_PORT"]), proc, log)
        # Matrix: a cohort set up in a room.
        room = await admin.create_room([account.user_id])
        await admin.joined(room, account.user_id)
        await admin.say(room, "!cohort cohort create Matrix Circle")
        await admin.wait_for(lambda s: s.sender == account.user_id
                             and "Created Matrix Circle" in s.body, what="the Matrix reply")
        # Slack: another cohort from a slash command, in the same process.
        build = fake_slack_thread.requests()
        result = await post_signed(f"http://127.0.0.1:{env['COHORTBOT_SLACK__HTTP_PORT']}"
                                   "/slack/events",
                                   build.slash_command("/cohort", "cohort create Slack Circle",
                                                       user_id=W.admin, channel_id=W.channel))
        assert result.status == 200 and result.elapsed < 3
        await fake_slack_thread.wait_for(
            lambda: [p for p in fake_slack_thread.posts(W.channel)
                     if "Slack Circle" in p["text"]], timeout=15, what="the Slack post")
        # Both cohorts are in the one database, each on its own platform.
        await admin.say(room, "!cohort cohort list")
        listed = await admin.wait_for(lambda s: s.sender == account.user_id
                                      and "Slack Circle" in s.body, what="the cohort list")
        assert "Matrix Circle" in listed.body
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    text = log.read_text()
    assert code == 0 and "Traceback" not in text, text
    assert "matrix: started" in text and "slack: started" in text

