"""The real `cohortbot shell` process, scripted: a cohort from creation to its second session."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.conftest import run_shell

SCRIPT = """\
# an admin sets up the cohort in its channel
:as root
:in #peer-a
/cohort cohort create Peer A
/cohort cohort schedule weekly tue 14:00 Europe/London for 90m
/cohort cohort members add @ana @ben @cleo @dev
/cohort cohort facilitators add @fay
:as ana
/cohort next
hello everyone
:dm
/cohort ask How do I say no to more work? @here
:as cleo
/cohort ask Is everyone else this tired?
:as ana
:in #peer-a
/cohort cohort archive
!cohort bogus words
:advance 1d6h
:as ben
/cohort action add Draft the intro <!channel>
:advance 7d
:now
"""


def test_a_cohort_from_creation_to_its_second_session(db: Path) -> None:
    result = run_shell(db, SCRIPT, "--clock", "simulated", "--start", "2026-11-30T09:00Z")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    # Chat lines and commands are echoed like a channel transcript.
    assert "[#peer-a] ana: hello everyone" in out
    assert "[#peer-a] root: /cohort cohort create Peer A" in out
    assert "[#peer-a] Created Peer A (id peer-a), linked to this channel." in out
    assert "[private:ana] Next session of Peer A: Tue 1 Dec 2026, 14:00 GMT (90 min)." in out
    # Errors are private, one reason plus the usage line.
    assert "[private:ana] Only an admin can use 'cohort archive'." in out
    assert "[private:ana] Usage: /cohort cohort archive" in out
    assert "[private:ana] Unknown command 'bogus'." in out
    # The anonymous question: a private code, then a channel post naming no one.
    assert any(re.match(r"\[private:ana\] Your code: \w{4}-\w{4}-\w{4}$", line) for line in out)
    # (two of them: a batch of one would wait for company)
    i = out.index("[#peer-a] Anonymous question #1")
    assert out[i + 2] == "[#peer-a] Anonymous question #2"
    assert sorted([out[i + 1], out[i + 3]]) == [
        "[#peer-a] How do I say no to more work? @here", "[#peer-a] Is everyone else this tired?"]
    assert not any(line.startswith("[#peer-a]") and ("ana" in line or "cleo" in line)
                   for line in out[i:i + 4])
    # Reminders before the first session, check-in DM and summary at the second.
    assert "[#peer-a] Reminder: Peer A meets in 1 day — Tue 1 Dec 2026, 14:00 GMT" in out
    assert any(line.startswith("[dm:ben] Check-in time (Peer A)") for line in out)
    assert "[dm:ben] 1. Draft the intro <!channel>" in out
    assert any(line.startswith("[#peer-a] Check-in summary for Peer A: 1 action") for line in out)
    assert any(line.startswith("[#peer-a] Roles for Peer A on Tue 8 Dec 2026") for line in out)
    assert out[-1] == "[clock] Tue 8 Dec 2026, 15:00 UTC"
    # Every bot line says where it went.
    for line in out:
        assert re.match(r"\[(#[\w-]+|dm:\w+|private:\w+|clock|shell)\] ", line), line
    assert "Traceback" not in result.stderr


def test_meta_commands_and_real_clock_refusal(db: Path) -> None:
    result = run_shell(db, ":advance 1h\n:bogus\n:help\n/cohort help\n", "--user", "zoe")
    assert result.returncode == 0, result.stderr
    assert "[shell] :advance needs the simulated clock (--clock simulated)." in result.stdout
    assert "[shell] unknown meta-command ':bogus' (try :help)" in result.stdout
    # zoe is in no cohort: help lists only what anyone may do.
    assert "[private:zoe] What you can do (as anyone):" in result.stdout
    assert "[private:zoe] /cohort tz [Area/City] — show or set your time zone" in result.stdout
    assert "cohort create" not in result.stdout
    assert result.stderr.count("Traceback") == 0, result.stderr
