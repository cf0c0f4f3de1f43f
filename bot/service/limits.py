"""How fast one person may use the bot: a sliding window per person, on the bot's clock.

Two limits (`Policy.commands_per_minute`, `Policy.messages_to_others_per_hour`): a burst of
commands is fine, a flood is refused before anything runs; and a person's commands may DM
other people (swap requests, …) only so often. Counted in memory, per instance: a restart
forgets them, and with several instances each counts what it serves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from datetime import datetime, timedelta

#: Past this many people tracked, those with nothing left in their window are dropped.
TRACKED = 10_000


class Window:
    def __init__(self, span: timedelta, limit: int) -> None:
        self.span = span
        self.limit = limit
        self._seen: dict[Hashable, deque[datetime]] = {}

    def take(self, who: Hashable, now: datetime) -> bool:
        """Count one for `who` at `now`, unless their window is full (then False)."""
        times = self._seen.setdefault(who, deque())
        while times and times[0] <= now - self.span:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        if len(self._seen) > TRACKED:
            self._forget(now)
        return True

    def _forget(self, now: datetime) -> None:
        for who in [w for w, t in self._seen.items() if not t or t[-1] <= now - self.span]:
            del self._seen[who]


class Limits:
    def __init__(self, commands_per_minute: int, messages_to_others_per_hour: int) -> None:
        self.commands = Window(timedelta(minutes=1), commands_per_minute)
        self.messages = Window(timedelta(hours=1), messages_to_others_per_hour)
