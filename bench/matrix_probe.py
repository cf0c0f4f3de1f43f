"""`cohortbot` with timing probes, for bench/matrix.py --probe.

The same process the `cohortbot` executable runs (`bot.cli:main`, same arguments), with a few
methods wrapped so that each step of a command's way through the bot leaves a time stamp:

- `sync`: nio hands a sync response to the client (`AsyncClient.receive_response`), i.e. the
  HTTP response is in and parsed, before the event callbacks run;
- `cb`: the adapter's message callback sees the event (`MatrixPlatform._on_message`);
- `h`: the core handles the command (`Bot.handle`: start and end), with the main thread's CPU
  time, the time spent in garbage collection and in SQL statements, and their number, over it;
- `send`: the adapter sends an event (`MatrixPlatform.send_content`: start and end), keyed by
  the event it replies to, or by its transaction id;
- `wake`: the scheduler's wake-up runs (`Waker.wake`: start and end).

One experiment can be switched on with $COHORTBOT_PROBE_WHAT_IF (never by default; bench/matrix.py
says so in its output when it is on):

- `defer-poke`: the wake-up a handled command asks for (`Bot._on_change`, i.e. `Waker.poke`)
  is made after the adapter has sent the command's replies instead of before: same work, later.

Stamps are `time.monotonic()` (CLOCK_MONOTONIC: one clock for every process on the machine, so
bench/matrix.py can line them up with its own). They go, one JSON object per line, to the file
named by $COHORTBOT_PROBE_FILE. Nothing else changes.

    COHORTBOT_PROBE_FILE=probe.jsonl python bench/matrix_probe.py --config cohortbot.toml run
"""

from __future__ import annotations

import contextvars
import functools
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_out = open(os.environ["COHORTBOT_PROBE_FILE"], "a", buffering=1)  # noqa: SIM115 - for life


def record(**fields: Any) -> None:
    _out.write(json.dumps(fields) + "\n")


def _wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, name)
    setattr(owner, name, functools.wraps(original)(make(original)))


#: Seconds spent in garbage collection and in SQL statements (statement execution as the
#: main thread sees it: the driver's round trip included), and the number of statements.
_costs: dict[str, float] = {"gc": 0.0, "sql": 0.0, "statements": 0}
_gc_started = 0.0


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.monotonic()
    else:
        _costs["gc"] += time.monotonic() - _gc_started


_deferred: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "deferred_pokes", default=None)


class _DeferPoke:
    """Stands in for `Bot._on_change`: inside an adapter's command task it only notes the
    call; elsewhere it calls through."""

    def __init__(self, real: Callable[[], None]) -> None:
        self.real = real

    def __call__(self) -> None:
        box = _deferred.get()
        if box is None:
            self.real()
        else:
            box.append(self.real)


def install_defer_poke() -> None:
    from adapters.matrix.platform import MatrixPlatform
    from bot.service.bus import Bot

    def handle(original: Any) -> Any:
        async def wrapper(self: Any, inv: Any) -> Any:
            if self._on_change is not None and not isinstance(self._on_change, _DeferPoke):
                self._on_change = _DeferPoke(self._on_change)
            return await original(self, inv)
        return wrapper

    def adapter_handle(original: Any) -> Any:
        async def wrapper(self: Any, *args: Any) -> Any:
            token = _deferred.set([])
            try:
                await original(self, *args)
            finally:
                box = _deferred.get() or []
                _deferred.reset(token)
                for poke in dict.fromkeys(box):
                    poke()
        return wrapper

    _wrap(Bot, "handle", handle)
    _wrap(MatrixPlatform, "_handle", adapter_handle)


def install() -> None:
    from nio import AsyncClient, SyncResponse
    from sqlalchemy.engine import Connection

    from adapters.matrix.platform import MatrixPlatform
    from bot.scheduling.waker import Waker
    from bot.service.bus import Bot

    def receive_response(original: Any) -> Any:
        async def wrapper(self: Any, response: Any) -> Any:
            if isinstance(response, SyncResponse):
                self._probe_sync = time.monotonic()
            return await original(self, response)
        return wrapper

    def on_message(original: Any) -> Any:
        async def wrapper(self: Any, room: Any, event: Any) -> Any:
            client = self.client
            record(k="cb", ev=event.event_id, t=time.monotonic(),
                   sync=getattr(client, "_probe_sync", None))
            return await original(self, room, event)
        return wrapper

    def handle(original: Any) -> Any:
        async def wrapper(self: Any, inv: Any) -> Any:
            t0, cpu0 = time.monotonic(), time.thread_time()
            gc0, sql0, n0 = _costs["gc"], _costs["sql"], _costs["statements"]
            try:
                return await original(self, inv)
            finally:
                ev = (inv.event_id or "").removeprefix("matrix:")
                record(k="h", ev=ev, t0=t0, t1=time.monotonic(),
                       cpu=time.thread_time() - cpu0, gc=_costs["gc"] - gc0,
                       sql=_costs["sql"] - sql0, statements=_costs["statements"] - n0)
        return wrapper

    def execute(original: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.monotonic()
            try:
                return original(self, *args, **kwargs)
            finally:
                _costs["sql"] += time.monotonic() - t0
                _costs["statements"] += 1
        return wrapper

    gc.callbacks.append(_gc_timer)
    _wrap(Connection, "_execute_context", execute)

    def send_content(original: Any) -> Any:
        async def wrapper(self: Any, room_id: str, content: dict[str, Any],
                          tx_id: str | None = None) -> Any:
            t0 = time.monotonic()
            try:
                return await original(self, room_id, content, tx_id)
            finally:
                reply_to = ((content.get("m.relates_to") or {}).get("m.in_reply_to")
                            or {}).get("event_id")
                record(k="send", ev=reply_to, tx=tx_id, t0=t0, t1=time.monotonic())
        return wrapper

    def wake(original: Any) -> Any:
        async def wrapper(self: Any) -> Any:
            t0 = time.monotonic()
            try:
                return await original(self)
            finally:
                record(k="wake", t0=t0, t1=time.monotonic())
        return wrapper

    _wrap(AsyncClient, "receive_response", receive_response)
    _wrap(MatrixPlatform, "_on_message", on_message)
    _wrap(Bot, "handle", handle)
    _wrap(MatrixPlatform, "send_content", send_content)
    _wrap(Waker, "wake", wake)


def main() -> int:
    install()
    what_if = os.environ.get("COHORTBOT_PROBE_WHAT_IF", "")
    if what_if == "defer-poke":
        install_defer_poke()
    elif what_if:
        raise SystemExit(f"unknown experiment {what_if!r}")
    from bot.cli import main as cohortbot

    sys.argv[0] = "cohortbot"
    return int(cohortbot() or 0)


if __name__ == "__main__":
    sys.exit(main())
