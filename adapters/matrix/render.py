"""Neutral `Message` → Matrix `m.room.message` content.

Every event carries `m.mentions`: Matrix clients then notify only the users listed there and
ignore names or `@room` in the body, so user text can never ping anyone. Mentions render as
pills (`https://matrix.to/#/@user:server` links) with a plain-text fallback.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from bot.chat.message import Mention, Message, Strong, When

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
    plain: list[str] = []
    rich: list[str] = []
    for part in message.parts:
        if isinstance(part, Mention):
            user_id = part.user.id
            plain.append(user_id)
            rich.append(f'<a href="{html.escape(pill_url(user_id))}">{html.escape(user_id)}</a>')
        elif isinstance(part, Strong):
            plain.append(part.text)
            rich.append(f"<strong>{_html_text(part.text)}</strong>")
        elif isinstance(part, When):
            plain.append(part.text)
            rich.append(_html_text(part.text))
        else:
            plain.append(part.text)
            rich.append(_html_text(part.text))
    mentioned = sorted({m.id for m in message.mentions()}) if ping else []
    content: dict[str, Any] = {
        "msgtype": "m.notice" if notice else "m.text",
        "body": "".join(plain),
        "format": HTML_FORMAT,
        "formatted_body": "".join(rich),
        "m.mentions": {"user_ids": mentioned} if mentioned else {},
    }
    if reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def _html_text(text: str) -> str:
    return html.escape(text, quote=False).replace("\n", "<br>")
