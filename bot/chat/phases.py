"""The prompts of a guided peer-consultation session, one per phase."""

from __future__ import annotations

from collections.abc import Sequence

from bot.chat.message import Message, Strong


def _guidance(name: str, roles: Sequence[str]) -> str:
    """What a phase asks of the group, in the words of the cohort's own roles."""
    giver = "the case-giver" if "case-giver" in roles else "the person who brings the case"
    giver_cap = giver[0].upper() + giver[1:]
    if name == "casting":
        if not roles:
            return "Agree who brings a case today; everyone else consults."
        return f"Agree on the roles for today: {', '.join(roles)}; everyone else consults."
    if name == "case report":
        return (f"{giver_cap} describes the situation. Consultants listen and ask only "
                "questions of understanding.")
    if name == "key question":
        check = ("The moderator checks" if "moderator" in roles else "Check together")
        return (f"{giver_cap} states the one question they want help with. {check} that it "
                "is clear and answerable.")
    if name == "method choice":
        return "Choose how to consult: brainstorming, perspectives, headlines, solution ideas…"
    if name == "consultation":
        return (f"Consultants work on the key question using the method. {giver_cap} listens "
                "without answering.")
    if name == "closing":
        notes = ("the note-taker records agreed actions" if "note-taker" in roles
                 else "everyone notes their own actions")
        return f"{giver_cap} says what they take away. Thank each other; {notes}."
    return ""


def phase_message(phases: Sequence[tuple[str, int]], index: int, *,
                  roles: Sequence[str] = (),
                  add_action: str = "/cohort action add <text>") -> Message:
    """The prompt that opens phase `index` (or closes the session when past the last);
    `add_action` is the command to record an action, as the platform writes it."""
    if index >= len(phases):
        return Message.of(Strong("Session over."), " Thank you all. Record your actions with "
                          f"'{add_action}' before the next session.")
    name, minutes = phases[index]
    guide = _guidance(name, roles)
    after = f" Next: {phases[index + 1][0]}." if index + 1 < len(phases) else ""
    return Message.of(
        Strong(f"Phase {index + 1}/{len(phases)}: {name} ({minutes} min)."),
        f" {guide}{after}".rstrip(),
    )
