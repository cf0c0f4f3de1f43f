"""Neutral `Message` → terminal text. Mentions print as @name; nothing here can ping anyone."""

from __future__ import annotations

from bot.chat.message import Mention, Message, Strong, When


def render(message: Message) -> str:
    out: list[str] = []
    for part in message.parts:
        if isinstance(part, Mention):
            out.append("@" + part.user.id)
        elif isinstance(part, Strong | When):
            out.append(part.text)
        else:
            out.append(part.text)
    return "".join(out)


def prefixed(prefix: str, text: str) -> str:
    """Every line carries its destination, so a script can tell a channel post from a reply."""
    return "\n".join(f"{prefix} {line}" for line in (text.splitlines() or [""]))
