"""`help`: what the caller may do, grouped by task, short enough to read in a chat; and
`help <command>`: its usage, examples and the values it takes.

Generated from the grammar's command table (`grammar.COMMANDS`), so a command can never be
missing from help or listed for a role that may not run it. Pure: the service passes in
what only it knows (the cohort's roles, its settings and their values).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.chat.grammar import COMMANDS, Role, Spec
from bot.domain.schedule import USAGE as SCHEDULE_FORMS

#: Tasks, in the order a person meets them; each lists the commands that serve it.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Sessions", ("next", "schedule", "away", "back")),
    ("Roles", ("swap", "swap accept", "swap decline")),
    ("Actions", ("action add", "action list", "action done", "action partly",
                 "action notyet", "action drop", "action edit")),
    ("Check-in", ("checkin", "checkin share", "checkin private")),
    ("Anonymous questions (in a DM)", ("ask", "questions", "upvote", "question", "retract")),
    ("You", ("tz", "my-data", "forget-me")),
    ("Run a session", ("prompt", "session start", "session next", "session end", "summary")),
    ("Change sessions", ("session cancel", "session move", "session add", "rotation assign")),
    ("Moderate questions", ("questions review", "approve", "return", "release")),
    ("Members", ("cohort members add", "cohort members remove", "cohort show")),
    ("Set up", ("cohort create", "cohort link", "cohort list", "cohort schedule")),
    ("Configure", ("cohort roles", "cohort reminders", "cohort set")),
    ("Facilitators", ("cohort facilitators add", "cohort facilitators remove")),
    ("Cohort life", ("cohort pause", "cohort resume", "cohort rename", "cohort unlink",
                     "cohort archive")),
)

#: One or two examples per command, without the command word.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "next": ("next",),
    "schedule": ("schedule", "schedule 8"),
    "away": ("away next", "away next week", "away 2026-12-21..2027-01-03"),
    "back": ("back next", "back all"),
    "swap": ("swap case-giver @ben",),
    "action add": ("action add Ask my manager about the conference budget",),
    "action done": ("action done 1 went better than expected",),
    "action partly": ("action partly 2",),
    "action notyet": ("action notyet 1",),
    "action drop": ("action drop 3 no longer relevant",),
    "action edit": ("action edit 1 Ask about the travel budget",),
    "ask": ("ask How do you say no to a senior colleague?",),
    "upvote": ("upvote 3",),
    "question": ("question k7q2-mz4p",),
    "retract": ("retract k7q2-mz4p",),
    "tz": ("tz Europe/Berlin", "tz America/New_York"),
    "prompt": ("prompt What went well this week?", "prompt next Bring one example"),
    "session cancel": ("session cancel next holiday", "session cancel 2026-12-22"),
    "session move": ("session move next to 2026-12-10 2pm",),
    "session add": ("session add 2027-01-07 14:00",),
    "approve": ("approve ab12",),
    "return": ("return ab12 please rephrase without names",),
    "rotation assign": ("rotation assign moderator @cleo",
                        "rotation assign note-taker @dev 2026-12-15"),
    "cohort create": ("cohort create Peer A",),
    "cohort link": ("cohort link peer-a",),
    "cohort schedule": ("cohort schedule weekly tue 14:00 Europe/London for 90m",
                        "cohort schedule every 2 weeks thu 2pm America/New_York"),
    "cohort members add": ("cohort members add @ana @ben",),
    "cohort members remove": ("cohort members remove @ben",),
    "cohort facilitators add": ("cohort facilitators add @fay",),
    "cohort roles": ("cohort roles case-giver moderator timekeeper",),
    "cohort reminders": ("cohort reminders 24h 1h", "cohort reminders off"),
    "cohort set": ("cohort set", "cohort set reminders-to both"),
    "cohort rename": ("cohort rename Peer A (spring)",),
    "cohort archive": ("cohort archive", "cohort archive confirm"),
}

_TIMES = "Times: 14:00, 2pm or 2:30pm, in the cohort's zone."

#: The values some commands take, when they are the same for every cohort.
VALUES: dict[str, tuple[str, ...]] = {
    "away": ("Days: next (the next session), today, tomorrow, a weekday (tue), next week, "
             "this week, 2026-12-01, or a range 2026-12-01..2026-12-15.",),
    "back": ("Days: as for away, or all.",),
    "cohort schedule": (*SCHEDULE_FORMS.splitlines(), "Times: 14:00, 2pm or 2:30pm."),
    "session move": (_TIMES,),
    "session add": (_TIMES,),
    "tz": ("An IANA name (Area/City), not an abbreviation such as EST or CET: those ignore "
           "daylight saving.",),
    "cohort reminders": ("Up to 6 offsets between 1m and 14d, e.g. 48h 2h 15m; or off.",),
}


def _merge(specs: Sequence[Spec]) -> list[str]:
    """Usage forms, with neighbours that differ only in their last word merged:
    "action done|partly|notyet|drop <n> [note]", "swap accept|decline"."""
    out: list[tuple[tuple[str, ...], list[str], str]] = []
    for s in specs:
        stem, last = s.words[:-1], s.words[-1]
        if out and stem and out[-1][0] == stem and out[-1][2] == s.args:
            out[-1][1].append(last)
        else:
            out.append((stem, [last], s.args))
    return [" ".join([*stem, "|".join(lasts)]) + (f" {args}" if args else "")
            for stem, lasts, args in out]


def overview(role: Role, *, word: str) -> list[str]:
    """The lines of `help` for `role`: one per task (two when it has many commands), every
    command with the command word in front."""
    by_name = {s.name: s for s in COMMANDS}
    lines: list[str] = []
    for title, names in GROUPS:
        specs = [by_name[n] for n in names if n in by_name and by_name[n].role <= role]
        if not specs:
            continue
        forms = [f"{word} {f}" for f in _merge(specs)]
        line = f"{title}: " + " · ".join(forms)
        if len(line) > 120 and len(forms) > 2:
            half = (len(forms) + 1) // 2
            lines.append(f"{title}: " + " · ".join(forms[:half]))
            lines.append("  " + " · ".join(forms[half:]))
        else:
            lines.append(line)
    return lines


def detail(spec: Spec, *, word: str, values: Sequence[str] = ()) -> list[str]:
    """`help <command>`: usage, what it does, examples, and the values it takes."""
    out = [f"Usage: {spec.usage(word)}", f"{spec.summary[:1].upper()}{spec.summary[1:]}."]
    examples = EXAMPLES.get(spec.name, ())
    if examples:
        out.append("Example" + ("s" if len(examples) > 1 else "") + ": "
                   + " · ".join(f"{word} {e}" for e in examples))
    out += [*VALUES.get(spec.name, ()), *values]
    return out
