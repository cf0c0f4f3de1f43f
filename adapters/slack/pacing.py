"""Per-channel pacing of posts, so a burst of reminders never meets a 429.

Slack allows about one message a second per channel, with short bursts. Each channel is a
lane: one post in flight at a time (which also keeps a channel's messages in order), started
no earlier than a generic cell rate algorithm allows (`rate` per second, `burst` at once).
Slack counts a post when it arrives, somewhere between our send and its answer; the lane
counts it at the answer, the later bound, so our estimate of Slack's bucket is never fuller
than the real one. A 429 that happens anyway (another client, a smaller burst than assumed)
holds the lane for its `Retry-After`.

The clock and the sleep are injected, so tests run without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Lane:
    tat: float = float("-inf")  # theoretical arrival time of the next conforming post
    hold_until: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


class Pacer:
    def __init__(self, rate: float = 1.0, burst: int = 3, *, margin: float = 0.02,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.interval = 1.0 / rate + margin
        self.tolerance = (burst - 1) / rate
        self._clock = clock
        self._sleep = sleep
        self._lanes: dict[str, _Lane] = {}

    def _lane(self, key: str) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            if len(self._lanes) > 10_000:
                self._prune()
            lane = self._lanes[key] = _Lane()
        return lane

    def _prune(self) -> None:
        now = self._clock()
        for key, lane in list(self._lanes.items()):
            if lane.waiting == 0 and not lane.lock.locked() and lane.tat < now and \
                    lane.hold_until < now:
                del self._lanes[key]

    def delay(self, key: str) -> float:
        """Seconds until a post to `key` could start, were it the next one."""
        lane = self._lanes.get(key)
        if lane is None:
            return 0.0
        return max(0.0, max(lane.tat - self.tolerance, lane.hold_until) - self._clock())

    def hold(self, key: str, seconds: float) -> None:
        """Slack said wait (429 `Retry-After`): nothing more goes to `key` before then."""
        lane = self._lane(key)
        lane.hold_until = max(lane.hold_until, self._clock() + seconds)

    @asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        """Wait for `key`'s turn, then hold the lane while the post is made."""
        lane = self._lane(key)
        lane.waiting += 1
        try:
            await lane.lock.acquire()
        finally:
            lane.waiting -= 1
        try:
            while True:
                wait = max(lane.tat - self.tolerance, lane.hold_until) - self._clock()
                if wait <= 0:
                    break
                await self._sleep(wait)
            try:
                yield
            finally:
                lane.tat = max(lane.tat, self._clock()) + self.interval
        finally:
            lane.lock.release()
