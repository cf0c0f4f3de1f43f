"""Platform-neutral messages.

A `Message` is a sequence of parts. `Text` is *literal* text: every adapter escapes it so that
it can never mention anyone, whatever it contains. The only way to mention a person is a
`Mention` part. No Slack mrkdwn or Matrix HTML lives here; adapters render.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.refs import UserRef
from bot.domain.timeparse import format_local


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Strong:
    """Emphasised literal text (bold where the platform has it)."""

    text: str


@dataclass(frozen=True, slots=True)
class Mention:
    user: UserRef


@dataclass(frozen=True, slots=True)
class When:
    """An instant, shown in `zone` (the reader's, else the cohort's). Platforms that can show
    a time in each reader's own zone (Slack date tokens) may do so instead."""

    instant: datetime
    zone: str

    @property
    def text(self) -> str:
        return format_local(self.instant, ZoneInfo(self.zone))


Part = Text | Strong | Mention | When


@dataclass(frozen=True, slots=True)
class Message:
    parts: tuple[Part, ...] = ()
    #: Buttons or other interactive hints an adapter may render; the text stays complete
    #: without them (the command form is always in the text).
    actions: tuple[Action, ...] = field(default=())

    @classmethod
    def of(cls, *parts: Part | str) -> Message:
        return cls(tuple(Text(p) if isinstance(p, str) else p for p in parts))

    def __add__(self, other: Message) -> Message:
        return Message(self.parts + other.parts, self.actions + other.actions)

    def plain(self, name_of: Any = None) -> str:
        """The message as plain text; mentions as `@id` (or `@name` via `name_of(user)`)."""
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, Mention):
                out.append("@" + (name_of(p.user) if name_of else p.user.id))
            else:
                out.append(p.text)
        return "".join(out)

    def mentions(self) -> tuple[UserRef, ...]:
        return tuple(p.user for p in self.parts if isinstance(p, Mention))

    def to_json(self) -> dict[str, Any]:
        parts: list[dict[str, str]] = []
        for p in self.parts:
            if isinstance(p, Mention):
                parts.append({"m": str(p.user)})
            elif isinstance(p, Strong):
                parts.append({"b": p.text})
            elif isinstance(p, When):
                parts.append({"w": p.instant.isoformat(), "z": p.zone})
            else:
                parts.append({"t": p.text})
        data: dict[str, Any] = {"parts": parts}
        if self.actions:
            data["actions"] = [{"label": a.label, "command": a.command} for a in self.actions]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        parts: list[Part] = []
        for p in data.get("parts", []):
            if "m" in p:
                parts.append(Mention(UserRef.parse(p["m"])))
            elif "b" in p:
                parts.append(Strong(p["b"]))
            elif "w" in p:
                parts.append(When(datetime.fromisoformat(p["w"]), p["z"]))
            else:
                parts.append(Text(p["t"]))
        actions = tuple(Action(a["label"], a["command"]) for a in data.get("actions", []))
        return cls(tuple(parts), actions)


@dataclass(frozen=True, slots=True)
class Action:
    """A one-click shortcut for a command the reader could also type."""

    label: str
    command: str


def lines(items: Iterable[Message | str]) -> Message:
    """Join messages with newlines."""
    out: list[Part] = []
    actions: list[Action] = []
    first = True
    for item in items:
        msg = Message.of(item) if isinstance(item, str) else item
        if not first:
            out.append(Text("\n"))
        first = False
        out.extend(msg.parts)
        actions.extend(msg.actions)
    return Message(tuple(out), tuple(actions))


def plural(count: int, noun: str, many: str | None = None) -> str:
    """"1 session", "2 sessions", "0 sessions": a count with its noun, never "session(s)"."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
