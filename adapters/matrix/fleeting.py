"""The bot's own messages that are due to be redacted (fleeting replies: a question's code).

They are kept in one small JSON file in the Matrix store directory, so that a restart
redacts them too: for each, the room id, the event id and the instant it falls due —
never the message text. The file is private to the bot (mode 0600), replaced atomically
on every change, and an entry leaves it once its event is redacted.

This module only keeps the list; the platform does the redacting, on its own clock.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "pending-redactions.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class Pending:
    room_id: str
    event_id: str
    due: datetime  # timezone-aware


class PendingRedactions:
    """The list of pending redactions, mirrored to `path` on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: list[Pending] = []

    def load(self) -> None:
        """Read the file; a missing file is an empty list. An unreadable entry is logged and
        dropped (it could only be redacted by hand)."""
        self._entries = []
        if not self.path.exists():
            return
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            log.error("matrix: cannot read %s (%s); pending redactions lost",
                      self.path, type(e).__name__)
            return
        for item in raw if isinstance(raw, list) else []:
            try:
                due = datetime.fromisoformat(item["due"])
                if due.tzinfo is None:
                    raise ValueError("naive instant")
                self._entries.append(Pending(room_id=str(item["room_id"]),
                                             event_id=str(item["event_id"]), due=due))
            except (KeyError, TypeError, ValueError):
                log.error("matrix: dropped an unreadable entry of %s", self.path)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry: Pending) -> None:
        self._entries.append(entry)
        self._save()

    def remove(self, entry: Pending) -> None:
        if entry in self._entries:
            self._entries.remove(entry)
            self._save()

    def due(self, now: datetime) -> list[Pending]:
        return [e for e in self._entries if e.due <= now]

    def next_due(self) -> datetime | None:
        return min((e.due for e in self._entries), default=None)

    def _save(self) -> None:
        data = [{"room_id": e.room_id, "event_id": e.event_id, "due": e.due.isoformat()}
                for e in self._entries]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary file beside it (created 0600), then an atomic rename: a crash leaves
        # the old list or the new one, never half of one.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE_NAME}.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
