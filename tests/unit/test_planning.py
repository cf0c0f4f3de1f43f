"""Which notifications a session brings and their keys."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain.cohort_settings import CohortSettings, apply_setting
from bot.domain.planning import next_step, notice_times, phase_notices, session_notices

START = datetime.fromisoformat("2026-12-01T14:00:00+00:00")


def test_a_session_brings_announce_checkin_nudge_reminders_release_and_summary() -> None:
    notices = session_notices(session_id=7, rev=0, starts_at=START, duration=timedelta(minutes=90),
                              settings=CohortSettings(), reminder_offsets_min=[1440, 60])
    by_key = {n.key: n for n in notices}
    assert set(by_key) == {"announce:7", "checkin:7.0", "nudge:7.0", "reminder:7.0:1440",
                           "reminder:7.0:60", "release:7.0", "summary:7"}
    assert by_key["announce:7"].due_at == START - timedelta(hours=72)
    assert by_key["checkin:7.0"].due_at == START - timedelta(hours=48)
    assert by_key["nudge:7.0"].due_at == START - timedelta(hours=24)
    assert by_key["summary:7"].stale_at == START + timedelta(minutes=90)
    assert all(n.stale_at > n.due_at for n in notices)
    assert [n.due_at for n in notices] == sorted(n.due_at for n in notices)


def test_notices_sharing_an_instant_are_ordered_by_key_and_named_per_session() -> None:
    # The nudge and the 24 h reminder fall due together, as do the 48 h one and the check-in.
    settings = CohortSettings()
    offsets = [2880, 1440, 60]
    times = notice_times(starts_at=START, duration=timedelta(minutes=90), settings=settings,
                         reminder_offsets_min=offsets)
    for sid in (3, 12):
        notices = session_notices(session_id=sid, rev=2, starts_at=START,
                                  duration=timedelta(minutes=90), settings=settings,
                                  reminder_offsets_min=offsets)
        assert notices == sorted(notices, key=lambda n: (n.due_at, n.key))
        assert notices == [t.named(sid, 2) for t in times]
    step = next_step(times, at_or_after=START - timedelta(hours=47))
    assert [t.named(3, 2).key for t in step] == ["nudge:3.2", "reminder:3.2:1440"]


def test_a_moved_session_gets_new_reminder_keys_but_keeps_its_announcement() -> None:
    a = {n.key for n in session_notices(session_id=7, rev=0, starts_at=START,
                                        duration=timedelta(hours=1), settings=CohortSettings(),
                                        reminder_offsets_min=[60])}
    b = {n.key for n in session_notices(session_id=7, rev=1, starts_at=START,
                                        duration=timedelta(hours=1), settings=CohortSettings(),
                                        reminder_offsets_min=[60])}
    assert "announce:7" in a & b and "reminder:7.1:60" in b - a


def test_immediate_release_plans_no_batch() -> None:
    settings = apply_setting(CohortSettings(), "question-release", "immediate")
    keys = {n.kind for n in session_notices(session_id=1, rev=0, starts_at=START,
                                            duration=timedelta(hours=1), settings=settings,
                                            reminder_offsets_min=[])}
    assert "release" not in keys


def test_phase_prompts_follow_the_configured_durations() -> None:
    phases = (("a", 5), ("b", 10), ("c", 5))
    notices = phase_notices(session_id=3, run=1, start_phase=0, at=START, phases=phases)
    assert [(n.key, n.due_at - START) for n in notices] == [
        ("phase:3:1:1", timedelta(minutes=5)),
        ("phase:3:1:2", timedelta(minutes=15)),
        ("phase:3:1:end", timedelta(minutes=20)),
    ]
