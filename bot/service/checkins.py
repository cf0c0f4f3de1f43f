"""Check-in answers: the open-actions query and the tally that both the session summary and the
facilitator's `summary` command report."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.chat.message import Mention, Message
from bot.domain.model import Action, Member
from bot.service.ports import UnitOfWork

ANSWER_WORDS = {"done": "done", "partly": "partly", "notyet": "not yet", "dropped": "dropped"}


async def open_actions(uow: UnitOfWork, member_id: int) -> list[Action]:
    return await uow.find(Action, member_id=member_id, status="open", order_by="number")


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys([*ANSWER_WORDS, "none"],
                                                                          0))
    shared: list[Message] = field(default_factory=list)  # lines of members who share
    #: Unanswered actions of members who are away for the session: excused, not missing.
    excused: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.excused

    def breakdown(self) -> str:
        c = self.counts
        return (f"{c['done']} done, {c['partly']} partly, {c['notyet']} not yet, "
                f"{c['dropped']} dropped, {c['none']} without an answer"
                + (f", {self.excused} excused (away)" if self.excused else ""))


async def tally(
    uow: UnitOfWork,
    members: Sequence[Member],
    *,
    before: datetime | None = None,
    unanswered: str = "no answer",
    with_notes: bool = False,
    each: Callable[[Member, Action, str], None] | None = None,
    away: Collection[int] = (),
) -> Tally:
    """Count the answers on members' open actions (created before `before`, if given), and
    collect the lines of members who share theirs. `each(member, action, answer)` sees every
    counted action before anything about it changes. An unanswered action of a member in
    `away` (ids) is excused: counted apart, and left open as it is."""
    out = Tally()
    for m in members:
        for a in await open_actions(uow, m.id):
            if before is not None and a.created_at >= before:
                continue
            if a.answer is None and m.id in away:
                out.excused += 1
                continue
            answer = a.answer or "none"
            out.counts[answer] += 1
            if m.share_checkins:
                word = ANSWER_WORDS.get(answer, unanswered)
                note = f" — {a.note}" if with_notes and a.note else ""
                out.shared.append(Message.of(Mention(m.user), f": {a.text} [{word}]{note}"))
            if each is not None:
                each(m, a, answer)
    return out
