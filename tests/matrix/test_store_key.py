"""The Matrix crypto store sealed with `matrix.store_key`, on a real Synapse.

The Matrix adapter runs in this process. A member and the bot share an encrypted direct
room; the bot is restarted on the same store with another key setting. A store sealed with
matrix-nio's default key (what versions before `store_key` made) or with the old key of a
rotation is re-sealed with the first configured key at start, on the same device: the bot
still decrypts the member's next message in that room with the sessions it stored, and its
answer reaches her. A key that opens nothing stops start-up with one line. The store
directory is 0700 and every file in it 0600, also when an older version left them open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from nio.store import DefaultStore
from pydantic import SecretStr

from adapters.matrix.platform import MatrixPlatform
from bot.bootstrap import App, build, ensure_schema
from bot.config import ConfigError, MatrixSettings, Settings, load_settings
from tests.e2e.conftest import COHORTBOT
from tests.matrix.support import Member, Seen
from tests.support.matrix_fixtures import ClientFactory
from tests.support.synapse import RegisteredUser, SynapseServer

LIBRARY_DEFAULT = "DEFAULT_KEY"  # matrix-nio's pickle key when none is configured
KEY = "first-store-key-0123456789"
NEW = "newer-store-key-abcdefghij"
WRONG = "wrong-store-key-zyxwvutsrq"


class Rig:
    """The core on a SQLite file and the Matrix adapter, started and stopped on one store
    directory with whatever `store_key` each start is given."""

    def __init__(self, tmp_path: Path, server: SynapseServer, account: RegisteredUser) -> None:
        self.root = tmp_path
        self.store = tmp_path / "matrix-store"
        self.settings: Settings = load_settings(environ={
            "COHORTBOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            "COHORTBOT_MATRIX__ENABLED": "true",
            "COHORTBOT_MATRIX__HOMESERVER": server.base_url,
            "COHORTBOT_MATRIX__USER_ID": account.user_id,
            "COHORTBOT_MATRIX__PASSWORD": account.password,
            "COHORTBOT_MATRIX__STORE_PATH": str(self.store),
            "COHORTBOT_MATRIX__STORE_KEY": KEY,
        })
        ensure_schema(self.settings.database.url)
        self.account = account
        self.user_id = account.user_id
        self.app: App = build(self.settings)
        self.platform: MatrixPlatform | None = None

    def matrix(self, store_key: str) -> MatrixSettings:
        # model_copy does not validate: "DEFAULT_KEY" (too short for the config) stands for
        # what a version without store_key pickled with.
        return self.settings.matrix.model_copy(update={"store_key": SecretStr(store_key)})

    async def start(self, store_key: str) -> MatrixPlatform:
        platform = MatrixPlatform(self.matrix(store_key))
        await platform.start(self.app.bot)
        self.platform = platform
        await asyncio.wait_for(platform.ready.wait(), timeout=60)
        return platform

    async def stop(self) -> None:
        if self.platform is not None:
            await self.platform.stop()
            self.platform = None

    def device_id(self) -> str:
        return str(json.loads((self.store / "session.json").read_text())["device_id"])

    def nio_store(self, key: str) -> DefaultStore:
        """The bot's crypto store as matrix-nio opens it with `key`."""
        return DefaultStore(self.user_id, self.device_id(), str(self.store), key)

    def opens(self, key: str) -> bool:
        """Whether `key` unpickles the account, every Olm session and every room key."""
        store = self.nio_store(key)
        try:
            return (store.load_account() is not None
                    and bool(list(store.load_sessions().values()))
                    and bool(list(store.load_inbound_group_sessions())))
        except Exception:  # vodozemac's errors for a wrong key vary
            return False
        finally:
            store.database.close()

    def identity(self, key: str) -> dict[str, str]:
        store = self.nio_store(key)
        try:
            account = store.load_account()
            assert account is not None
            return dict(account.identity_keys)
        finally:
            store.database.close()

    def loosen(self) -> None:
        """The modes a version before the fix left: 0755 and 0644."""
        self.store.chmod(0o755)
        for path in self.store.iterdir():
            path.chmod(0o644)


@asynccontextmanager
async def rig(tmp_path: Path, synapse: SynapseServer) -> AsyncIterator[Rig]:
    r = Rig(tmp_path, synapse, synapse.register_user())
    try:
        yield r
    finally:
        await r.stop()
        await r.app.close()


def assert_owner_only(store: Path) -> None:
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    files = list(store.iterdir())
    assert any(f.suffix == ".db" for f in files) and (store / "session.json") in files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


async def direct_room(r: Rig, ana: Member) -> str:
    """The encrypted direct room the bot opens with Ana, joined by her."""
    assert r.platform is not None
    ana.join_invites_from = {r.user_id}
    dm = await r.platform.direct_room(ana.user_id)
    await ana.joined(dm, ana.user_id)
    await ana.joined(dm, r.user_id)
    return dm


async def exchange(r: Rig, ana: Member, dm: str) -> Seen:
    """Ana sends a command in the direct room; the bot's answer, as she read it."""
    before = {s.event_id for s in ana.seen}
    await ana.say(dm, "!cohort help")
    answer = await ana.wait_for(
        lambda s: s.sender == r.user_id and s.room_id == dm and s.event_id not in before,
        what="the bot's answer in the encrypted direct room")
    assert answer.decrypted
    return answer


async def restarted_on_the_same_device(r: Rig, ana: Member, old: str, new: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """Bot and Ana talk in an encrypted direct room with the store sealed by `old`; then the
    bot restarts with the setting `new`: same device and identity keys, and the next
    message of Ana's (sent with the room key the bot stored) is decrypted and answered."""
    await r.start(old)
    dm = await direct_room(r, ana)
    await exchange(r, ana, dm)
    device = r.device_id()
    await r.stop()
    first = new.split(",")[0]
    assert r.opens(old) and not r.opens(first)
    identity = r.identity(old)
    r.loosen()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="adapters.matrix"):
        platform = await r.start(new)
        assert platform.client is not None
        assert platform.client.device_id == device
        assert platform.client.olm is not None
        assert dict(platform.client.olm.account.identity_keys) == identity
        await exchange(r, ana, dm)
    messages = [rec.getMessage() for rec in caplog.records]
    assert any("sealed" in m and "store_key" in m for m in messages), messages
    assert not any("could not decrypt" in m for m in messages), messages
    await r.stop()

    assert r.device_id() == device
    assert r.opens(first), "the new key opens the account, the Olm sessions and room keys"
    assert not r.opens(old)
    assert r.identity(first) == identity
    assert_owner_only(r.store)


async def test_a_store_sealed_with_the_library_default_is_resealed_on_the_same_device(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    ana = Member(await matrix_client_factory())
    async with rig(tmp_path, synapse) as r:
        await restarted_on_the_same_device(r, ana, LIBRARY_DEFAULT, KEY, caplog)
        # The default key opens nothing any more: started with it, the bot stops.
        with pytest.raises(ConfigError):
            await r.start(LIBRARY_DEFAULT)


async def test_rotation_new_then_old_reseals_and_the_old_key_alone_no_longer_opens(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    ana = Member(await matrix_client_factory())
    async with rig(tmp_path, synapse) as r:
        await restarted_on_the_same_device(r, ana, KEY, f"{NEW},{KEY}", caplog)
        with pytest.raises(ConfigError) as failed:
            await r.start(KEY)
        assert "COHORTBOT_MATRIX__STORE_KEY" in str(failed.value)
        # The new key alone goes on: nothing left to re-seal.
        await r.start(NEW)
        await r.stop()
        assert r.opens(NEW)


def _files(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.iterdir())}


async def test_a_wrong_key_stops_start_up_with_one_line_naming_the_variable(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    ana = Member(await matrix_client_factory())
    async with rig(tmp_path, synapse) as r:
        await r.start(KEY)
        await exchange(r, ana, await direct_room(r, ana))
        await r.stop()
        before = _files(r.store)

        # In the process: the adapter's start refuses, before it logs in.
        platform = MatrixPlatform(r.matrix(WRONG))
        with pytest.raises(ConfigError) as failed:
            await platform.start(r.app.bot)
        message = str(failed.value)
        assert "\n" not in message
        assert message.startswith("matrix.store_key: ")
        assert "COHORTBOT_MATRIX__STORE_KEY" in message
        assert WRONG not in message and KEY not in message
        assert platform.client is None
        assert _files(r.store) == before  # nothing re-sealed, nothing overwritten

    # `cohortbot run`: exit code 2, the same line on stderr, no traceback.
    config = tmp_path / "cohortbot.toml"
    config.write_text("\n".join([
        "[database]", f'url = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"',
        "[matrix]", "enabled = true", f'homeserver = "{synapse.base_url}"',
        f'user_id = "{r.user_id}"', f'store_path = "{r.store}"', ""]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")} | {
        "COHORTBOT_MATRIX__PASSWORD": r.account.password,
        "COHORTBOT_MATRIX__STORE_KEY": WRONG}
    run = subprocess.run([COHORTBOT, "--config", str(config), "run"], env=env,
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in run.stderr + run.stdout
    assert WRONG not in run.stderr + run.stdout
    assert _files(r.store) == before


async def test_store_directory_0700_and_its_files_0600_also_after_an_older_version(
        synapse: SynapseServer, tmp_path: Path) -> None:
    async with rig(tmp_path, synapse) as r:
        await r.start(KEY)  # a first login: the files nio makes
        assert_owner_only(r.store)
        await r.stop()
        r.loosen()  # as an older version left them
        (r.store / "left-by-an-older-version").write_text("x")
        os.chmod(r.store / "left-by-an-older-version", 0o666)
        await r.start(KEY)
        assert_owner_only(r.store)
        await r.stop()
        assert_owner_only(r.store)
