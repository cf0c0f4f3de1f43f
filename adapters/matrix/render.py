"""Neutral `Message` → Matrix `m.room.message` content.

A laid-out message (`card`) becomes HTML with the same structure as Slack's blocks: the
title a heading, paragraphs, items a list, the note in italics; `body` is the plain text.

Every event carries `m.mentions`: Matrix clients then notify only the users listed there and
ignore names or `@room` in the body, so user text can never ping anyone (and a quiet mention
is a pill that notifies nobody). Mentions render as
pills (`https://matrix.to/#/@user:server` links) with a plain-text fallback.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from bot.chat.message import ITEM, NOTE, TITLE, Mention, Message, Part, Strong

HTML_FORMAT = "org.matrix.custom.html"


def pill_url(user_id: str) -> str:
    return "https://matrix.to/#/" + quote(user_id, safe="@:")


def render(
    message: Message,
    *,
    notice: bool = False,
    ping: bool = False,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """The event content. `notice`: an `m.notice` (replies to commands; clients do not notify
    for it); `ping`: notify the mentioned users (reminders, announcements); `reply_to`: the
    event id this answers."""
    rich = _layout(message) if message.layout else _rich(message.parts)
    mentioned = sorted({m.id for m in message.pings()}) if ping else []
    content: dict[str, Any] = {
        "msgtype": "m.notice" if notice else "m.text",
        "body": _plain(message.parts),
        "format": HTML_FORMAT,
        "formatted_body": rich,
        "m.mentions": {"user_ids": mentioned} if mentioned else {},
    }
    if reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def _rich(parts: Iterable[Part]) -> str:
    rich: list[str] = []
    for part in parts:
        if isinstance(part, Mention):
            user_id = part.user.id
            rich.append(f'<a href="{html.escape(pill_url(user_id))}">{html.escape(user_id)}</a>')
        elif isinstance(part, Strong):
            rich.append(f"<strong>{_html_text(part.text)}</strong>")
        else:
            rich.append(_html_text(part.text))
    return "".join(rich)


def _layout(message: Message) -> str:
    out: list[str] = []
    for kind, contents in message.blocks():
        if kind == TITLE:
            out.append(f"<h4>{_html_text(_plain(contents[0].parts))}</h4>")
        elif kind == ITEM:
            out.append("<ul>" + "".join(f"<li>{_rich(c.parts)}</li>" for c in contents) + "</ul>")
        elif kind == NOTE:
            out.append(f"<p><em>{_rich(contents[0].parts)}</em></p>")
        else:
            out.append(f"<p>{_rich(contents[0].parts)}</p>")
    return "".join(out)


def _plain(parts: Iterable[Part]) -> str:
    """Plain text, with mentions as the user ids they are."""
    return "".join(p.user.id if isinstance(p, Mention) else p.text for p in parts)


def _html_text(text: str) -> str:
    return html.escape(text, quote=False).replace("\n", "<br>")
