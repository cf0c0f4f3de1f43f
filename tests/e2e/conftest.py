"""Helpers to drive the real `cohortbot` executable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

COHORTBOT = str(Path(sys.executable).with_name("cohortbot"))


def env_for(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")}
    env["COHORTBOT_DATABASE__URL"] = f"sqlite+aiosqlite:///{db}"
    env["COHORTBOT_BOT__ADMINS"] = '["terminal:root"]'
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_shell(db: Path, script: str, *args: str, timeout: float = 120
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COHORTBOT, "shell", *args], input=script, capture_output=True, text=True,
        env=env_for(db), cwd=db.parent, timeout=timeout,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cohortbot.db"
