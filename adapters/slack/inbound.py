"""Slack payloads → `Invocation`s (and channel `Move`s). Pure: no I/O, no SDK, no business rules.

Slack encodes the text of slash commands and messages: the user's own `&`, `<` and `>` arrive
as `&amp;`, `&lt;` and `&gt;`, and what the client turned into markup arrives as control
sequences (`<@U123|ana>`, `<!channel>`, `<#C123|general>`, `<https://…|label>`). `decode`
turns that into literal text exactly once: user mentions stay `<@U123>` (the form the grammar
reads), everything else becomes the words the user saw. Modal input arrives raw and is not
decoded. Either way the renderer escapes it again on the way out, so nothing can ping anyone.

Every invocation carries an event id so that a redelivery is dropped by the core: Slack's
`event_id` for events, and for commands and interactions the `trigger_id` Slack issues once per
user action (a redelivered envelope carries the same one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.domain.refs import ChannelRef, UserRef
from bot.service.api import Invocation

PLATFORM = "slack"
JSON = dict[str, Any]

_CONTROL = re.compile(r"<([^<>]*)>")
_COHORT_FLAG = re.compile(r"^\s*(--cohort(?:=|\s+)\S+)\s*(.*)$", re.DOTALL)


def _control(inner: str) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f"<{target}>"  # a person: kept in the grammar's mention form
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        name = target[1:]
        if name.startswith("subteam^"):
            return label or "@group"
        if name.startswith("date^"):
            return label or ""
        return label or "@" + name.split("^", 1)[0]
    return label or target


def decode(encoded: str) -> str:
    """Slack's message encoding → literal text (user mentions as `<@U…>`)."""
    out: list[str] = []
    pos = 0
    for m in _CONTROL.finditer(encoded):
        out.append(_unescape(encoded[pos:m.start()]))
        out.append(_control(_unescape(m.group(1))))
        pos = m.end()
    out.append(_unescape(encoded[pos:]))
    return "".join(out)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def channel_ref(channel_id: str | None) -> ChannelRef | None:
    """The place a command came from; None for a direct conversation with the bot."""
    if not channel_id or channel_id.startswith("D"):
        return None
    return ChannelRef(PLATFORM, channel_id)


@dataclass(frozen=True, slots=True)
class Split:
    """A command's text split into an optional `--cohort <id>` and the rest."""

    flag: str  # "" or "--cohort peer-a "
    rest: str

    @property
    def words(self) -> str:
        return " ".join(self.rest.lower().split())


def split_cohort(text: str) -> Split:
    m = _COHORT_FLAG.match(text)
    if m is None:
        return Split("", text.strip())
    return Split(" ".join(m.group(1).split()) + " ", m.group(2).strip())


def user_of(payload: JSON) -> UserRef:
    user = payload.get("user")
    ident = user.get("id") if isinstance(user, dict) else payload.get("user_id") or user
    if not isinstance(ident, str) or not ident:
        raise ValueError("payload without a user")
    return UserRef(PLATFORM, ident)


def command(payload: JSON, *, tenant: str) -> Invocation:
    """A slash command (`/cohort …`). Only the caller sees what they typed."""
    return Invocation(
        user=user_of(payload), text=decode(str(payload.get("text") or "")),
        channel=channel_ref(payload.get("channel_id")),
        event_id=_trigger_event_id("cmd", payload), seen_by_channel=False, tenant=tenant,
    )


def _trigger_event_id(kind: str, payload: JSON) -> str | None:
    trigger = payload.get("trigger_id")
    return f"slack:{kind}:{trigger}" if isinstance(trigger, str) and trigger else None


def direct_message(body: JSON, *, command_word: str, tenant: str) -> Invocation | None:
    """A message a person sent the bot in its direct conversation, as a command.

    `next` and `/cohort next` (a slash command typed with a leading space arrives as a
    message) both work. Anything that is not a person's new message in a DM is None.

    The message stays in the conversation's history under its sender's name, and a bot
    cannot delete a person's message: it is `kept`, so the core refuses the commands that
    would tie its sender to an anonymous question (`ask …`, `question <code>`, …)."""
    event = body.get("event") or {}
    if event.get("type") != "message" or event.get("channel_type") != "im":
        return None
    if event.get("bot_id") or event.get("subtype") or not event.get("user"):
        return None
    raw = decode(str(event.get("text") or "")).strip()
    for prefix in (f"/{command_word}", f"!{command_word}"):
        if raw.lower() == prefix or raw.lower().startswith(prefix + " "):
            raw = raw[len(prefix):].strip()
            break
    event_id = body.get("event_id")
    return Invocation(
        user=UserRef(PLATFORM, str(event["user"])), text=raw, channel=None,
        event_id=f"slack:ev:{event_id}" if event_id else None, seen_by_channel=False,
        kept=True, tenant=tenant,
    )


@dataclass(frozen=True, slots=True)
class Move:
    """A person left (or was removed from) a channel, or joined it."""

    user: UserRef
    place: ChannelRef
    present: bool


_MOVES = {"member_joined_channel": True, "member_left_channel": False}


def move(event: JSON, *, bot_user: str | None) -> Move | None:
    """A `member_joined_channel` / `member_left_channel` event (a person removed by someone
    else arrives as `member_left_channel` too). None for the bot's own moves, for a
    direct conversation, and for anything else."""
    present = _MOVES.get(str(event.get("type")))
    user, channel = event.get("user"), event.get("channel")
    if present is None or not isinstance(user, str) or not user or user == bot_user:
        return None
    place = channel_ref(channel) if isinstance(channel, str) else None
    if place is None:
        return None
    return Move(UserRef(PLATFORM, user), place, present)


def action_channel(payload: JSON) -> str | None:
    """The conversation a clicked message lives in (None for App Home and modals)."""
    container = payload.get("container") or {}
    channel = payload.get("channel") or {}
    ident = container.get("channel_id") or (channel.get("id") if isinstance(channel, dict)
                                            else None)
    return ident if isinstance(ident, str) and ident else None


def button_click(payload: JSON, action: JSON, index: int = 0, *, tenant: str) -> Invocation:
    """A click on a button that runs a command (`Message.actions`), as the clicking user."""
    trigger = payload.get("trigger_id") or action.get("action_ts")
    return Invocation(
        user=user_of(payload), text=str(action.get("value") or ""),
        channel=channel_ref(action_channel(payload)),
        event_id=f"slack:act:{trigger}:{index}" if trigger else None, tenant=tenant,
    )
