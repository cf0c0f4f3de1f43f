"""The Synapse harness against real clients: messaging, e2e, restarts and rate limits."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendError,
    RoomSendResponse,
    SyncResponse,
)

from tests.support.synapse import REPO_ROOT, SynapseHarnessError, SynapseServer

ClientFactory = Callable[..., Awaitable[AsyncClient]]  # the matrix_client_factory fixture
TEXT = "m.room.message"
ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


async def sync_until(
    client: AsyncClient,
    check: Callable[[SyncResponse], Any],
    what: str,
    timeout: float = 15.0,
) -> Any:
    """Long-poll sync until `check(response)` is truthy; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        resp = await client.sync(timeout=500)
        assert isinstance(resp, SyncResponse), f"sync failed for {client.user_id}: {resp}"
        result = check(resp)
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"{client.user_id} did not see {what} within {timeout}s")


async def wait_for_timeline_event(
    client: AsyncClient, room_id: str, event_id: str, timeout: float = 15.0
) -> Any:
    """Sync until `event_id` arrives in `room_id`'s timeline (decrypted where nio can)."""

    def find(resp: SyncResponse) -> Any:
        joined = resp.rooms.join.get(room_id)
        events = joined.timeline.events if joined else []
        return next((e for e in events if getattr(e, "event_id", None) == event_id), None)

    return await sync_until(client, find, f"event {event_id} in {room_id}", timeout)


async def send_burst(client: AsyncClient, room_id: str, count: int) -> list[Any]:
    """`count` text messages sent concurrently, as fast as the client can."""
    return list(
        await asyncio.gather(
            *(
                client.room_send(room_id, TEXT, {"msgtype": "m.text", "body": f"burst {i}"})
                for i in range(count)
            )
        )
    )


async def room_with(
    alice: AsyncClient, bob: AsyncClient, initial_state: list[dict[str, Any]] | None = None
) -> str:
    """Alice creates a room and invites Bob; Bob joins; Alice has synced his membership."""
    created = await alice.room_create(
        name=f"harness {uuid.uuid4().hex[:6]}",
        invite=[bob.user_id],
        initial_state=initial_state or [],
    )
    assert isinstance(created, RoomCreateResponse), created
    room_id: str = created.room_id
    await sync_until(bob, lambda _: room_id in bob.invited_rooms, f"the invite to {room_id}")
    joined = await bob.join(room_id)
    assert isinstance(joined, JoinResponse), joined
    await sync_until(
        alice,
        lambda _: room_id in alice.rooms and bob.user_id in alice.rooms[room_id].users,
        f"{bob.user_id} join {room_id}",
    )
    return room_id


async def test_fresh_users_exchange_a_message(matrix_client_factory: ClientFactory) -> None:
    alice = await matrix_client_factory()
    bob = await matrix_client_factory()
    assert alice.user_id != bob.user_id
    room_id = await room_with(alice, bob)

    body = f"hello bob {uuid.uuid4()}"
    sent = await alice.room_send(room_id, TEXT, {"msgtype": "m.text", "body": body})
    assert isinstance(sent, RoomSendResponse), sent

    event = await wait_for_timeline_event(bob, room_id, sent.event_id)
    assert isinstance(event, RoomMessageText), event
    assert event.body == body
    assert event.sender == alice.user_id


async def test_encrypted_room_message_is_decrypted_by_recipient(
    matrix_client_factory: ClientFactory,
) -> None:
    alice = await matrix_client_factory()
    bob = await matrix_client_factory()
    room_id = await room_with(alice, bob, [ENCRYPTION_STATE])
    assert alice.rooms[room_id].encrypted

    # Alice must know Bob's device before she shares the megolm session with it.
    if alice.should_query_keys:
        await alice.keys_query()
    bob_devices = {d.id for d in alice.device_store.active_user_devices(bob.user_id)}
    assert bob.device_id in bob_devices, bob_devices

    body = f"secret for bob {uuid.uuid4()}"
    sent = await alice.room_send(
        room_id, TEXT, {"msgtype": "m.text", "body": body}, ignore_unverified_devices=True
    )
    assert isinstance(sent, RoomSendResponse), sent

    event = await wait_for_timeline_event(bob, room_id, sent.event_id)
    assert not isinstance(event, MegolmEvent), (
        f"Bob could not decrypt {event.event_id} (megolm session {event.session_id})"
    )
    assert isinstance(event, RoomMessageText), event
    assert event.body == body
    assert event.sender == alice.user_id
    assert event.decrypted


async def test_restart_keeps_tokens_and_history(
    synapse_server_factory: Callable[..., SynapseServer], matrix_client_factory: ClientFactory
) -> None:
    server = synapse_server_factory()
    user = server.register_user()
    alice = await matrix_client_factory(server, user=user)
    created = await alice.room_create(name="before restart")
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    await sync_until(alice, lambda _: room_id in alice.rooms, f"{room_id} in alice's rooms")
    body = f"written before the restart {uuid.uuid4()}"
    sent = await alice.room_send(room_id, TEXT, {"msgtype": "m.text", "body": body})
    assert isinstance(sent, RoomSendResponse), sent

    port, old_pid = server.port, server.pid
    server.restart()
    assert server.running
    assert server.port == port
    assert server.pid != old_pid

    status, whoami = server.request(
        "GET", "/_matrix/client/v3/account/whoami", access_token=user.access_token
    )
    assert status == 200, whoami
    assert whoami["user_id"] == user.user_id
    assert whoami["device_id"] == user.device_id

    # The same nio client keeps working against the restarted server.
    history = await alice.room_messages(room_id, limit=50)
    assert isinstance(history, RoomMessagesResponse), history
    bodies = [e.body for e in history.chunk if isinstance(e, RoomMessageText)]
    assert body in bodies
    after = await alice.room_send(room_id, TEXT, {"msgtype": "m.text", "body": "after"})
    assert isinstance(after, RoomSendResponse), after


async def test_default_rate_limits_are_really_synapse_defaults(
    synapse_default_limits: SynapseServer, matrix_client_factory: ClientFactory
) -> None:
    # Give up on the first 429 instead of nio's default of sleeping and retrying forever.
    config = AsyncClientConfig(
        encryption_enabled=True, store_sync_tokens=True, max_limit_exceeded=0
    )
    alice = await matrix_client_factory(synapse_default_limits, config=config)
    created = await alice.room_create(name="burst")
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    await sync_until(alice, lambda _: room_id in alice.rooms, f"{room_id} in alice's rooms")

    results = await send_burst(alice, room_id, 30)
    limited = [r for r in results if isinstance(r, RoomSendError)]
    sent = [r for r in results if isinstance(r, RoomSendResponse)]
    assert limited, "30 messages in a burst never hit Synapse's default rc_message limit"
    assert all(r.status_code == "M_LIMIT_EXCEEDED" for r in limited), limited
    assert all(r.retry_after_ms and r.retry_after_ms > 0 for r in limited), limited
    # Synapse's default burst allowance (10 messages) still lets the first ones through.
    assert sent, results
    assert len(sent) + len(limited) == len(results), results


async def test_relaxed_server_takes_the_same_burst(
    synapse: SynapseServer, matrix_client_factory: ClientFactory
) -> None:
    config = AsyncClientConfig(
        encryption_enabled=True, store_sync_tokens=True, max_limit_exceeded=0
    )
    alice = await matrix_client_factory(synapse, config=config)
    created = await alice.room_create(name="burst, relaxed")
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    await sync_until(alice, lambda _: room_id in alice.rooms, f"{room_id} in alice's rooms")
    results = await send_burst(alice, room_id, 30)
    assert all(isinstance(r, RoomSendResponse) for r in results), results


def test_register_user_gives_unique_working_logins(synapse: SynapseServer) -> None:
    first, second = synapse.register_user(), synapse.register_user()
    assert first.user_id != second.user_id
    assert first.user_id.endswith(f":{synapse.server_name}")
    named = synapse.register_user(f"named{uuid.uuid4().hex[:8]}", "pw-1234", admin=True)
    assert named.password == "pw-1234"
    status, body = synapse.request(
        "GET", f"/_synapse/admin/v2/users/{named.user_id}", access_token=named.access_token
    )
    assert status == 200, body
    assert body["admin"] is True
    status, body = synapse.request(
        "GET", f"/_synapse/admin/v2/users/{first.user_id}", access_token=first.access_token
    )
    assert status == 403, body  # not an admin


def test_stop_then_failed_start_raises_with_the_log_tail(
    synapse_server_factory: Callable[..., SynapseServer],
) -> None:
    server = synapse_server_factory()
    server.stop()
    assert not server.running
    assert server.port is not None
    try:
        server.request("GET", "/_matrix/client/versions", timeout=2.0)
    except OSError:
        pass
    else:
        raise AssertionError("the server still answers after stop()")

    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", server.port))
        squatter.listen()
        try:
            server.start()  # a restart keeps its port, which is now taken
        except SynapseHarnessError as exc:
            message = str(exc)
        else:
            raise AssertionError("start() succeeded on a port that is in use")
    assert "Address already in use" in message, message
    assert not server.running


CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.support.synapse import SynapseServer
server = SynapseServer(sys.argv[2])
server.start()
print(server.pid, flush=True)
if sys.argv[3] == "hang":
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _orphan_check(tmp_path: Path, mode: str) -> None:
    stderr = tmp_path / "child.stderr"
    with open(stderr, "wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(REPO_ROOT), str(tmp_path / "hs"), mode],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    pid = None
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        assert line.isdigit(), f"child did not start Synapse: {line!r}\n{stderr.read_text()}"
        pid = int(line)
        if mode == "hang":
            assert _alive(pid)
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert _wait_gone(pid), f"Synapse (pid {pid}) outlived the process that started it"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_server_is_stopped_at_interpreter_exit(tmp_path: Path) -> None:
    _orphan_check(tmp_path, "exit")


def test_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    _orphan_check(tmp_path, "hang")
