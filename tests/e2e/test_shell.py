"""The real `cohortbot shell` process, scripted: a cohort from creation to its second session."""

from __future__ import annotations

import re
import select
import signal
import subprocess
from pathlib import Path

from tests.e2e.conftest import COHORTBOT, env_for, run_shell

ROOT = Path(__file__).resolve().parents[2]

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
    assert "[private:ana] Usage: /cohort cohort archive [confirm]" in out
    assert "[private:ana] Unknown command 'bogus'. '/cohort help' lists what you can do." in out
    # The anonymous question: a private code, then a channel post naming no one.
    assert any(re.match(r"\[private:ana\] Your code: \w{4}-\w{4}-\w{4}$", line) for line in out)
    # (two of them: a batch of one would wait for company)
    # (delivered while :advance moved the clock: each line says when)
    at = "[#peer-a · Tue 1 Dec 13:00]"
    i = out.index(f"{at} Anonymous question #1")
    assert out[i + 2] == f"{at} Anonymous question #2"
    assert sorted([out[i + 1], out[i + 3]]) == [
        f"{at} How do I say no to more work? @here", f"{at} Is everyone else this tired?"]
    assert not any(line.startswith("[#peer-a]") and ("ana" in line or "cleo" in line)
                   for line in out[i:i + 4])
    # Reminders before the first session, check-in DM and summary at the second.
    assert ("[#peer-a · Mon 30 Nov 14:00] Reminder: Peer A meets in 1 day — Tue 1 Dec 2026, "
            "14:00 GMT. /cohort next shows your role.") in out
    assert any(line.startswith("[dm:ben · Sun 6 Dec 14:00] Check-in time (Peer A)")
               for line in out)
    assert "[dm:ben · Sun 6 Dec 14:00] 1. Draft the intro <!channel>" in out
    i = out.index("[#peer-a · Tue 8 Dec 14:00] Check-in summary for Peer A")
    assert out[i + 1].startswith("[#peer-a · Tue 8 Dec 14:00] 1 action — ")
    i = out.index("[#peer-a · Sat 5 Dec 14:00] Roles for Peer A")
    assert out[i + 1] == "[#peer-a · Sat 5 Dec 14:00] For the session on Tue 8 Dec 2026, 14:00 GMT:"
    assert out[-1] == "[clock] Tue 8 Dec 2026, 15:00 UTC"
    # Every bot line says where it went; what :advance delivers says when, too.
    for line in out:
        assert re.match(r"\[(#[\w-]+|dm:\w+|private:\w+|clock|shell)( · \w{3} \d{1,2} \w{3} "
                        r"\d\d:\d\d)?\] ", line), line
    assert "Traceback" not in result.stderr


def test_meta_commands_and_real_clock_refusal(db: Path) -> None:
    result = run_shell(db, ":advance 1h\n:bogus\n:help\n/cohort help\n", "--user", "zoe")
    assert result.returncode == 0, result.stderr
    assert "[shell] :advance needs the simulated clock (--clock simulated)." in result.stdout
    assert "[shell] unknown meta-command ':bogus' (try :help)" in result.stdout
    # zoe is in no cohort: help lists only what anyone may do.
    assert "[private:zoe] What you can do (as anyone):" in result.stdout
    assert "[private:zoe] You: /cohort tz [Area/City] · /cohort my-data · /cohort forget-me " \
        "[confirm]" in result.stdout
    assert "cohort create" not in result.stdout
    assert result.stderr.count("Traceback") == 0, result.stderr


def test_the_shell_starts_by_saying_what_to_type(db: Path) -> None:
    result = run_shell(db, ":help\n:as\n:dm\n:in\n", "--user", "zoe", "--channel", "lab")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == ("[shell] You are zoe in #lab. Type /cohort help for the bot's commands, "
                      ":help for the shell's own; end with Ctrl-D.")
    # :help lists every meta-command, one a line.
    assert out[1:8] == [
        "[shell] :as NAME       act as someone else (:as alone: who you are)",
        "[shell] :in #CHANNEL   type in a channel, where everyone there sees what you type",
        "[shell] :dm            type in your direct conversation with the bot",
        "[shell] :advance 90m   move the simulated clock, delivering what falls due "
        "(--clock simulated)",
        "[shell] :now           show the time (UTC)",
        "[shell] :help          this list",
        "[shell] /cohort help   what you may ask the bot",
    ]
    # :as and :in without an argument say who and where you are.
    assert out[8] == "[shell] You are zoe, typing in #lab (:as NAME to be someone else)."
    assert out[9] == ("[shell] You are typing in your direct conversation with the bot "
                      "(:in #CHANNEL to move).")
    assert len(out) == 10
    assert "unknown meta-command" not in result.stdout


def test_run_on_the_terminal_starts_by_saying_what_to_type(db: Path) -> None:
    proc = subprocess.Popen([COHORTBOT, "run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env_for(db), cwd=db.parent)
    try:
        assert proc.stdout is not None
        # (no output within a minute: the line is missing, not late)
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        first = proc.stdout.readline() if ready else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert first == ("[shell] You are ana in #general. Type /cohort help for the bot's "
                     "commands, :help for the shell's own; Ctrl-C stops the bot.\n")
    assert proc.returncode == 0, err
    assert "Traceback" not in err


SECRET_IN_A_CHANNEL = """\
:as root
:in #peer-a
/cohort cohort create Peer A
/cohort cohort schedule weekly tue 14:00 Europe/London for 90m
/cohort cohort members add @ana @ben
:as ana
/cohort ask Is it only me who struggles?
/cohort upvote 1
:dm
/cohort ask Am I the only one behind?
:as ben
/cohort ask Does anyone else doubt their work?
:advance 2d
"""


def test_a_channel_is_seen_by_everyone_so_ask_there_is_refused(db: Path) -> None:
    result = run_shell(db, SECRET_IN_A_CHANNEL, "--clock", "simulated",
                       "--start", "2026-11-30T09:00Z")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    i = out.index("[#peer-a] ana: /cohort ask Is it only me who struggles?")
    # As on Matrix: the message is withdrawn, nothing is done, the reply comes by DM.
    assert out[i + 1:i + 3] == [
        "[#peer-a] (ana's message was removed: everyone here could see it)",
        "[dm:ana] Everyone in the channel can see that message, so I did not act on it. Send "
        "it to me in a direct message instead: /cohort ask …",
    ]
    assert out[i + 3] == "[#peer-a] ana: /cohort upvote 1"
    assert out[i + 4] == "[#peer-a] (ana's message was removed: everyone here could see it)"
    assert out[i + 5].startswith("[dm:ana] Everyone in the channel can see that message")
    # Typed in a direct conversation, it is taken (and the channel question never was), and
    # the message is removed there too, as a Matrix bot redacts it.
    assert any(line.startswith("[private:ana] Your code: ") for line in out)
    j = out.index("[dm:ana] ana: /cohort ask Am I the only one behind?")
    assert out[j + 1] == ("[dm:ana] (ana's message was removed, so that it does not stay "
                          "beside their name)")
    posted = [line for line in out if line.startswith("[#peer-a · ")]
    assert any(line.endswith("] Am I the only one behind?") for line in posted)
    assert not any("Is it only me who struggles?" in line for line in posted)
    assert "Traceback" not in result.stderr


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """The README's walkthrough command, run from the top of a clone, prints what the README
    shows (its lines in order; `…` stands for lines left out, codes are random)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```text\n(\$ cohortbot shell .*?)```", readme, re.S)
    command, *shown = block.splitlines()
    args, _, script = command.removeprefix("$ cohortbot shell ").partition(" < ")
    assert (ROOT / script).is_file(), f"the README runs a script that is not there: {script}"
    env = env_for(tmp_path / "cohortbot.db")
    del env["COHORTBOT_BOT__ADMINS"]  # as in a fresh clone: the person at the keyboard is one
    with (ROOT / script).open() as stdin:
        result = subprocess.run([COHORTBOT, "shell", *args.split()], stdin=stdin,
                                capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    code = re.compile(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}\b")
    # Anonymous questions come out in random order.
    asked = re.findall(r"^/cohort ask (.+)$", (ROOT / script).read_text(), re.M)
    assert len(asked) == 2

    def same(line: str) -> str:
        line = code.sub("CODE", line)
        return next((line.replace(q, "QUESTION") for q in asked if line.endswith("] " + q)),
                    line)

    at = 0
    for line in shown:
        if line == "…":
            continue
        wanted = same(line.replace(" …", ""))
        found = next((n for n in range(at, len(out)) if same(out[n]).startswith(wanted)), None)
        assert found is not None, f"README line not printed (in this order): {line}"
        at = found + 1
