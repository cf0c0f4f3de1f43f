"""Kill the real `cohortbot run` process (SIGKILL) in the middle of a burst of due
notifications, restart it, and check every notification arrived exactly once, on time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.bootstrap import ensure_schema
from bot.db.engine import create_engine, session_factory
from bot.db.uow import SqlUnitOfWorkFactory
from bot.domain.model import Cohort, Notification
from tests.e2e.conftest import COHORTBOT, env_for

BURST = 20


class Reader:
    """Collects a process's stdout lines with their arrival times."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.lines.append((time.time(), line.rstrip("\n")))
                self._changed.notify_all()

    def burst(self) -> list[tuple[float, str]]:
        return [(t, line) for t, line in self.lines if "burst-" in line]

    def wait_until(self, check: Callable[[], bool], timeout: float) -> bool:
        """Wait for output that satisfies `check` (woken by each new line, no polling)."""
        with self._changed:
            return self._changed.wait_for(check, timeout)

    def finish(self, timeout: float) -> None:
        """Wait until the process's output is closed (it exited) and fully read."""
        self._thread.join(timeout)


async def _plant(url: str, first_due: datetime) -> None:
    engine = create_engine(url)
    uows = SqlUnitOfWorkFactory(session_factory(engine))
    async with uows() as uow:
        cohort = Cohort(name="Peer A", slug="peer-a", zone="UTC", created_at=first_due,
                        tenant="terminal", platform="terminal", channel_id="peer-a",
                        roles=["case-giver"],
                        reminder_offsets=[], settings={})
        uow.add(cohort)
        await uow.flush()
        for i in range(BURST):
            due = first_due + timedelta(milliseconds=150 * i)
            await uow.add_notification(Notification(
                key=f"test:burst:{i}", kind="prompt", cohort_id=cohort.id, due_at=due,
                stale_at=due + timedelta(hours=1), payload={"text": f"burst-{i:02d}"},
            ))
        await uow.commit()
    await engine.dispose()


def _start(db: Path) -> tuple[subprocess.Popen[str], Reader]:
    proc = subprocess.Popen([COHORTBOT, "run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env_for(db), cwd=db.parent)
    return proc, Reader(proc)


def test_sigkill_mid_burst_then_restart_delivers_each_exactly_once(db: Path) -> None:
    url = f"sqlite+aiosqlite:///{db}"
    ensure_schema(url)
    first_due = datetime.now(UTC) + timedelta(seconds=4)
    asyncio.run(_plant(url, first_due))
    due_at = {f"burst-{i:02d}": first_due + timedelta(milliseconds=150 * i)
              for i in range(BURST)}

    proc, reader = _start(db)
    try:
        # Kill at an instant chosen by the clock, between two sends, not in reaction to output
        # (reacting to a printed line would aim at the one unavoidable window between a
        # terminal print and its delivery record, which no platform without idempotency keys
        # can close).
        kill_at = first_due + timedelta(milliseconds=150 * 6 + 75)
        time.sleep(max(0.0, (kill_at - datetime.now(UTC)).total_seconds()))  # fault timing
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.finish(10)
    first = reader.burst()
    assert 0 < len(first) < BURST, f"the kill missed the burst ({len(first)} delivered)"

    proc2, reader2 = _start(db)
    try:
        assert reader2.wait_until(lambda: len(first) + len(reader2.burst()) >= BURST, 30), \
            (first, reader2.lines)
        # A graceful stop finishes any send in flight; everything printed is read below, so a
        # second copy of any message would be counted.
        proc2.send_signal(signal.SIGTERM)
        assert proc2.wait(15) == 0
        reader2.finish(10)
    finally:
        if proc2.poll() is None:
            proc2.kill()

    texts = [line.split("Prompt: ", 1)[1] for _, line in first + reader2.burst()]
    assert sorted(texts) == sorted(due_at), texts  # each exactly once
    # Before the kill, each went out within about a second of its due instant.
    for arrived, line in first:
        lateness = arrived - due_at[line.split("Prompt: ", 1)[1]].timestamp()
        assert -0.05 < lateness < 1.5, (line, lateness)
