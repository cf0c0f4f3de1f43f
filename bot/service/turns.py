"""One person's commands are handled one at a time, in the order they arrive.

Platforms deliver commands side by side: a Slack request each, a Matrix sync's events each in
a task of its own. Someone who types `cohort create` and at once `cohort members add` must not
see the second fail because the first has not committed yet, nor two changes of theirs applied
in the other order. Different people's commands still run side by side.

The order is that of the calls to `turn`, which takes its place before it first waits. It
holds within one process: with several instances, each orders what it receives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0  # holders and waiters: the queue is dropped when none is left


class Turns:
    def __init__(self) -> None:
        self._queues: dict[Hashable, _Queue] = {}

    @asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        """Wait until everything entered before with `key` has left (asyncio's lock serves
        its waiters first come, first served)."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        queue.waiting += 1
        try:
            async with queue.lock:
                yield
        finally:
            queue.waiting -= 1
            if not queue.waiting:
                del self._queues[key]

    def __len__(self) -> int:
        """How many keys have work in hand (for tests: none is kept once idle)."""
        return len(self._queues)
