"""The Element-stack client harness (matrix-js-sdk + Rust crypto, tests/support/jsclient.py)
on its own, against the real Synapse: cross-signing, encrypted rooms and DMs, and that the
"only signed devices" isolation mode really refuses a device its owner did not sign."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    KeysUploadResponse,
    MegolmEvent,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

from tests.support.jsclient import JsClient, JsClientError
from tests.support.jsclient_fixtures import JsClientFactory
from tests.support.synapse import SynapseServer


def token() -> str:
    return uuid.uuid4().hex[:10]


async def room_of_two(a: JsClient, b: JsClient, *, direct: bool = False) -> str:
    """`a` creates an encrypted room (a DM as Element makes it, with `direct`), `b` joins, and
    `a` has seen the join."""
    room_id = await a.create_room([b.user_id], encrypted=True, direct=direct,
                                  name=None if direct else f"js {token()}")
    invite = await b.wait_for_room(lambda r: r.room_id == room_id and r.membership == "invite",
                                   what=f"the invite to {room_id}")
    assert invite.inviter == a.user_id
    assert invite.is_direct_invite == direct
    await b.join(room_id)
    await a.wait_for_member(room_id, b.user_id, "join")
    return room_id


async def test_cross_signed_users_exchange_an_encrypted_message(
    js_client_factory: JsClientFactory,
) -> None:
    alice = await js_client_factory(isolation="only_signed")
    bob = await js_client_factory(isolation="only_signed")
    room_id = await room_of_two(alice, bob)

    body = f"only for signed devices {token()}"
    html = f'<b>only</b> for <a href="https://matrix.to/#/{bob.user_id}">bob</a>'
    event_id = await alice.send(room_id, body, html)

    seen = await bob.wait_for_event(event_id, decrypted=True)
    assert seen.encrypted
    assert seen.sender == alice.user_id
    assert seen.type == "m.room.message"
    assert seen.body == body
    assert seen.msgtype == "m.text"
    assert seen.formatted_body == html
    assert seen.failure_reason is None

    # Bob sees Alice's device as signed by Alice (cross-signing bootstrapped like Element).
    status = await bob.device_status(alice.user_id)
    device = status.device(alice.device_id)
    assert device.known
    assert device.signed_by_owner is True
    assert device.cross_signing_verified is False  # Bob has not verified Alice herself
    assert status.known_identity is True
    # And no warning on the message: no unsigned or unknown device shield.
    info = await bob.event_info(room_id, event_id)
    assert info.has_info and not info.decryption_failure
    assert info.shield_reason not in ("UNSIGNED_DEVICE", "UNKNOWN_DEVICE"), info
    assert info.shield_colour != "RED", info

    # Alice's own view of her device: signed by herself, and she trusts her own identity.
    own = await alice.device_status(alice.user_id, alice.device_id)
    assert own.device(alice.device_id).signed_by_owner is True
    assert own.device(alice.device_id).cross_signing_verified is True

    # Alice's own message is in her own list of events too, under its real id.
    mine = await alice.wait_for_event(event_id, decrypted=True)
    assert (mine.sender, mine.body, mine.encrypted) == (alice.user_id, body, True)

    # Bob answers, so the room works both ways under the isolation mode.
    reply = f"reply {token()}"
    reply_id = await bob.send(room_id, reply)
    back = await alice.wait_for_event(reply_id, decrypted=True)
    assert back.body == reply


async def test_direct_chat_made_like_element_works_both_ways(
    js_client_factory: JsClientFactory,
) -> None:
    alice = await js_client_factory()
    bob = await js_client_factory()
    room_id = await room_of_two(alice, bob, direct=True)

    rooms = await alice.rooms()
    assert rooms[room_id].direct_with == [bob.user_id]  # m.direct, as Element records it
    assert rooms[room_id].encrypted
    bob_rooms = await bob.rooms()
    assert bob_rooms[room_id].direct_with == [alice.user_id]  # recorded by the invitee too

    hello = f"dm hello {token()}"
    hello_id = await alice.send(room_id, hello)
    seen = await bob.wait_for_event(hello_id, decrypted=True)
    assert (seen.body, seen.sender, seen.encrypted) == (hello, alice.user_id, True)

    answer = f"dm answer {token()}"
    answer_id = await bob.send(room_id, answer)
    back = await alice.wait_for_event(answer_id, decrypted=True)
    assert (back.body, back.sender, back.encrypted) == (answer, bob.user_id, True)

    # A redaction shows up as such on the other side.
    redaction_id = await bob.redact(room_id, answer_id)
    redaction = await alice.wait_for(lambda e: e.event_id == redaction_id,
                                     what="the redaction")
    assert redaction.redacts == answer_id
    gone = await alice.wait_for(lambda e: e.event_id == answer_id and e.redacted,
                                what="the answer marked redacted")
    assert gone.redacted_by == redaction_id


async def test_auto_join_accepts_invites_from_the_given_senders(
    js_client_factory: JsClientFactory,
) -> None:
    alice = await js_client_factory()
    bob = await js_client_factory()
    await bob.auto_join([alice.user_id])
    room_id = await alice.create_room([bob.user_id], encrypted=True, name=f"auto {token()}")
    await bob.wait_for_room(lambda r: r.room_id == room_id and r.membership == "join",
                            what="the auto-joined room")
    await alice.wait_for_member(room_id, bob.user_id, "join")
    body = f"after auto-join {token()}"
    event_id = await alice.send(room_id, body)
    assert (await bob.wait_for_event(event_id, decrypted=True)).body == body


# --------------------------------------------------------------- a device nobody signed


@pytest.fixture
async def unsigned_nio(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[AsyncClient]:
    """A matrix-nio client on a fresh user whose device keys are uploaded and that has no
    cross-signing keys at all: a device its owner never signed. (Made here rather than with
    `matrix_client_factory`, so it stays unsigned whatever that factory's defaults are.)"""
    user = synapse.register_user()
    store = tmp_path / "nio-unsigned"
    store.mkdir()
    client = AsyncClient(synapse.base_url, user.user_id, device_id=user.device_id,
                         store_path=str(store),
                         config=AsyncClientConfig(encryption_enabled=True,
                                                  store_sync_tokens=True))
    client.restore_login(user.user_id, user.device_id, user.access_token)
    resp = await client.keys_upload()
    assert isinstance(resp, KeysUploadResponse), f"keys_upload failed: {resp}"
    try:
        yield client
    finally:
        await client.close()


async def nio_sync(client: AsyncClient, to_device: list[dict[str, Any]] | None = None
                   ) -> SyncResponse:
    """One sync plus the key housekeeping; the raw to-device events go to `to_device`."""
    resp = await client.sync(timeout=300)
    assert isinstance(resp, SyncResponse), f"sync failed for {client.user_id}: {resp}"
    if to_device is not None:
        to_device.extend(e.source for e in resp.to_device_events)
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()
    return resp


async def nio_room_with_js(nio: AsyncClient, js: JsClient) -> str:
    """`js` creates an encrypted room and invites the nio user, who joins; both have seen
    the join."""
    room_id = await js.create_room([str(nio.user_id)], encrypted=True, name=f"mixed {token()}")
    deadline = time.monotonic() + 30
    while room_id not in nio.invited_rooms:
        assert time.monotonic() < deadline, f"{nio.user_id} never saw the invite to {room_id}"
        await nio_sync(nio)
    joined = await nio.join(room_id)
    assert isinstance(joined, JoinResponse), joined
    await js.wait_for_member(room_id, str(nio.user_id), "join")
    while room_id not in nio.rooms or js.user_id not in nio.rooms[room_id].users:
        assert time.monotonic() < deadline, f"{nio.user_id} never saw its join of {room_id}"
        await nio_sync(nio)
    return room_id


async def test_only_signed_mode_refuses_a_device_its_owner_did_not_sign(
    js_client_factory: JsClientFactory, unsigned_nio: AsyncClient
) -> None:
    js = await js_client_factory(isolation="only_signed")
    nio = unsigned_nio
    room_id = await nio_room_with_js(nio, js)

    # The js client sees the nio device, and sees that nobody signed it.
    status = await js.device_status(str(nio.user_id), str(nio.device_id))
    device = status.device(str(nio.device_id))
    assert device.known
    assert device.signed_by_owner is False

    body = f"from an unsigned device {token()}"
    sent = await nio.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body},
                               ignore_unverified_devices=True)
    assert isinstance(sent, RoomSendResponse), sent

    failed = await js.wait_for_failure(sent.event_id, settled_for=2.0)
    assert failed.encrypted
    assert failed.sender == nio.user_id
    assert failed.failure_reason == "UNSIGNED_SENDER_DEVICE"
    assert failed.content is None
    info = await js.event_info(room_id, sent.event_id)
    assert info.decryption_failure and info.failure_reason == "UNSIGNED_SENDER_DEVICE"
    assert not info.has_info

    # The same client in "all devices" mode decrypts the next message from that device, with a
    # red "unsigned device" shield: so the failure above is the isolation mode, not the keys.
    await js.set_isolation("all")
    body2 = f"now readable {token()}"
    sent2 = await nio.room_send(room_id, "m.room.message",
                                {"msgtype": "m.text", "body": body2},
                                ignore_unverified_devices=True)
    assert isinstance(sent2, RoomSendResponse), sent2
    seen = await js.wait_for_event(sent2.event_id, decrypted=True)
    assert seen.body == body2
    info2 = await js.event_info(room_id, sent2.event_id)
    assert (info2.shield_colour, info2.shield_reason) == ("RED", "UNSIGNED_DEVICE"), info2


async def test_only_signed_mode_does_not_share_room_keys_with_an_unsigned_device(
    js_client_factory: JsClientFactory, unsigned_nio: AsyncClient
) -> None:
    js = await js_client_factory(isolation="only_signed")
    nio = unsigned_nio
    room_id = await nio_room_with_js(nio, js)

    body = f"not for unsigned devices {token()}"
    event_id = await js.send(room_id, body)
    to_device: list[dict[str, Any]] = []
    event = await nio_wait_event(nio, room_id, event_id, to_device)
    # nio cannot decrypt it: the js client never gave that device the room key.
    assert isinstance(event, MegolmEvent), f"the unsigned nio device decrypted {event}"
    settle = time.monotonic() + 3
    while time.monotonic() < settle:  # nor does the key arrive a little later
        await nio_sync(nio, to_device)
        assert not has_room_key(nio, event), "the js client shared its room key with nio"
    # Instead it told that device why, as the spec's "withheld" notice.
    withheld = [e["content"] for e in to_device if e.get("type") == "m.room_key.withheld"
                and e["content"].get("session_id") == event.session_id]
    assert withheld, f"no m.room_key.withheld for the session; to-device: {to_device}"
    assert {(w["code"], w["from_device"]) for w in withheld} == {("m.unverified", js.device_id)}

    # In "all devices" mode the next message reaches the same device.
    await js.set_isolation("all")
    body2 = f"for every device {token()}"
    event_id2 = await js.send(room_id, body2)
    event2 = await nio_wait_event(nio, room_id, event_id2)
    assert isinstance(event2, RoomMessageText), f"nio could not decrypt {event2}"
    assert event2.body == body2


def has_room_key(nio: AsyncClient, event: MegolmEvent) -> bool:
    assert nio.olm is not None
    return nio.olm.inbound_group_store.get(event.room_id, event.sender_key,
                                           event.session_id) is not None


async def nio_wait_event(nio: AsyncClient, room_id: str, event_id: str,
                         to_device: list[dict[str, Any]] | None = None,
                         timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        resp = await nio_sync(nio, to_device)
        joined = resp.rooms.join.get(room_id)
        for event in joined.timeline.events if joined else []:
            if getattr(event, "event_id", None) == event_id:
                return event
        assert time.monotonic() < deadline, f"{nio.user_id} never saw {event_id}"
        await asyncio.sleep(0)


async def test_a_js_device_its_owner_did_not_sign_is_refused_by_an_only_signed_peer(
    js_client_factory: JsClientFactory,
) -> None:
    signed = await js_client_factory(isolation="only_signed")
    unsigned = await js_client_factory(isolation="all", cross_sign=False)
    room_id = await room_of_two(signed, unsigned)

    status = await signed.device_status(unsigned.user_id, unsigned.device_id)
    assert status.device(unsigned.device_id).signed_by_owner is False
    assert status.known_identity is False  # that user has no cross-signing identity at all

    event_id = await unsigned.send(room_id, f"unsigned js {token()}")
    failed = await signed.wait_for_failure(event_id, settled_for=2.0)
    assert failed.failure_reason == "UNSIGNED_SENDER_DEVICE"


async def test_driver_errors_raise_with_the_message_and_the_driver_log(
    js_client_factory: JsClientFactory,
) -> None:
    alice = await js_client_factory()
    with pytest.raises(JsClientError) as caught:
        await alice.join("!nosuchroom:localhost")
    text = str(caught.value)
    assert text.startswith(f"{alice!r}: join: "), text
    assert "js client stderr" in text and "join failed" in text, text
    # The client is still usable afterwards, and stop() ends its process.
    assert (await alice.request("whoami"))["device_id"] == alice.device_id
    pid = alice.pid
    await alice.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
