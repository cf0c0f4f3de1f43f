"""The real `cohortbot run` on Synapse: a cross-signed bot account, room keys only for devices
their owner signed (unless configured otherwise), and direct rooms that members open."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from adapters.matrix.cross_signing import master_of, query, signed_by_owner
from tests.e2e.conftest import COHORTBOT
from tests.matrix.support import BotProcess, Member, from_bot
from tests.support.matrix_fixtures import ClientFactory
from tests.support.synapse import SynapseServer

SIGNED = "is cross-signed"


def _device(bot: BotProcess) -> str:
    return str(json.loads((bot.store / "session.json").read_text())["device_id"])


def _stored(bot: BotProcess) -> tuple[str, str]:
    with sqlite3.connect(bot.db) as db:
        row = db.execute("SELECT master_key, sealed_keys FROM matrix_cross_signing WHERE "
                         "user_id = ?", (bot.user_id,)).fetchone()
    assert row is not None, "no cross-signing keys in the database"
    return str(row[0]), str(row[1])


def _exited(bot: BotProcess, timeout: float = 60) -> int:
    assert bot.proc is not None
    return bot.proc.wait(timeout=timeout)


def _cli(bot: BotProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")}
    return subprocess.run([COHORTBOT, "--config", str(bot.config), *args], cwd=bot.root,
                          env=env, capture_output=True, text=True, timeout=120)


async def test_every_device_of_the_bot_account_is_signed_with_one_identity(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path
) -> None:
    watcher = await matrix_client_factory()
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[])
    bot.start()
    try:
        bot.wait_log(SIGNED)
    finally:
        bot.stop()
    first = _device(bot)
    master, sealed = _stored(bot)
    answer = await query(watcher, [bot.user_id])
    assert master_of(answer, bot.user_id) == master
    assert signed_by_owner(answer)[(bot.user_id, first)] is True
    # The private keys are sealed: neither their names nor the public key show.
    assert "self_signing" not in sealed and master not in sealed

    # A new device on the account (a lost store, or another instance): the same identity.
    shutil.rmtree(bot.store)
    bot.start()
    try:
        bot.wait_log(SIGNED, count=2)
    finally:
        bot.stop()
    second = _device(bot)
    assert second != first
    assert bot.log().count("cross-signing keys set up") == 1
    answer = await query(watcher, [bot.user_id])
    assert master_of(answer, bot.user_id) == master == _stored(bot)[0]
    signed = signed_by_owner(answer)
    assert signed[(bot.user_id, first)] and signed[(bot.user_id, second)]

    # Under a store key that does not open them, start-up stops with one line naming it.
    shutil.rmtree(bot.store)
    wrong = BotProcess(tmp_path, synapse, bot.account, admins=[],
                       store_key="another-store-key-0123456789")
    wrong.start()
    assert _exited(wrong) == 2
    last = wrong.log().strip().splitlines()[-1]
    assert "COHORTBOT_MATRIX__STORE_KEY" in last and "cross-signing" in last
    assert "Traceback" not in wrong.log()


async def test_keys_the_bot_does_not_hold_stop_start_up_until_the_operator_resets_them(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path
) -> None:
    account = synapse.register_user()
    # Someone set up the account's cross-signing elsewhere (say, logged in with Element).
    elsewhere = await matrix_client_factory(user=account)
    theirs = master_of(await query(elsewhere, [account.user_id]), account.user_id)
    assert theirs is not None
    bot = BotProcess(tmp_path, synapse, account, admins=[])
    bot.start()
    assert _exited(bot) == 2
    log = bot.log()
    last = log.strip().splitlines()[-1]
    assert "already has cross-signing keys that this bot does not hold" in last
    assert "cohortbot matrix reset-cross-signing" in last
    assert "Traceback" not in log
    assert master_of(await query(elsewhere, [account.user_id]), account.user_id) == theirs

    done = _cli(bot, "matrix", "reset-cross-signing", "--yes")
    assert done.returncode == 0, done.stderr
    assert f"new cross-signing keys for {account.user_id}" in done.stdout
    assert f"device {_device(bot)} signed" in done.stdout
    ours = master_of(await query(elsewhere, [account.user_id]), account.user_id)
    assert ours not in (None, theirs) and ours == _stored(bot)[0]

    bot.start()
    try:
        bot.wait_log(SIGNED)
    finally:
        bot.stop()
    answer = await query(elsewhere, [account.user_id])
    assert signed_by_owner(answer)[(account.user_id, _device(bot))] is True


async def test_with_only_an_access_token_the_first_keys_need_no_password(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path
) -> None:
    account = synapse.register_user()
    bot = BotProcess(tmp_path, synapse, account, admins=[], password=None,
                     access_token=account.access_token)
    bot.start()
    try:
        bot.wait_log(SIGNED)
    finally:
        bot.stop()
    assert _device(bot) == account.device_id  # the token's own device, no new login
    watcher = await matrix_client_factory()
    answer = await query(watcher, [account.user_id])
    assert signed_by_owner(answer)[(account.user_id, account.device_id)] is True


@pytest.mark.parametrize("exclude", [True, False], ids=["default", "shared-with-unsigned"])
async def test_room_keys_reach_a_device_its_owner_did_not_sign_only_when_configured(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path,
    exclude: bool,
) -> None:
    admin = Member(await matrix_client_factory())
    unsigned = Member(await matrix_client_factory(cross_sign=False))
    unsigned.join_invites_from = {admin.user_id}
    settings = {} if exclude else {"exclude_insecure_devices": False}
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[admin.user_id],
                     **settings)
    bot.start()
    try:
        bot.wait_log(SIGNED)
        room = await admin.create_room([bot.user_id, unsigned.user_id], encrypted=True)
        await unsigned.wait_room(room)
        await admin.joined(room, bot.user_id)
        await admin.say(room, "!cohort cohort create Key Circle")
        created = await admin.wait_for(from_bot(bot, room, contains="Created Key Circle"))
        assert created.decrypted  # the admin's device is signed: it always gets the key

        def arrived() -> bool:
            return any(s.sender == bot.user_id and s.room_id == room
                       for s in unsigned.seen + unsigned.undecrypted)

        while not arrived():
            await unsigned.sync()
    finally:
        bot.stop()
    readable = [s for s in unsigned.seen if s.sender == bot.user_id and s.room_id == room]
    unreadable = [s for s in unsigned.undecrypted if s.sender == bot.user_id]
    if exclude:
        assert not readable and unreadable, "the unsigned device could read the bot"
        assert "no room keys for device" in bot.log()
    else:
        assert readable and "Created Key Circle" in readable[0].body and not unreadable


async def test_members_open_direct_rooms_with_the_bot_and_strangers_cannot(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path
) -> None:
    admin, ana, stranger = [Member(await matrix_client_factory()) for _ in range(3)]
    ana.join_invites_from = {admin.user_id}
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[admin.user_id])
    bot.start()
    try:
        bot.wait_log(SIGNED)
        room = await admin.create_room([bot.user_id, ana.user_id], encrypted=True)
        await admin.joined(room, bot.user_id)
        await admin.say(room, "!cohort cohort create Peer A")
        await admin.wait_for(from_bot(bot, room, contains="Created Peer A"))
        await admin.say(room, f"!cohort cohort members add {ana.user_id}")
        await admin.wait_for(from_bot(bot, room, contains="Added"))

        # A member opens a DM from their client: the bot joins and answers there.
        dm = await ana.open_direct(bot.user_id)
        await ana.joined(dm, bot.user_id)
        await ana.say(dm, "!cohort ask How do I say no to extra work?")
        code = await ana.wait_for(from_bot(bot, dm, contains="Your code"),
                                  what="the code, in the DM the member opened")
        assert code.decrypted

        # Someone in no cohort: declined, and so is a member's invitation to a group room.
        other = await stranger.open_direct(bot.user_id)
        group = await ana.create_room([bot.user_id])
        bot.wait_log(f"declined an invitation to {other} from {stranger.user_id} "
                     f"(not in any cohort)")
        bot.wait_log(f"declined an invitation to {group} from {ana.user_id} (not an admin)")
    finally:
        bot.stop()
    await stranger.sync()
    assert bot.user_id not in stranger.client.rooms[other].users
    assert "How do I say no" not in bot.log()
