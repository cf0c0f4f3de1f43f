"""Fixtures for the Slack adapter's tests: a seeded fake Slack, in the test's loop or a thread.

Both seed the same workspace (``tests.support.slack.WORKSPACE``): team ``T0COHORT1``; users
``U0ADMIN01`` (admin, Europe/London), ``U0ALICE01`` (Europe/Berlin), ``U0BOB0001``
(America/Los_Angeles); bot user ``U0BOT0001`` / bot ``B0BOT0001``; ``C0COHORT1`` (#cohort-1,
the bot is a member) and ``C0RANDOM1`` (#random, it is not); tokens ``xoxb-test`` and
``xapp-test``; signing secret ``WORKSPACE.signing_secret``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.slack import WORKSPACE, FakeSlack, Workspace, seed_workspace

_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
               "all_proxy")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk sends every request (loopback included) through a proxy set in the env."""
    for name in _PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def slack_ws() -> Workspace:
    return WORKSPACE


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """The fake, serving from the test's own event loop."""
    async with FakeSlack(team_id=WORKSPACE.team_id, app_id=WORKSPACE.app_id,
                         signing_secret=WORKSPACE.signing_secret) as fake:
        seed_workspace(fake)
        yield fake


@pytest.fixture
def fake_slack_thread() -> Iterator[FakeSlack]:
    """The fake, serving from a background thread (for a bot running in another process)."""
    fake = FakeSlack(team_id=WORKSPACE.team_id, app_id=WORKSPACE.app_id,
                     signing_secret=WORKSPACE.signing_secret).start_in_thread()
    seed_workspace(fake)
    try:
        yield fake
    finally:
        fake.stop_thread()
