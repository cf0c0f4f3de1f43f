"""Modals and the App Home as Block Kit, and their submissions read back. Pure: no I/O.

A modal remembers where it was opened (channel, `--cohort` flag, response_url) in its
`private_metadata`, so its submission runs the command as if typed there. What a submission
turns into is always ordinary command text for the core (`ask …`, `action add …`,
`--cohort peer-a action done 2 note`): the modals are a way of typing, not new features.

The ask form ends by showing the core's reply (a question's code) in the form itself: the
code is then seen only by its author and kept nowhere beside their name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from adapters.slack import render
from bot.chat.message import Message
from bot.service.api import CheckinItem

JSON = dict[str, Any]

ASK = "cohort-ask"
ASK_PREVIEW = "cohort-ask-preview"
ASK_SENT = "cohort-ask-sent"  # "Sending…", then the reply: nothing to submit
ACTION_ADD = "cohort-action-add"
CHECKIN = "cohort-checkin"
HOME_ACTION = "cohort-home"  # buttons on the App Home: value says which

MAX_QUESTION = 2000
MAX_ACTION = 300
MAX_NOTE = 300

#: Check-in answers: (the value in the form, the command word, the label).
ANSWERS = (("done", "done", "Done"), ("partly", "partly", "Partly"),
           ("notyet", "notyet", "Not yet"), ("dropped", "drop", "Dropped"))
_COMMAND_WORD = {value: word for value, word, _ in ANSWERS}

ANONYMITY_NOTE = (
    "Your name is never stored or shown: the question is kept without any link to you and "
    "posted to the cohort's channel as \"Anonymous question #N\", by default together with the "
    "other questions shortly before the session, in random order, so its timing gives nothing "
    "away. You get a one-time code, shown only to you in this form and never sent by direct "
    "message, to check on it or retract it; nobody else can."
)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a modal was opened: it submits as if the command were typed there."""

    channel: str | None = None
    flag: str = ""  # "--cohort peer-a " or ""
    response_url: str | None = None

    def dump(self, **extra: Any) -> str:
        data: JSON = {"c": self.channel, "f": self.flag, "r": self.response_url, **extra}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str | None) -> tuple[Origin, JSON]:
        try:
            data = json.loads(raw or "{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        channel, flag, url = data.get("c"), data.get("f"), data.get("r")
        return cls(channel if isinstance(channel, str) else None,
                   flag if isinstance(flag, str) else "",
                   url if isinstance(url, str) else None), data


def _plain(text: str) -> JSON:
    return {"type": "plain_text", "text": text, "emoji": False}


def _mrkdwn(text: str) -> JSON:
    return {"type": "mrkdwn", "text": text}


def _context(text: str) -> JSON:
    return {"type": "context", "elements": [_mrkdwn(text)]}


# ---------------------------------------------------------------------------- ask


def ask_modal(origin: Origin, *, initial: str = "") -> JSON:
    element: JSON = {"type": "plain_text_input", "action_id": "text", "multiline": True,
                     "max_length": MAX_QUESTION, "focus_on_load": True,
                     "placeholder": _plain("What would you like to ask the group?")}
    if initial:
        element["initial_value"] = initial
    return {
        "type": "modal", "callback_id": ASK, "title": _plain("Ask anonymously"),
        "submit": _plain("Preview"), "close": _plain("Cancel"),
        "private_metadata": origin.dump(),
        "blocks": [
            {"type": "input", "block_id": "question", "label": _plain("Your question"),
             "element": element},
            _context(render.escape(ANONYMITY_NOTE)),
        ],
    }


def question_of(view: JSON) -> str:
    value = _state(view).get("question", {}).get("text", {}).get("value")
    return str(value or "").strip()


def ask_preview(origin: Origin, question: str) -> JSON:
    """How the question will look in the channel; submitting it sends it."""
    shown = render.text(Message.of(question))
    quoted = "\n".join("> " + line for line in shown.split("\n"))
    blocks: list[JSON] = [
        {"type": "section", "text": _mrkdwn("This is how it will look in the cohort's channel:")},
        {"type": "section", "text": _mrkdwn("*Anonymous question #N*")},
    ]
    blocks += [{"type": "section", "text": _mrkdwn(chunk)}
               for chunk in render._chunks(quoted, 2900)]
    blocks.append(_context(render.escape(ANONYMITY_NOTE)))
    return {
        "type": "modal", "callback_id": ASK_PREVIEW, "title": _plain("Preview"),
        "submit": _plain("Send anonymously"), "close": _plain("Back"),
        "private_metadata": origin.dump(q=question), "blocks": blocks,
    }


def ask_sending() -> JSON:
    """What the form shows while the question is sent (the submission's instant answer)."""
    return _ask_sent([{"type": "section", "text": _plain("Sending your question…")}])


def ask_sent(reply: Message) -> JSON:
    """The core's answer (the question's code, or why it was not taken), shown in the form."""
    blocks: list[JSON] = [{"type": "section", "text": _mrkdwn(chunk)}
                          for chunk in render._chunks(render.text(reply))]
    return _ask_sent(blocks[:100])


def _ask_sent(blocks: list[JSON]) -> JSON:
    # clear_on_close: closing it closes the whole form, not back to the question's input.
    return {
        "type": "modal", "callback_id": ASK_SENT, "title": _plain("Ask anonymously"),
        "close": _plain("Close"), "clear_on_close": True, "blocks": blocks,
    }


def previewed_question(view: JSON) -> tuple[Origin, str]:
    origin, data = Origin.load(view.get("private_metadata"))
    q = data.get("q")
    return origin, q.strip() if isinstance(q, str) else ""


# ---------------------------------------------------------------------------- action add


def action_modal(origin: Origin) -> JSON:
    return {
        "type": "modal", "callback_id": ACTION_ADD, "title": _plain("Add an action"),
        "submit": _plain("Add"), "close": _plain("Cancel"), "private_metadata": origin.dump(),
        "blocks": [
            {"type": "input", "block_id": "action", "label": _plain("Your action"),
             "element": {"type": "plain_text_input", "action_id": "text",
                         "max_length": MAX_ACTION, "focus_on_load": True,
                         "placeholder": _plain("One small thing to try before the next session")}},
            _context("You report back on it in the check-in before the next session."),
        ],
    }


def action_of(view: JSON) -> str:
    value = _state(view).get("action", {}).get("text", {}).get("value")
    return " ".join(str(value or "").split())


# ---------------------------------------------------------------------------- check-in


def _option(value: str, label: str) -> JSON:
    return {"text": _plain(label), "value": value}


def checkin_modal(origin: Origin, items: list[CheckinItem]) -> JSON:
    """One block per open action: done / partly / not yet / dropped, and a note."""
    items = items[:30]  # 3 blocks each, within a modal's 100
    blocks: list[JSON] = [{"type": "section", "text": _mrkdwn(
        "How did your actions go? You can change an answer until the session starts.")}]
    cohorts = {i.cohort for i in items}
    for n, item in enumerate(items):
        where = f"{item.cohort}: " if len(cohorts) > 1 else ""
        options = [_option(value, label) for value, _, label in ANSWERS]
        radio: JSON = {"type": "radio_buttons", "action_id": "answer", "options": options}
        chosen = next((o for o in options if o["value"] == item.answer), None)
        if chosen is not None:
            radio["initial_option"] = chosen
        note: JSON = {"type": "plain_text_input", "action_id": "note", "max_length": MAX_NOTE,
                      "placeholder": _plain("A note (optional)")}
        if item.note:
            note["initial_value"] = item.note[:MAX_NOTE]
        label = f"{where}{item.number}. {item.text}"
        blocks += [
            {"type": "input", "block_id": f"answer-{n}", "optional": True,
             "label": _plain(label[:2000]), "element": radio},
            {"type": "input", "block_id": f"note-{n}", "optional": True,
             "label": _plain("Note"), "element": note},
        ]
    keys = [[i.cohort, i.number, i.answer, i.note] for i in items]
    return {
        "type": "modal", "callback_id": CHECKIN, "title": _plain("Check-in"),
        "submit": _plain("Save"), "close": _plain("Cancel"),
        "private_metadata": origin.dump(k=keys), "blocks": blocks,
    }


def checkin_commands(view: JSON) -> tuple[Origin, list[str]]:
    """The `action …` commands a check-in submission stands for: one per changed answer."""
    origin, data = Origin.load(view.get("private_metadata"))
    state = _state(view)
    out: list[str] = []
    raw_keys = data.get("k")
    keys: list[Any] = raw_keys if isinstance(raw_keys, list) else []
    for n, key in enumerate(keys):
        if not (isinstance(key, list) and len(key) == 4):
            continue
        cohort, number, before, old_note = key
        selected = (state.get(f"answer-{n}", {}).get("answer", {}) or {}).get("selected_option")
        answer = selected.get("value") if isinstance(selected, dict) else None
        note = " ".join(str((state.get(f"note-{n}", {}).get("note", {}) or {}).get("value")
                            or "").split())
        if answer not in _COMMAND_WORD or (answer == before and note == (old_note or "")):
            continue
        text = f"--cohort {cohort} action {_COMMAND_WORD[answer]} {int(number)}"
        out.append(f"{text} {note}" if note else text)
    return origin, out


def _state(view: JSON) -> dict[str, dict[str, JSON]]:
    values = (view.get("state") or {}).get("values") or {}
    return values if isinstance(values, dict) else {}


# ---------------------------------------------------------------------------- App Home


def home(sections: list[tuple[str, Message]], *, has_actions: bool, prefix: str) -> JSON:
    """The App Home: the replies of existing commands under headings, and shortcuts."""
    blocks: list[JSON] = [{"type": "header", "text": _plain("Your cohort")}]
    for heading, message in sections:
        blocks.append({"type": "section", "text": _mrkdwn(f"*{render.escape(heading)}*")})
        blocks += [{"type": "section", "text": _mrkdwn(chunk)}
                   for chunk in render._chunks(render.text(message))]
        blocks.append({"type": "divider"})
    buttons = [render.button("Ask anonymously", "ask", f"{HOME_ACTION}-ask", style="primary"),
               render.button("Add an action", "action add", f"{HOME_ACTION}-action")]
    if has_actions:
        buttons.insert(0, render.button("Check in", "checkin", f"{HOME_ACTION}-checkin"))
    buttons.append(render.button("Refresh", "refresh", f"{HOME_ACTION}-refresh"))
    blocks.append({"type": "actions", "elements": buttons})
    blocks.append(_context("Everything here also works as a command: "
                           f"`{render.escape(prefix)} help`."))
    return {"type": "home", "blocks": blocks[:100]}
