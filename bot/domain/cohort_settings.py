"""A cohort's adjustable policies, with defaults, validation and the `cohort set` vocabulary.

Stored as a JSON object on the cohort; this module is the only reader and writer of it, so an
unknown or malformed stored value falls back to the default instead of breaking a cohort.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any

from bot.domain.errors import UserError
from bot.domain.timeparse import format_duration, parse_duration

DEFAULT_ROLES = ("case-giver", "moderator", "note-taker", "timekeeper")
DEFAULT_REMINDERS_MIN = (24 * 60, 60)

#: The consultation phases of a session, with default minutes.
DEFAULT_PHASES: tuple[tuple[str, int], ...] = (
    ("casting", 5),
    ("case report", 10),
    ("key question", 5),
    ("method choice", 5),
    ("consultation", 25),
    ("closing", 10),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class CohortSettings:
    reminders_to: str = "channel"  # channel | dm | both
    announce_lead_min: int = 72 * 60
    checkin_lead_min: int = 48 * 60
    nudge_lead_min: int = 24 * 60
    question_release: str = "batch"  # batch | immediate
    question_lead_min: int = 60
    #: A scheduled batch is posted only with at least this many questions (cover in numbers).
    min_batch: int = 2
    moderation: bool = False
    #: Facilitators may add and remove members of their cohort (admins always may).
    facilitator_members: bool = True
    #: Set with `cohort set phases`; empty: the default phases, stretched to each session.
    phases: tuple[tuple[str, int], ...] = ()

    def session_phases(self, duration_min: int) -> tuple[tuple[str, int], ...]:
        """The phases of a session of `duration_min`: as set, or the defaults scaled so that
        they fill the session (the consultation takes what rounding leaves)."""
        if self.phases:
            return self.phases
        total = sum(m for _, m in DEFAULT_PHASES)
        scaled = [(n, max(1, round(m * duration_min / total))) for n, m in DEFAULT_PHASES]
        longest = max(range(len(scaled)), key=lambda i: scaled[i][1])
        name, minutes = scaled[longest]
        scaled[longest] = (name, max(1, minutes + duration_min - sum(m for _, m in scaled)))
        return tuple(scaled)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = [list(p) for p in value] if f.name == "phases" else value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CohortSettings:
        base = cls()
        if not data:
            return base
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name == "phases":
                value = tuple((str(n), int(m)) for n, m in value)
                if value == DEFAULT_PHASES:  # (stored by older versions without being set)
                    value = ()
            kwargs[f.name] = value
        return replace(base, **kwargs)


def _minutes(text: str) -> int:
    td = parse_duration(text)
    return max(1, int(td.total_seconds() // 60))


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise UserError(f"'{text}' is not one of: {', '.join(options)}.")
        return value

    return parse


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("on", "yes", "true", "1"):
        return True
    if value in ("off", "no", "false", "0"):
        return False
    raise UserError(f"'{text}' is not on or off.")


def _batch(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 10:
        raise UserError(f"'{text}' is not a number from 1 to 10.")
    return int(text)


def _phases(text: str) -> tuple[tuple[str, int], ...]:
    # "casting=5m, case report=10m, ..." keeps names readable and durations explicit.
    if text.strip().lower() == "default":
        return ()
    out: list[tuple[str, int]] = []
    for chunk in text.split(","):
        name, sep, dur = chunk.partition("=")
        if not sep or not name.strip():
            raise UserError(f"'{chunk.strip()}' should look like 'casting=5m'.")
        out.append((name.strip().lower()[:40], _minutes(dur.strip())))
    if not 1 <= len(out) <= 12:
        raise UserError("A session has between 1 and 12 phases.")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SettingKey:
    name: str  # what `cohort set` takes
    field: str
    parse: Callable[[str], Any]
    help: str


SETTING_KEYS: tuple[SettingKey, ...] = (
    SettingKey("reminders-to", "reminders_to", _choice("channel", "dm", "both"),
               "where reminders go: channel, dm or both"),
    SettingKey("announce-lead", "announce_lead_min", _minutes,
               "how long before a session the roles are announced (e.g. 72h)"),
    SettingKey("checkin-lead", "checkin_lead_min", _minutes,
               "how long before a session members get their action check-in (e.g. 48h)"),
    SettingKey("nudge-lead", "nudge_lead_min", _minutes,
               "how long before a session an unanswered check-in is nudged once (e.g. 24h)"),
    SettingKey("question-release", "question_release", _choice("batch", "immediate"),
               "anonymous questions posted in a batch before the session, or immediately"),
    SettingKey("question-lead", "question_lead_min", _minutes,
               "how long before a session the question batch is released (e.g. 1h)"),
    SettingKey("min-batch", "min_batch", _batch,
               "the fewest questions a scheduled batch posts (fewer wait for the next one)"),
    SettingKey("moderation", "moderation", _bool,
               "on: a facilitator approves each anonymous question first"),
    SettingKey("facilitator-members", "facilitator_members", _bool,
               "on: facilitators may add and remove members (admins always may)"),
    SettingKey("phases", "phases", _phases,
               "session phases, e.g. 'casting=5m, case report=10m, consultation=25m', or "
               "'default'"),
)

SETTING_NAMES = tuple(k.name for k in SETTING_KEYS)


def apply_setting(settings: CohortSettings, key: str, value: str) -> CohortSettings:
    for spec in SETTING_KEYS:
        if spec.name == key.lower():
            return replace(settings, **{spec.field: spec.parse(value)})
    raise UserError(f"Unknown setting '{key}'. Settings: {', '.join(SETTING_NAMES)}.")


def consequence(settings: CohortSettings, key: str) -> str | None:
    """What a setting's new value costs, for the confirmation, when it weakens anonymity."""
    if key == "question-release" and settings.question_release == "immediate":
        return ("Each question is now posted the moment it is asked (or approved): anyone "
                "watching the channel can match it to whoever was around then. Batches give "
                "that cover back: 'question-release batch'.")
    if key == "min-batch" and settings.min_batch == 1:
        return ("A batch of one question gives its asker no cover: anyone can match it to "
                "whoever was around when it was asked.")
    return None


def describe_setting(settings: CohortSettings, key: str) -> str:
    for spec in SETTING_KEYS:
        if spec.name == key:
            value = getattr(settings, spec.field)
            if spec.field.endswith("_min"):
                return format_duration(timedelta(minutes=value))
            if spec.field == "phases":
                if not value:
                    return ("default (" + ", ".join(n for n, _ in DEFAULT_PHASES)
                            + "), stretched to the session's length")
                return ", ".join(f"{n}={m}m" for n, m in value)
            if isinstance(value, bool):
                return "on" if value else "off"
            return str(value)
    raise KeyError(key)
