"""Neutral `Message` → Slack mrkdwn text and Block Kit. Pure: no I/O, no SDK.

User text is literal: `&`, `<` and `>` are escaped (Slack's own escaping), so no `<!channel>`,
`<!here>`, `<@U…>`, `<#C…>` or `<!subteam^…>` can come out of it, and a bare `@here` is broken
with a word joiner for clients that would auto-link it. The only mention that can ping is a
`Mention` part, which only the core creates. Times become Slack date tokens, so every reader
sees their own zone; the fallback is the core's rendering in the zone it chose.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from bot.chat.message import ITEM, NOTE, TITLE, Action, Mention, Message, Strong, Text, When

JSON = dict[str, Any]

WORD_JOINER = "\u2060"
SECTION_LIMIT = 3000  # characters of mrkdwn in one section block (and one context element)
HEADER_LIMIT = 150  # characters of plain text in a header block
CONTEXT_ELEMENTS = 10
MAX_BLOCKS = 50  # per message
BUTTONS_PER_ROW = 5
BUTTON_LABEL_LIMIT = 75
BUTTON_VALUE_LIMIT = 2000
#: Buttons carry the command they run; a click is handled by the listener with this prefix.
COMMAND_ACTION = "cohort-cmd"

_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def escape(text: str) -> str:
    """Literal text for mrkdwn: Slack's three entities, and no bare broadcast words."""
    out = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub(lambda m: "@" + WORD_JOINER + m.group(1), out)


def date_token(when: When) -> str:
    fallback = escape(when.text)
    epoch = int(when.instant.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _strong(text: str) -> str:
    core = text.strip()
    if not core:
        return escape(text)
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()):]
    # An asterisk inside would end the bold early; the look-alike keeps the words intact.
    return f"{escape(lead)}*{escape(core.replace('*', '∗'))}*{escape(trail)}"


def mention(part: Mention) -> str:
    """A Slack mention, which notifies; a quiet one (its name not looked up) as plain text."""
    user = part.user
    if user.platform == "slack" and _USER_ID.match(user.id) and not part.quiet:
        return f"<@{user.id}>"
    return escape("@" + user.id)


def named(message: Message, names: dict[str, str]) -> Message:
    """`message` with each quiet mention as the person's name (plain text: Slack notifies
    everyone a `<@U…>` names, so a quiet mention cannot be one)."""
    return replace(message, parts=tuple(
        Text("@" + names[p.user.id]) if isinstance(p, Mention) and p.quiet
        and p.user.id in names else p for p in message.parts))


def text(message: Message) -> str:
    """The whole message as mrkdwn (also the notification fallback of a block message)."""
    out: list[str] = []
    for part in message.parts:
        if isinstance(part, Mention):
            out.append(mention(part))
        elif isinstance(part, Strong):
            out.append(_strong(part.text))
        elif isinstance(part, When):
            out.append(date_token(part))
        elif isinstance(part, Text):
            out.append(escape(part.text))
    return "".join(out)


def plain(message: Message) -> str:
    """The message as plain text (for plain_text fields, which Slack never parses)."""
    return message.plain()


def _chunks(mrkdwn: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split at line ends into pieces a section block accepts (never inside a token)."""
    pieces: list[str] = []
    current = ""
    for line in mrkdwn.split("\n"):
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:cut])
            line = line[cut:].lstrip(" ")
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()] or ["\u200b"]


def button(label: str, value: str, action_id: str, *, style: str | None = None) -> JSON:
    out: JSON = {
        "type": "button", "action_id": action_id,
        "text": {"type": "plain_text", "text": label[:BUTTON_LABEL_LIMIT] or "…", "emoji": False},
        "value": value[:BUTTON_VALUE_LIMIT],
    }
    if style:
        out["style"] = style
    return out


def action_rows(actions: tuple[Action, ...], *, prefix: str = "") -> list[JSON]:
    """Buttons for `Message.actions`; each value is the command a click runs (`prefix` first,
    e.g. `--cohort peer-a `, so a click in a direct message reaches the right cohort)."""
    rows: list[JSON] = []
    for start in range(0, min(len(actions), 25), BUTTONS_PER_ROW):
        row = actions[start:start + BUTTONS_PER_ROW]
        rows.append({"type": "actions", "elements": [
            button(a.label, prefix + a.command, f"{COMMAND_ACTION}-{start + i}")
            for i, a in enumerate(row)
        ]})
    return rows


def sections(mrkdwn: str) -> list[JSON]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
            for chunk in _chunks(mrkdwn)]


def layout(message: Message) -> list[JSON]:
    """A laid-out message (`card`) as Block Kit: the title a header, each paragraph and each
    run of items sections, the note a context block."""
    out: list[JSON] = []
    for kind, contents in message.blocks():
        if kind == TITLE:
            out.append(header(plain(contents[0])))
        elif kind == ITEM:
            out += sections("\n".join("• " + text(item) for item in contents))
        elif kind == NOTE:
            out.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": chunk}
                for chunk in _chunks(text(contents[0]))[:CONTEXT_ELEMENTS]]})
        else:
            out += sections(text(contents[0]))
    return out


def header(title: str) -> JSON:
    title = title.strip() or "\u200b"
    if len(title) > HEADER_LIMIT:
        title = title[: HEADER_LIMIT - 1] + "…"
    return {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": False}}


def blocks(message: Message, *, prefix: str = "") -> list[JSON] | None:
    """Block Kit for a message with layout or buttons; None when plain text says it all."""
    if not message.actions and not message.layout:
        return None
    rows = action_rows(message.actions, prefix=prefix)
    shaped = layout(message) if message.layout else []
    if not shaped or len(shaped) > MAX_BLOCKS - len(rows):
        shaped = sections(text(message))  # too long to lay out: the plain text in sections
    return (shaped[: MAX_BLOCKS - len(rows)] + rows)[:MAX_BLOCKS]


def payload(message: Message, *, prefix: str = "") -> JSON:
    """Arguments for chat.postMessage / chat.postEphemeral / response_url: text (also the
    notification of a message with blocks), blocks, and no unfurling (a link in an anonymous
    question must not fetch anything)."""
    out: JSON = {"text": text(message), "unfurl_links": False, "unfurl_media": False}
    rendered = blocks(message, prefix=prefix)
    if rendered is not None:
        out["blocks"] = rendered
    return out
