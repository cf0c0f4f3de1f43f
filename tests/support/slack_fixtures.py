"""The fake Slack serving from a thread, for a bot in another process; registered for every
test directory as a plugin in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.slack import WORKSPACE, FakeSlack, seed_workspace


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
