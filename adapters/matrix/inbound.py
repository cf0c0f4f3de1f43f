"""Matrix room events → the text of a command.

Pure functions over the event's JSON (`source` in matrix-nio), so they are tested with
recorded events. A command is a message whose text, once any reply fallback is stripped,
starts with the prefix and command word (`!cohort …`). Pills in the HTML body become the
user ids they point at, so `@Ana` typed with autocomplete reaches the core as
`@ana:example.org`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

_PILL = re.compile(r"^https://matrix\.to/#/(@[^/?]+)")


def command_text(event: dict[str, Any], command: str) -> str | None:
    """What follows `command` (e.g. "!cohort") in this message event, or None when the
    event is not a command: not a plain text message, an edit, or other text."""
    content = event.get("content")
    if not isinstance(content, dict) or content.get("msgtype") != "m.text":
        return None
    relates = content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
        return None  # an edit: the original was (or was not) a command already
    formatted = content.get("formatted_body")
    if content.get("format") == "org.matrix.custom.html" and isinstance(formatted, str):
        text = html_to_text(formatted)
    else:
        body = content.get("body")
        if not isinstance(body, str):
            return None
        text = strip_reply_fallback(body)
    match = re.match(rf"\s*{re.escape(command)}(?:\s+|$)", text, re.IGNORECASE)
    return text[match.end():].strip() if match else None


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted lines (`> …`) a reply starts with, and the blank line after them."""
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i and i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


def html_to_text(formatted: str) -> str:
    """The text of an HTML body: pills as user ids, `<mx-reply>` dropped, line breaks kept."""
    parser = _TextOf()
    parser.feed(formatted)
    parser.close()
    return "".join(parser.out)


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0  # inside <mx-reply>
        self._pill: list[bool] = []  # per open <a>: whether it is a pill being replaced

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mx-reply":
            self._skip += 1
        elif self._skip:
            return
        elif tag == "br" or (tag in ("p", "div", "li") and not self._at_line_start()):
            self.out.append("\n")
        elif tag == "a":
            href = unquote(dict(attrs).get("href") or "")
            match = _PILL.match(href)
            if match:
                self.out.append(match[1])
            self._pill.append(bool(match))

    def _at_line_start(self) -> bool:
        return not self.out or self.out[-1].endswith("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply":
            self._skip = max(self._skip - 1, 0)
        elif tag == "a" and self._pill and not self._skip:
            self._pill.pop()

    def handle_data(self, data: str) -> None:
        if not self._skip and not (self._pill and self._pill[-1]):
            self.out.append(data)
