"""The Socket Mode side of the fake: the WebSocket that ``apps.connections.open`` points at.

Slack's protocol, as the SDK's clients speak it:

* on connect the server sends ``{"type": "hello", "num_connections": n, ...}``;
* every delivery is an envelope ``{"envelope_id", "type", "payload",
  "accepts_response_payload"}`` (``events_api`` envelopes also carry ``retry_attempt`` and
  ``retry_reason``); the client acks with ``{"envelope_id": ..., "payload": {...}?}``;
* ``{"type": "disconnect", "reason": ...}`` asks the client to fetch a new URL and reconnect.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .webapi import FakeSlack

JSON = dict[str, Any]

_RESPONSE_PAYLOAD_INTERACTIONS = frozenset({"view_submission", "block_suggestion"})


@dataclass
class SocketConnection:
    id: int
    ticket: str
    opened_at: float
    ws: web.WebSocketResponse = field(repr=False)
    closed_at: float | None = None
    close_code: int | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None and not self.ws.closed


@dataclass
class SocketDelivery:
    """One envelope sent to a client, and the ack it got (if any)."""

    envelope_id: str
    type: str
    payload: JSON
    envelope: JSON
    retry_attempt: int
    connection_id: int
    sent_at: float  # time.monotonic()
    ack: JSON | None = None
    ack_elapsed: float | None = None
    ack_connection_id: int | None = None
    _event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def acked(self) -> bool:
        return self.ack is not None

    @property
    def ack_payload(self) -> JSON | None:
        return None if self.ack is None else self.ack.get("payload")


class SocketModeHub:
    def __init__(self, fake: FakeSlack) -> None:
        self._fake = fake
        self._lock = fake._lock
        self._ids = itertools.count(1)
        self._connections: list[SocketConnection] = []
        self._deliveries: dict[str, SocketDelivery] = {}
        self._log: list[SocketDelivery] = []
        self._acks: list[JSON] = []

    # accessors (any thread)

    def connections(self) -> list[SocketConnection]:
        with self._lock:
            return list(self._connections)

    def open_connections(self) -> list[SocketConnection]:
        with self._lock:
            return [c for c in self._connections if c.is_open]

    def deliveries(self) -> list[SocketDelivery]:
        with self._lock:
            return list(self._log)

    def acks(self) -> list[JSON]:
        with self._lock:
            return copy.deepcopy(self._acks)

    # server side (the fake's loop)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket")
        if not self._fake.ticket_valid(ticket):
            return web.Response(status=401, text="invalid_ticket")
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        with self._lock:
            conn = SocketConnection(next(self._ids), str(ticket), time.time(), ws)
            self._connections.append(conn)
            open_count = sum(1 for c in self._connections if c.is_open)
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": open_count,
            "debug_info": {"host": "applink-fake-1", "build_number": 1,
                           "approximate_connection_time": 18060},
            "connection_info": {"app_id": self._fake.app_id},
        }))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
        finally:
            with self._lock:
                conn.closed_at = time.time()
                conn.close_code = ws.close_code
        return ws

    def _on_text(self, conn: SocketConnection, data: str) -> None:
        received = time.monotonic()
        try:
            message = json.loads(data)
        except ValueError:
            message = {"_raw": data}
        if not isinstance(message, dict):
            message = {"_raw": message}
        eid = message.get("envelope_id")
        with self._lock:
            delivery = self._deliveries.get(eid) if isinstance(eid, str) else None
            elapsed = received - delivery.sent_at if delivery is not None else None
            self._acks.append({
                "envelope_id": eid, "payload": message.get("payload"), "elapsed": elapsed,
                "connection_id": conn.id, "time": time.time(), "message": message,
                "known": delivery is not None,
            })
            first = delivery is not None and delivery.ack is None
            if delivery is not None and first:
                delivery.ack = message
                delivery.ack_elapsed = elapsed
                delivery.ack_connection_id = conn.id
        if delivery is not None and first:
            delivery._event.set()
            self._apply_ack(delivery)

    def _apply_ack(self, delivery: SocketDelivery) -> None:
        """What Slack does with an ack's payload: show a command's reply, act on a modal."""
        body = delivery.ack_payload
        payload = delivery.payload
        if delivery.type == "slash_commands" and body:
            self._fake.deliver_reply(payload.get("channel_id"), payload.get("user_id"), body,
                                     via="ack")
        elif (delivery.type == "interactive" and payload.get("type") == "view_submission"
              and isinstance(payload.get("user"), dict)):
            try:
                self._fake.apply_view_response(payload["user"]["id"], body)
            except Exception as e:  # a bad response_action: recorded, the client isn't told
                with self._lock:
                    self._acks[-1]["error"] = repr(e)

    async def _open_connection(self, timeout: float) -> SocketConnection:
        deadline = time.monotonic() + timeout
        while True:
            conns = self.open_connections()
            if conns:
                return conns[-1]
            if time.monotonic() >= deadline:
                raise TimeoutError("no open Socket Mode connection")
            await asyncio.sleep(0.01)

    async def send(self, type: str, payload: JSON, *, retry_attempt: int = 0,
                   retry_reason: str = "", accepts_response_payload: bool | None = None,
                   envelope_id: str | None = None, wait_ack: bool = True,
                   timeout: float = 5.0) -> SocketDelivery:
        conn = await self._open_connection(timeout)
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands" or (
                type == "interactive" and payload.get("type") in _RESPONSE_PAYLOAD_INTERACTIONS)
        eid = envelope_id or str(uuid.uuid4())
        payload = copy.deepcopy(payload)
        envelope: JSON = {"envelope_id": eid, "payload": payload, "type": type,
                          "accepts_response_payload": accepts_response_payload}
        if type == "events_api" or retry_attempt:
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        delivery = SocketDelivery(eid, type, payload, envelope, retry_attempt, conn.id,
                                  time.monotonic())
        with self._lock:
            self._deliveries[eid] = delivery
            self._log.append(delivery)
        delivery.sent_at = time.monotonic()
        await conn.ws.send_str(json.dumps(envelope))
        if wait_ack:
            await self.wait_ack(delivery, timeout)
        return delivery

    async def wait_ack(self, delivery: SocketDelivery, timeout: float) -> SocketDelivery:
        try:
            await asyncio.wait_for(delivery._event.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"envelope {delivery.envelope_id} ({delivery.type}) not acked in {timeout}s"
            ) from None
        return delivery

    async def disconnect(self, reason: str, *, close: bool) -> None:
        for conn in self.open_connections():
            await conn.ws.send_str(json.dumps({
                "type": "disconnect", "reason": reason,
                "debug_info": {"host": "applink-fake-1"},
            }))
            if close:
                await conn.ws.close()

    async def close_all(self, code: int = 1001) -> None:
        for conn in self.open_connections():
            await conn.ws.close(code=code, message=b"going away")
