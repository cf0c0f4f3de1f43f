"""Anonymous questions leave nothing behind in a Matrix direct room, on a real Synapse.

The Matrix adapter runs in this process on a simulated clock, driven by matrix-nio member
clients. A member asks in their direct room with the bot: the `ask` message is redacted as
soon as it is answered, the reply with the code stays readable for `FLEETING` (10 minutes)
and is then redacted. What is pending survives a restart, in a 0600 file that names rooms
and events only.
"""

from __future__ import annotations

import asyncio
import json
import re
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nio import RoomGetEventResponse

from adapters.matrix.fleeting import FILE_NAME
from adapters.matrix.platform import MatrixPlatform
from bot.bootstrap import App, build, ensure_schema
from bot.config import Settings, load_settings
from bot.scheduling.clock import SimulatedClock
from bot.service.api import FLEETING
from tests.matrix.support import STORE_KEY, Member, Seen
from tests.support.matrix_fixtures import ClientFactory
from tests.support.synapse import RegisteredUser, SynapseServer

QUESTION = "Is it fine to say no to my PI?"
CODE = re.compile(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b")


class Rig:
    """The core on a simulated clock and a SQLite file, and the Matrix adapter, started and
    restarted on one store directory."""

    def __init__(self, tmp_path: Path, server: SynapseServer, account: RegisteredUser,
                 admin: str) -> None:
        db = tmp_path / "bot.db"
        self.store = tmp_path / "matrix-store"
        self.settings: Settings = load_settings(environ={
            "COHORTBOT_DATABASE__URL": f"sqlite+aiosqlite:///{db}",
            "COHORTBOT_BOT__ADMINS": json.dumps([f"matrix:{admin}"]),
            "COHORTBOT_MATRIX__ENABLED": "true",
            "COHORTBOT_MATRIX__HOMESERVER": server.base_url,
            "COHORTBOT_MATRIX__USER_ID": account.user_id,
            "COHORTBOT_MATRIX__PASSWORD": account.password,
            "COHORTBOT_MATRIX__STORE_PATH": str(self.store),
            "COHORTBOT_MATRIX__STORE_KEY": STORE_KEY,
        })
        ensure_schema(self.settings.database.url)
        self.user_id = account.user_id
        self.clock = SimulatedClock(datetime.now(UTC))
        self.app: App = build(self.settings, clock=self.clock)
        self.platform: MatrixPlatform | None = None

    @property
    def pending_file(self) -> Path:
        return self.store / FILE_NAME

    def pending(self) -> list[dict[str, Any]]:
        if not self.pending_file.exists():
            return []
        data = json.loads(self.pending_file.read_text())
        assert isinstance(data, list)
        return data

    async def start(self, *, wall_clock: bool = False) -> MatrixPlatform:
        platform = MatrixPlatform(self.settings.matrix,
                                  clock=None if wall_clock else self.clock)
        await platform.start(self.app.bot)
        await asyncio.wait_for(platform.ready.wait(), timeout=60)
        self.platform = platform
        return platform

    async def stop(self) -> None:
        if self.platform is not None:
            await self.platform.stop()
            self.platform = None


@asynccontextmanager
async def rig(tmp_path: Path, synapse: SynapseServer, admin: Member) -> AsyncIterator[Rig]:
    r = Rig(tmp_path, synapse, synapse.register_user(), admin.user_id)
    try:
        yield r
    finally:
        await r.stop()
        await r.app.close()


def from_bot(bot: str, room: str, contains: str) -> Callable[[Seen], bool]:
    return lambda s: s.sender == bot and s.room_id == room and contains in s.body


async def event(member: Member, room: str, event_id: str) -> dict[str, Any]:
    """The event as the homeserver gives it to `member` now."""
    resp = await member.client.room_get_event(room, event_id)
    assert isinstance(resp, RoomGetEventResponse), resp
    source = resp.event.source
    assert isinstance(source, dict)
    return source


def redacted(source: dict[str, Any]) -> bool:
    return bool((source.get("unsigned") or {}).get("redacted_because"))


async def cohort_with_dm(r: Rig, admin: Member, ana: Member) -> str:
    """Peer A in a room the admin made, Ana a member; the direct room the bot opens with
    her (the bot creates it, so it may redact there)."""
    platform = r.platform
    assert platform is not None
    ana.join_invites_from = {admin.user_id, r.user_id}
    room = await admin.create_room([r.user_id, ana.user_id])
    await admin.joined(room, r.user_id)
    for text, expect in (("cohort create Peer A", "Created Peer A"),
                         (f"cohort members add {ana.user_id}", "Added")):
        await admin.say(room, f"!cohort {text}")
        await admin.wait_for(from_bot(r.user_id, room, expect), what=expect)
    dm = await platform.direct_room(ana.user_id)
    await ana.joined(dm, ana.user_id)
    await ana.joined(dm, r.user_id)
    return dm


async def ask(r: Rig, ana: Member, dm: str) -> tuple[str, Seen, str]:
    """Ana asks in her direct room: the ask event, the reply, the code in it."""
    asked = await ana.say(dm, f"!cohort ask {QUESTION}")
    reply = await ana.wait_for(from_bot(r.user_id, dm, "Your code"), what="the code")
    found = CODE.search(reply.body)
    assert found, reply.body
    return asked, reply, found.group(0)



async def _until_nothing_pending(r: Rig) -> None:
    """The platform redacts on its own (at start, or by its timer in production): wait for
    its task to get there, up to 10 s."""
    for _ in range(100):
        if not r.pending():
            return
        await asyncio.sleep(0.1)
    assert r.pending() == []

async def test_the_ask_is_redacted_at_once_and_the_code_after_ten_minutes(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    admin, ana = [Member(await matrix_client_factory()) for _ in range(2)]
    async with rig(tmp_path, synapse, admin) as r:
        platform = await r.start()
        dm = await cohort_with_dm(r, admin, ana)
        asked, reply, code = await ask(r, ana, dm)

        # The ask is gone from the direct room as soon as it is answered: the homeserver
        # gives it back empty, with the redaction that removed it.
        source = await event(ana, dm, asked)
        assert redacted(source), source
        assert source["content"] == {}
        # The code reply is there to read, and says it will not stay.
        assert reply.decrypted  # the bot's direct rooms are encrypted
        assert f"removed in {int(FLEETING.total_seconds() // 60)} minutes" in reply.body
        assert not redacted(await event(ana, dm, reply.event_id))

        # What is pending: this reply, in a private file that holds no message text.
        [entry] = r.pending()
        assert entry == {"room_id": dm, "event_id": reply.event_id, "due": entry["due"]}
        assert datetime.fromisoformat(entry["due"]) == r.clock.now() + FLEETING
        assert stat.S_IMODE(r.pending_file.stat().st_mode) == 0o600
        text = r.pending_file.read_text()
        for secret in (code, QUESTION, "say no", ana.user_id, asked):
            assert secret not in text

        # Not before ten minutes ...
        r.clock.set(r.clock.now() + FLEETING - timedelta(minutes=1))
        assert await platform.redact_due() == 0
        assert not redacted(await event(ana, dm, reply.event_id))
        assert len(r.pending()) == 1
        # ... and then it goes, and leaves the list.
        r.clock.set(r.clock.now() + timedelta(minutes=2))
        assert await platform.redact_due() == 0
        source = await event(ana, dm, reply.event_id)
        assert redacted(source), source
        assert source["content"] == {}
        assert r.pending() == []

        # Every command about her question is withdrawn in the direct room too, whatever it
        # answers, and its answer (which tells that she asked) goes the same way as the code.
        retract = await ana.say(dm, f"!cohort retract {code}")
        answer = await ana.wait_for(lambda s: s.sender == r.user_id and s.room_id == dm
                                    and s.event_id != reply.event_id, what="the answer")
        assert redacted(await event(ana, dm, retract))
        assert "withdrawn" in answer.body and "removed in" in answer.body
        assert [e["event_id"] for e in r.pending()] == [answer.event_id]
        r.clock.set(r.clock.now() + timedelta(minutes=11))
        assert await platform.redact_due() == 0
        assert redacted(await event(ana, dm, answer.event_id))


async def test_pending_redactions_survive_a_restart(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    admin, ana = [Member(await matrix_client_factory()) for _ in range(2)]
    async with rig(tmp_path, synapse, admin) as r:
        await r.start()
        dm = await cohort_with_dm(r, admin, ana)
        _, reply, _ = await ask(r, ana, dm)
        assert [e["event_id"] for e in r.pending()] == [reply.event_id]

        # Restarted before it is due: it stays, and stays pending.
        await r.stop()
        await r.start()
        await asyncio.sleep(1)  # the start's own look at what is due
        assert not redacted(await event(ana, dm, reply.event_id))
        assert [e["event_id"] for e in r.pending()] == [reply.event_id]

        # Down while it fell due: the next start redacts it by itself.
        await r.stop()
        r.clock.set(r.clock.now() + FLEETING + timedelta(seconds=1))
        await r.start()
        await _until_nothing_pending(r)
        assert redacted(await event(ana, dm, reply.event_id))
        assert stat.S_IMODE(r.pending_file.stat().st_mode) == 0o600


async def test_on_the_wall_clock_its_own_timer_redacts_the_reply(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What runs in production: no one calls `redact_due`, the platform's timer does."""
    monkeypatch.setattr("adapters.matrix.platform.FLEETING", timedelta(seconds=2))
    admin, ana = [Member(await matrix_client_factory()) for _ in range(2)]
    async with rig(tmp_path, synapse, admin) as r:
        await r.start(wall_clock=True)
        dm = await cohort_with_dm(r, admin, ana)
        _, reply, _ = await ask(r, ana, dm)
        await _until_nothing_pending(r)
        assert redacted(await event(ana, dm, reply.event_id))
