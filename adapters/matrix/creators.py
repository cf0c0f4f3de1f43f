"""Who created each room, where that makes them its admins.

From room version 12 on (MSC4289), a room's creators, the sender of `m.room.create` and the
users in its `additional_creators`, outrank every power level and are not listed in the power
levels at all. matrix-nio keeps neither of them in its room state, and it calls event
callbacks for timeline events only, while the create event usually arrives in a sync's
`state` section (always after a restart). So every sync is read for create events here, and a
room whose create event was never seen is asked for its state once. A create event never
changes: what is learned is kept.
"""

from __future__ import annotations

from typing import Any

from nio import AsyncClient, RoomCreateEvent, RoomGetStateResponse, SyncResponse


def creator_power(room_version: str) -> bool:
    """Whether the room version gives its creators unlimited power."""
    return (room_version.isdigit() and int(room_version) >= 12) \
        or room_version == "org.matrix.hydra.11"  # the prototype of version 12


def creators_from(create_event: dict[str, Any]) -> frozenset[str]:
    """The privileged creators a create event names (none before room version 12)."""
    content = create_event.get("content") or {}
    if not creator_power(str(content.get("room_version", "1"))):
        return frozenset()
    extra = content.get("additional_creators")
    extra = extra if isinstance(extra, list) else []
    sender = create_event.get("sender")
    return frozenset([*([sender] if isinstance(sender, str) else []),
                      *(u for u in extra if isinstance(u, str))])


class RoomCreators:
    """Room id → its privileged creators: learned from syncs, else fetched once."""

    def __init__(self) -> None:
        self._known: dict[str, frozenset[str]] = {}
        self.fetches = 0

    def note_sync(self, resp: SyncResponse) -> None:
        """Read a sync's joined rooms for create events, in their state and timeline."""
        for room_id, info in resp.rooms.join.items():
            for event in (*info.state, *info.timeline.events):
                if isinstance(event, RoomCreateEvent):
                    self._known[room_id] = creators_from(event.source)

    async def of(self, client: AsyncClient, room_id: str) -> frozenset[str]:
        """The room's creators with unlimited power; empty when none (or the homeserver could
        not say: nothing is granted on a failed lookup, and it is asked again next time)."""
        if room_id not in self._known:
            self.fetches += 1
            resp = await client.room_get_state(room_id)  # whole events: the sender included
            if isinstance(resp, RoomGetStateResponse):
                for event in resp.events:
                    if event.get("type") == "m.room.create" and event.get("state_key") == "":
                        self._known[room_id] = creators_from(event)
        return self._known.get(room_id, frozenset())
