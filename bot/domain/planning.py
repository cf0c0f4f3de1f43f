"""Which notifications a session brings, when each falls due and when it goes stale.

Pure: given a session and its cohort's policies, list `PlannedNotice`s. Each has a key that
is unique for ever (it names the session, its revision and the offset), so planning the same
session twice, or on two instances, can never produce a second notification.

A session's notices form a chain of *steps*: the notices sharing one due instant. Only the
next step of each session is stored; firing a step plans the one after it (`steps_after`).
That keeps one pending row per session instead of one per notice, and a bot that was down
still walks every step it missed, each sent late or dropped as stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from bot.domain.cohort_settings import CohortSettings

ANNOUNCE, REMINDER, CHECKIN, NUDGE, SUMMARY, RELEASE, PROMPT, PHASE, POST = (
    "announce", "reminder", "checkin", "nudge", "summary", "release", "prompt", "phase", "post",
)
#: What the planner derives from a session and its cohort's settings, and so may void and plan
#: again after a change. A prompt is a facilitator's own words queued for a session: it stays.
DERIVED = (ANNOUNCE, REMINDER, CHECKIN, NUDGE, SUMMARY, RELEASE, PHASE, POST)


@dataclass(frozen=True, kw_only=True, slots=True)
class PlannedNotice:
    key: str
    kind: str
    due_at: datetime
    stale_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class NoticeTime:
    """A notice of a session at a given start, before it is named for one session: what
    `notice_times` returns, the same for every session of that start and policy."""

    kind: str
    due_at: datetime
    stale_at: datetime
    per_revision: bool = True  # the key names the session's revision (a move re-sends it)
    suffix: str = ""
    payload: dict[str, Any] = field(default_factory=dict)

    def named(self, session_id: int, rev: int) -> PlannedNotice:
        sid = f"{session_id}.{rev}" if self.per_revision else str(session_id)
        return PlannedNotice(key=f"{self.kind}:{sid}{self.suffix}", kind=self.kind,
                             due_at=self.due_at, stale_at=self.stale_at,
                             payload=dict(self.payload))


def notice_times(
    *,
    starts_at: datetime,
    duration: timedelta,
    settings: CohortSettings,
    reminder_offsets_min: Sequence[int],
) -> list[NoticeTime]:
    """Every notice of a session starting at `starts_at`, sorted as `session_notices`."""
    ends_at = starts_at + duration
    notices = [
        # Roles are fixed once (not per revision): a moved session keeps its cast.
        NoticeTime(kind=ANNOUNCE, per_revision=False,
                   due_at=starts_at - timedelta(minutes=settings.announce_lead_min),
                   stale_at=starts_at),
        NoticeTime(kind=CHECKIN, due_at=starts_at - timedelta(minutes=settings.checkin_lead_min),
                   stale_at=starts_at),
        NoticeTime(kind=NUDGE, due_at=starts_at - timedelta(minutes=settings.nudge_lead_min),
                   stale_at=starts_at),
        NoticeTime(kind=SUMMARY, per_revision=False, due_at=starts_at, stale_at=ends_at),
    ]
    for offset in reminder_offsets_min:
        notices.append(NoticeTime(
            kind=REMINDER, suffix=f":{offset}", due_at=starts_at - timedelta(minutes=offset),
            stale_at=starts_at, payload={"offset_min": offset},
        ))
    if settings.question_release == "batch":
        notices.append(NoticeTime(
            kind=RELEASE, due_at=starts_at - timedelta(minutes=settings.question_lead_min),
            stale_at=ends_at,
        ))
    # Within a session, (kind, suffix) orders notices of one instant as their keys do.
    return sorted(notices, key=lambda n: (n.due_at, n.kind, n.suffix))


def session_notices(
    *,
    session_id: int,
    rev: int,
    starts_at: datetime,
    duration: timedelta,
    settings: CohortSettings,
    reminder_offsets_min: Sequence[int],
) -> list[PlannedNotice]:
    """Every notification of one session, sorted by due instant (then key)."""
    return [n.named(session_id, rev) for n in notice_times(
        starts_at=starts_at, duration=duration, settings=settings,
        reminder_offsets_min=reminder_offsets_min)]


def longest_lead(settings: CohortSettings, reminder_offsets_min: Sequence[int]) -> timedelta:
    """How long before its start a session's first notice can fall due."""
    return timedelta(minutes=max(settings.announce_lead_min, settings.checkin_lead_min,
                                 settings.nudge_lead_min, settings.question_lead_min,
                                 *reminder_offsets_min))


class _Due(Protocol):
    @property
    def due_at(self) -> datetime: ...


N = TypeVar("N", bound=_Due)


def next_step(notices: Sequence[N], *, at_or_after: datetime | None = None,
              after: datetime | None = None) -> list[N]:
    """The notices of the first step due at or after `at_or_after` (or strictly after
    `after`); `notices` sorted as `session_notices` returns them. Empty when none is left."""
    for step in steps(notices):
        due = step[0].due_at
        if (at_or_after is None or due >= at_or_after) and (after is None or due > after):
            return step
    return []


def steps(notices: Sequence[N]) -> list[list[N]]:
    """`notices` (sorted by due instant) grouped into steps that share a due instant."""
    out: list[list[N]] = []
    for n in notices:
        if out and out[-1][0].due_at == n.due_at:
            out[-1].append(n)
        else:
            out.append([n])
    return out


def phase_notices(
    *, session_id: int, run: int, start_phase: int, at: datetime,
    phases: Sequence[tuple[str, int]],
) -> list[PlannedNotice]:
    """Timed prompts for the phases after `start_phase`, which begins at `at`."""
    out: list[PlannedNotice] = []
    t = at
    for i in range(start_phase, len(phases)):
        if i > start_phase:
            out.append(PlannedNotice(
                key=f"phase:{session_id}:{run}:{i}", kind=PHASE, due_at=t,
                stale_at=t + timedelta(minutes=phases[i][1]), payload={"phase": i, "run": run},
            ))
        t += timedelta(minutes=phases[i][1])
    out.append(PlannedNotice(
        key=f"phase:{session_id}:{run}:end", kind=PHASE, due_at=t,
        stale_at=t + timedelta(minutes=30), payload={"phase": len(phases), "run": run},
    ))
    return out
