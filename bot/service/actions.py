"""Two-meeting actions: record small actions after a session, report on them before the next."""

from __future__ import annotations

from bot.chat import commands as c
from bot.chat.message import Message, Strong, When, lines, plural
from bot.domain.model import Action
from bot.service.checkins import ANSWER_WORDS, open_actions, tally
from bot.service.cohort_state import load_roster, next_session
from bot.service.context import Ctx, Handler

MAX_OPEN = 3


async def add_action(ctx: Ctx, cmd: c.AddAction) -> Message:
    me = ctx.member
    open_ = await open_actions(ctx.uow, me.id)
    if len(open_) >= MAX_OPEN:
        raise ctx.fail(f"You have {MAX_OPEN} open actions already: keep them small and few. "
                       f"Close one with {ctx.cmd('action done|drop <n>')} first.")
    mine = await ctx.uow.find(Action, member_id=me.id, order_by="-number")
    number = (mine[0].number + 1) if mine else 1
    ctx.uow.add(Action(cohort_id=ctx.cohort.id, member_id=me.id, number=number, text=cmd.text,
                       created_at=ctx.now))
    return Message.of(f"Action {number} recorded. You will be asked how it went before the "
                      "next session.")


async def list_actions(ctx: Ctx, cmd: c.ListActions) -> Message:
    open_ = await open_actions(ctx.uow, ctx.member.id)
    if not open_:
        return Message.of(f"You have no open actions. Add one with {ctx.cmd('action add <text>')}.")
    body: list[Message | str] = ["Your open actions:"]
    for a in open_:
        answer = f" [{ANSWER_WORDS[a.answer]}]" if a.answer else ""
        body.append(f"{a.number}. {a.text}{answer}")
    return lines(body)


async def _action(ctx: Ctx, number: int) -> Action:
    found = await ctx.uow.find(Action, member_id=ctx.member.id, number=number)
    if not found or found[0].status != "open":
        raise ctx.fail(f"You have no open action {number} ({ctx.cmd('action list')} shows them).")
    return found[0]


async def answer_action(ctx: Ctx, cmd: c.AnswerAction) -> Message:
    action = await _action(ctx, cmd.number)
    action.answer, action.note = cmd.answer, cmd.note
    return Message.of(f"Action {action.number}: {ANSWER_WORDS[cmd.answer]}"
                      + (" (with a note)" if cmd.note else "")
                      + ". You can change it until the session starts.")


async def edit_action(ctx: Ctx, cmd: c.EditAction) -> Message:
    action = await _action(ctx, cmd.number)
    action.text = cmd.text
    return Message.of(f"Action {action.number} updated.")


async def show_checkin(ctx: Ctx, cmd: c.ShowCheckin) -> Message:
    me = ctx.member
    open_ = await open_actions(ctx.uow, me.id)
    session = await next_session(ctx.uow, ctx.cohort, ctx.now)
    zone = await ctx.zone()
    head = Message.of(Strong("Your check-in"), " for the session on ",
                      When(session.starts_at, zone), ":") if session else \
        Message.of(Strong("Your check-in:"))
    if not open_:
        return lines([head, "No open actions to report on."])
    body: list[Message | str] = [head]
    for a in open_:
        answer = ANSWER_WORDS[a.answer] if a.answer else "no answer yet"
        note = f" — {a.note}" if a.note else ""
        body.append(f"{a.number}. {a.text}: {answer}{note}")
    share = "shared by name" if me.share_checkins else "counted without your name"
    body.append(f"In the summary your lines are {share} "
                f"({ctx.cmd('checkin share')} / {ctx.cmd('checkin private')}).")
    return lines(body)


async def share_checkins(ctx: Ctx, cmd: c.ShareCheckins) -> Message:
    ctx.member.share_checkins = cmd.share
    if cmd.share:
        return Message.of("Your check-in lines will appear by name in the summary.")
    return Message.of("Your check-in will only be counted in the summary, without your name.")


async def show_summary(ctx: Ctx, cmd: c.ShowSummary) -> Message:
    """The facilitator's view before the session: counts, and the lines members share."""
    co = ctx.cohort
    team = await load_roster(ctx.uow, co)
    session = await next_session(ctx.uow, co, ctx.now)
    here = ({m.id for m in team.present(session, co.zone)} if session is not None
            else {m.id for m in team.members})
    result = await tally(ctx.uow, team.members, unanswered="no answer yet",
                         away={m.id for m in team.members} - here)
    if not result.total:
        return Message.of(f"No open actions in {co.name} yet.")
    return lines([
        Message.of(Strong("Check-in so far"),
                   f": {plural(result.total, 'open action')} — {result.breakdown()}."),
        *result.shared,
    ])


HANDLERS: dict[type[c.Command], Handler] = {
    c.ShowSummary: show_summary,
    c.AddAction: add_action,
    c.ListActions: list_actions,
    c.AnswerAction: answer_action,
    c.EditAction: edit_action,
    c.ShowCheckin: show_checkin,
    c.ShareCheckins: share_checkins,
}
