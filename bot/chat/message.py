"""Platform-neutral messages.

A `Message` is a sequence of parts. `Text` is *literal* text: every adapter escapes it so that
it can never mention anyone, whatever it contains. The only way to mention a person is a
`Mention` part. No Slack mrkdwn or Matrix HTML lives here; adapters render.

A message made with `card` also has a *layout*: a title, paragraphs, list items and a note in
small print, as spans over its parts. Platforms with layout (Slack Block Kit, Matrix HTML)
render the spans; the parts alone stay the complete plain text, which is what the terminal
shows and what notifications fall back to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    """A person, named so that they are notified; `quiet`: named without notifying them
    (they have heard enough about this session)."""

    user: UserRef
    quiet: bool = False


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

TITLE, PARAGRAPH, ITEM, NOTE = "title", "paragraph", "item", "note"


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a message's layout: `kind` over `parts[start:stop]`. Parts outside every
    block (line breaks, bullets) only glue the plain text together."""

    kind: str
    start: int
    stop: int

    def shifted(self, by: int) -> Block:
        return Block(self.kind, self.start + by, self.stop + by)


@dataclass(frozen=True, slots=True)
class Message:
    parts: tuple[Part, ...] = ()
    #: Buttons or other interactive hints an adapter may render; the text stays complete
    #: without them (the command form is always in the text).
    actions: tuple[Action, ...] = field(default=())
    #: Title, paragraphs, items and note (see `card`); empty for a message of plain lines.
    layout: tuple[Block, ...] = field(default=())

    @classmethod
    def of(cls, *parts: Part | str) -> Message:
        return cls(tuple(Text(p) if isinstance(p, str) else p for p in parts))

    def __add__(self, other: Message) -> Message:
        if not self.layout and not other.layout:
            return Message(self.parts + other.parts, self.actions + other.actions)
        # Text added to a laid-out message becomes a paragraph of its own.
        left, right = self._laid_out(), other._laid_out()
        return Message(left.parts + right.parts, self.actions + other.actions,
                       left.layout + tuple(b.shifted(len(left.parts)) for b in right.layout))

    def _laid_out(self) -> Message:
        """This message, or its text as one paragraph (line breaks around it left out)."""
        if self.layout or not self.parts:
            return self
        parts = list(self.parts)
        if isinstance(parts[0], Text):
            text = parts[0].text
            parts[0:1] = [Text(text[: len(text) - len(text.lstrip())]), Text(text.lstrip())]
        if isinstance(parts[-1], Text):
            text = parts[-1].text
            parts[-1:] = [Text(text.rstrip()), Text(text[len(text.rstrip()):])]
        parts = [p for p in parts if not isinstance(p, Text) or p.text]
        filled = [i for i, p in enumerate(parts) if not _blank(p)]
        layout = (Block(PARAGRAPH, filled[0], filled[-1] + 1),) if filled else ()
        return Message(tuple(parts), self.actions, layout)

    def blocks(self) -> list[tuple[str, tuple[Message, ...]]]:
        """The message block by block, as (kind, contents): one content per block, except
        that a run of items comes as one list. Without layout: one paragraph."""
        out: list[tuple[str, tuple[Message, ...]]] = []
        laid_out = self._laid_out()
        for b in laid_out.layout:
            content = Message(laid_out.parts[b.start:b.stop])
            if b.kind == ITEM and out and out[-1][0] == ITEM:
                out[-1] = (ITEM, (*out[-1][1], content))
            else:
                out.append((b.kind, (content,)))
        return out

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

    def pings(self) -> tuple[UserRef, ...]:
        """The people this message notifies (its mentions that are not quiet)."""
        return tuple(p.user for p in self.parts if isinstance(p, Mention) and not p.quiet)

    def to_json(self) -> dict[str, Any]:
        parts: list[dict[str, str]] = []
        for p in self.parts:
            if isinstance(p, Mention):
                parts.append({"m": str(p.user), "q": "1"} if p.quiet else {"m": str(p.user)})
            elif isinstance(p, Strong):
                parts.append({"b": p.text})
            elif isinstance(p, When):
                parts.append({"w": p.instant.isoformat(), "z": p.zone})
            else:
                parts.append({"t": p.text})
        data: dict[str, Any] = {"parts": parts}
        if self.actions:
            data["actions"] = [{"label": a.label, "command": a.command} for a in self.actions]
        if self.layout:
            data["layout"] = [[b.kind, b.start, b.stop] for b in self.layout]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        parts: list[Part] = []
        for p in data.get("parts", []):
            if "m" in p:
                parts.append(Mention(UserRef.parse(p["m"]), quiet=bool(p.get("q"))))
            elif "b" in p:
                parts.append(Strong(p["b"]))
            elif "w" in p:
                parts.append(When(datetime.fromisoformat(p["w"]), p["z"]))
            else:
                parts.append(Text(p["t"]))
        actions = tuple(Action(a["label"], a["command"]) for a in data.get("actions", []))
        layout = tuple(Block(kind, start, stop) for kind, start, stop in data.get("layout", []))
        return cls(tuple(parts), actions, layout)


@dataclass(frozen=True, slots=True)
class Action:
    """A one-click shortcut for a command the reader could also type."""

    label: str
    command: str


def _blank(part: Part) -> bool:
    return isinstance(part, Text) and not part.text.strip()


def lines(items: Iterable[Message | str]) -> Message:
    """Join messages with newlines."""
    messages = [Message.of(item) if isinstance(item, str) else item for item in items]
    if any(m.layout for m in messages):  # (rare: the spans must shift, one join at a time)
        out = messages[0] if messages else Message()
        for msg in messages[1:]:
            out = out + Message.of("\n") + msg
        return out
    parts: list[Part] = []
    for i, msg in enumerate(messages):
        parts += [Text("\n"), *msg.parts] if i else msg.parts
    return Message(tuple(parts), tuple(a for m in messages for a in m.actions))


def aside(text: str) -> Message:
    """One line of small print (a `card`'s note) to put before or after a card."""
    return Message((Text(text),), layout=(Block(NOTE, 0, 1),))


def card(
    title: str,
    *body: Message | str | Sequence[Message | str],
    note: Message | str | None = None,
    one_line: bool = False,
) -> Message:
    """A titled message with layout: each `body` argument is a paragraph, a list or tuple of
    them a bulleted list, and `note` the small print at the end (a hint, the command to use).
    As plain text: the title, then each paragraph, item (after "• ") and the note on lines of
    their own; with `one_line`, a short card's plain text is one line ("title — paragraph
    note"; items still take lines). The title is plain words: no mention or time, which a
    heading cannot hold."""
    parts: list[Part] = [Strong(title)]
    layout = [Block(TITLE, 0, 1)]
    actions: list[Action] = []

    def add(kind: str, glue: str, item: Message | str) -> None:
        msg = Message.of(item) if isinstance(item, str) else item
        actions.extend(msg.actions)
        if msg.parts:
            parts.append(Text(glue))
            layout.append(Block(kind, len(parts), len(parts) + len(msg.parts)))
            parts.extend(msg.parts)

    def glue() -> str:
        return "\n" if not one_line else " — " if len(layout) == 1 else " "

    for block in body:
        if isinstance(block, Message | str):
            add(PARAGRAPH, glue(), block)
        else:
            for item in block:
                add(ITEM, "\n• ", item)
    if note is not None:
        add(NOTE, glue(), note)
    return Message(tuple(parts), tuple(actions), tuple(layout))


def plural(count: int, noun: str, many: str | None = None) -> str:
    """"1 session", "2 sessions", "0 sessions": a count with its noun, never "session(s)"."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"
