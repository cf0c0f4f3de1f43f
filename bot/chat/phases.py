"""The prompts of a guided peer-consultation session, one per phase."""

from __future__ import annotations

from collections.abc import Sequence

from bot.chat.message import Message, Strong

GUIDANCE = {
    "casting": "Agree on the roles for today: case-giver, moderator, note-taker, timekeeper; "
               "everyone else consults.",
    "case report": "The case-giver describes the situation. Consultants listen and ask only "
                   "questions of understanding.",
    "key question": "The case-giver states the one question they want help with. The "
                    "moderator checks it is clear and answerable.",
    "method choice": "Choose how to consult: brainstorming, perspectives, headlines, "
                     "solution ideas…",
    "consultation": "Consultants work on the key question using the method. The case-giver "
                    "listens without answering.",
    "closing": "The case-giver says what they take away. Thank each other; the note-taker "
               "records agreed actions.",
}


def phase_message(phases: Sequence[tuple[str, int]], index: int) -> Message:
    """The prompt that opens phase `index` (or closes the session when past the last)."""
    if index >= len(phases):
        return Message.of(Strong("Session over."), " Thank you all. Record your actions with "
                          "'action add <text>' before the next session.")
    name, minutes = phases[index]
    guide = GUIDANCE.get(name, "")
    after = f" Next: {phases[index + 1][0]}." if index + 1 < len(phases) else ""
    return Message.of(
        Strong(f"Phase {index + 1}/{len(phases)}: {name} ({minutes} min)."),
        f" {guide}{after}".rstrip(),
    )
