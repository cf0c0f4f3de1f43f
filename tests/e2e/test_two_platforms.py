"""One `cohortbot run` process serving Matrix (a real Synapse) and Slack (the fake) at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.matrix.support import Member, matrix_environ
from tests.support.matrix_fixtures import ClientFactory
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack
from tests.support.slack.process import SlackProcess
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.e2e


async def test_matrix_and_slack_in_one_process(
    synapse: SynapseServer,
    matrix_client_factory: ClientFactory,
    fake_slack_thread: FakeSlack,
    tmp_path: Path,
) -> None:
    admin = Member(await matrix_client_factory())
    account = synapse.register_user()
    bot = SlackProcess(fake_slack_thread, tmp_path, "http",
                       environ=matrix_environ(synapse, account, tmp_path / "matrix-store"),
                       admins=(f"slack:{W.admin}", f"matrix:{admin.user_id}"))
    try:
        await bot.ready()
        # Matrix: a cohort set up in a room.
        room = await admin.create_room([account.user_id])
        await admin.joined(room, account.user_id)
        await admin.say(room, "!cohort cohort create Matrix Circle")
        await admin.wait_for(lambda s: s.sender == account.user_id
                             and "Created Matrix Circle" in s.body, what="the Matrix reply")
        # Slack: another cohort from a slash command, in the same process.
        await bot.command(W.admin, "cohort create Slack Circle")
        await bot.post("Created *Slack Circle*", timeout=15)
        # Both cohorts are in the one database, each on its own platform, and each platform
        # is a tenant of its own: neither side's admin sees the other's cohort.
        admin.join_invites_from.add(account.user_id)  # (the list comes in a direct room)
        await admin.say(room, "!cohort cohort list")
        listed = await admin.wait_for(lambda s: s.sender == account.user_id
                                      and s.body.startswith("Cohorts:"), what="the cohort list")
        assert "Matrix Circle" in listed.body and "Slack Circle" not in listed.body
        slack_listed = await bot.answer(W.admin, "cohort list")
        assert "Slack Circle" in slack_listed and "Matrix Circle" not in slack_listed
    finally:
        text = bot.stop()
    assert "matrix: started" in text and "slack: started" in text
