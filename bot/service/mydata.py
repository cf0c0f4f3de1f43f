"""What the bot keeps about one person: `my-data` shows it to them (privately), and
`cohortbot export-person` gives it to an operator as JSON for a subject-access request.

Never a question or an upvote: nothing links those to anyone (docs/privacy.md), so nothing
could list them, and the answer says so.
"""

from __future__ import annotations

from typing import Any

from bot.chat import commands as c
from bot.chat.message import Message, Text, lines, plural
from bot.domain.model import (
    Absence,
    Action,
    ActionReview,
    Assignment,
    Cohort,
    Member,
    OutboxMessage,
    Person,
    Session,
    Swap,
)
from bot.domain.refs import UserRef
from bot.service.context import Ctx, Handler
from bot.service.ports import UnitOfWork

NOT_KEPT = ("Anonymous questions and upvotes: nothing links them to anyone, so they cannot "
            "be listed.")


async def personal_data(uow: UnitOfWork, user: UserRef, tenant: str | None = None
                        ) -> dict[str, Any]:
    """Everything kept about `user` (in `tenant`, or in every tenant), as plain data."""
    where: dict[str, Any] = {"platform": user.platform, "user_id": user.id}
    people = await uow.find(Person, **where, **({"tenant": tenant} if tenant else {}))
    memberships = []
    for m in await uow.find(Member, **where, order_by="joined_at"):
        cohort = await uow.get(Cohort, m.cohort_id)
        if cohort is None or (tenant is not None and cohort.tenant != tenant):
            continue
        memberships.append(await _membership(uow, cohort, m))
    messages = await uow.find(OutboxMessage, platform=user.platform, target=user.id,
                              direct=True)
    return {
        "person": str(user),
        "profiles": [{"tenant": p.tenant, "time_zone": p.zone, "dm_channel": p.dm_channel}
                     for p in people],
        "memberships": memberships,
        "direct_messages": [{"status": o.status, "created_at": o.created_at.isoformat(),
                             "body": o.body} for o in messages
                            if tenant is None or o.tenant in (tenant, None)],
        "not_kept": NOT_KEPT,
    }


async def _membership(uow: UnitOfWork, cohort: Cohort, m: Member) -> dict[str, Any]:
    sessions: dict[int, Session | None] = {}

    async def when(session_id: int) -> str | None:
        if session_id not in sessions:
            sessions[session_id] = await uow.get(Session, session_id)
        found = sessions[session_id]
        return found.starts_at.isoformat() if found else None

    actions = []
    for a in await uow.find(Action, member_id=m.id, order_by="number"):
        reviews = [{"session": await when(r.session_id), "answer": r.answer, "note": r.note}
                   for r in await uow.find(ActionReview, action_id=a.id)]
        actions.append({"number": a.number, "text": a.text, "status": a.status,
                        "created_at": a.created_at.isoformat(), "pending_answer": a.answer,
                        "pending_note": a.note, "check_ins": reviews})
    swaps = [*await uow.find(Swap, from_member=m.id), *await uow.find(Swap, to_member=m.id)]
    return {
        "tenant": cohort.tenant, "cohort": cohort.name, "cohort_id": cohort.slug,
        "joined_at": m.joined_at.isoformat(), "in_rotation": m.is_member,
        "facilitator": m.is_facilitator, "shares_check_in_lines": m.share_checkins,
        "roles": [{"session": await when(r.session_id), "role": r.role, "source": r.source}
                  for r in await uow.find(Assignment, member_id=m.id)],
        "away": [{"from": a.first_day, "to": a.last_day}
                 for a in await uow.find(Absence, member_id=m.id)],
        "actions": actions,
        "swaps": [{"session": await when(s.session_id), "role": s.role, "status": s.status,
                   "asked_by_you": s.from_member == m.id} for s in swaps],
    }


def _yes(value: bool) -> str:
    return "yes" if value else "no"


async def my_data(ctx: Ctx, cmd: c.MyData) -> Message:
    data = await personal_data(ctx.uow, ctx.user, ctx.tenant)
    body: list[Message | str] = ["What the bot keeps about you:"]
    zones = [p["time_zone"] for p in data["profiles"] if p["time_zone"]]
    body.append(f"• Time zone you set: {zones[0] if zones else 'none'}.")
    if not data["memberships"]:
        body.append("• No memberships.")
    for m in data["memberships"]:
        body.append(Message.of(
            "• ", Text(m["cohort"]), f" ({m['cohort_id']}): joined {m['joined_at'][:10]}, in "
            f"the rotation: {_yes(m['in_rotation'])}, facilitator: {_yes(m['facilitator'])}, "
            f"check-in lines shared: {_yes(m['shares_check_in_lines'])}."))
        for r in m["roles"]:
            body.append(f"  – role {r['role']} on {(r['session'] or '?')[:10]} ({r['source']})")
        for a in m["away"]:
            body.append(f"  – away {a['from']} to {a['to']}")
        for s in m["swaps"]:
            body.append(f"  – swap of {s['role']} on {(s['session'] or '?')[:10]}: {s['status']}")
        for a in m["actions"]:
            answers = "; ".join(f"{(r['session'] or '?')[:10]} {r['answer']}"
                                + (f" ({r['note']})" if r["note"] else "")
                                for r in a["check_ins"])
            pending = (f"; your answer for the next check-in: {a['pending_answer']}"
                       + (f" ({a['pending_note']})" if a["pending_note"] else "")
                       ) if a["pending_answer"] else ""
            body.append(Message.of(f"  – action {a['number']}: ", Text(a["text"]),
                                   f" [{a['status']}]",
                                   Text(f"; check-ins: {answers}" if answers else ""),
                                   Text(pending)))
    if data["direct_messages"]:
        waiting = plural(len(data["direct_messages"]), "message")
        body.append(f"• {waiting} to you, waiting or sent in the last day (a message is "
                    "deleted a day after it is sent).")
    body.append(f"• Not kept: {NOT_KEPT[0].lower()}{NOT_KEPT[1:]}")
    body.append(f"{ctx.cmd('forget-me')} deletes all of it.")
    return lines(body)


HANDLERS: dict[type[c.Command], Handler] = {c.MyData: my_data}
