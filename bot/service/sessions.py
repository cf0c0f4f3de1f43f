"""Sessions from a member's and a facilitator's side: next, schedule, away/back, swaps,
role overrides, cancel/move/add, prompts and the guided phases of a running session."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.chat import commands as c
from bot.chat.message import Action as Button
from bot.chat.message import Mention, Message, Strong, Text, When, lines, plural
from bot.chat.phases import phase_message
from bot.domain.cohort_settings import CohortSettings
from bot.domain.errors import UserError
from bot.domain.model import (
    CANCELLED,
    Absence,
    Action,
    Assignment,
    Member,
    Notification,
    Session,
    Swap,
)
from bot.domain.planning import DERIVED, PHASE, PROMPT, phase_notices
from bot.domain.timeparse import exact_utc, format_local
from bot.service.cohort_state import (
    Cast,
    attach_prompt,
    casts,
    current_or_next,
    day_span,
    ensure_sessions,
    fix_cast,
    load_roster,
    local_day,
    next_session,
    queue_prompt,
    resolve_day,
    upcoming,
)
from bot.service.context import Ctx, Handler, member_of, zone_of
from bot.service.planner import plan_session


async def _zone(ctx: Ctx) -> str:
    ctx.cohort  # noqa: B018 - a cohort's command
    return await ctx.zone()


def _role_text(roles: list[str]) -> str:
    return ", ".join(roles) if roles else "consultant"


async def show_next(ctx: Ctx, cmd: c.Next) -> Message:
    co, me = ctx.cohort, ctx.member
    session = await next_session(ctx.uow, co, ctx.now)
    if session is None:
        return Message.of(f"{co.name} has no upcoming session"
                          + ("" if co.schedule else " (no schedule yet)") + ".")
    [cast] = await casts(ctx.uow, co, [session])
    zone = await _zone(ctx)
    away = me.id not in cast.present
    roles = cast.role_of(me.id)
    actions = await ctx.uow.find(Action, member_id=me.id, status="open")
    answered = sum(1 for a in actions if a.answer)
    body: list[Message | str] = [
        Message.of("Next session of ", Strong(co.name), ": ", When(session.starts_at, zone),
                   f" ({session.duration_min} min)."),
        "You facilitate; you are not in the rotation." if not me.is_member else
        "You are away for it." if away else
        f"Your role: {_role_text(roles)}" + (" (planned; fixed when roles are announced)."
                                            if cast.planned and roles else "."),
    ]
    if actions:
        body.append(f"Open actions: {len(actions)} ({answered} answered for the check-in).")
    return lines(body)


async def show_schedule(ctx: Ctx, cmd: c.ShowSchedule) -> Message:
    co = ctx.cohort  # (who may see it, the bus has checked: members, facilitators, admins)
    sessions = await upcoming(ctx.uow, co, ctx.now, cmd.count, include_cancelled=True)
    if not sessions:
        return Message.of(f"{co.name} has no upcoming sessions.")
    members = {m.id: m for m in await ctx.uow.find(Member, cohort_id=co.id)}
    zone = await _zone(ctx)
    by_session = {cast.session.id: cast for cast in await casts(ctx.uow, co, sessions)}
    body: list[Message | str] = [Message.of("Upcoming sessions of ", Strong(co.name), ":")]
    for s in sessions:
        if s.status == CANCELLED:
            reason = f": {s.cancel_reason}" if s.cancel_reason else ""
            body.append(Message.of("• ", When(s.starts_at, zone), f" — cancelled{reason}"))
            continue
        cast = by_session[s.id]
        parts: list[Text | Mention | When | Strong] = [Text("• "), When(s.starts_at, zone),
                                                       Text(" — ")]
        for i, (role, mid) in enumerate(cast.roles.items()):
            parts += [Text(", ")] if i else []
            parts += [Text(f"{role}: "), Mention(members[mid].user)]
        if not cast.roles:
            parts.append(Text("no roles (nobody present)"))
        away = len([m for m in members.values() if m.is_member]) - len(cast.present)
        if away:
            parts.append(Text(f"; {away} away"))
        if cast.planned:
            parts.append(Text(" (planned)"))
        body.append(Message(tuple(parts)))
    body.append("Planned roles follow the rotation: fewest turns first, away members keep "
                "their place.")
    return lines(body)


def _days(ctx: Ctx, when: c.DayRef, session: Session | None) -> tuple[date, date]:
    if when.next:
        assert session is not None
        d = local_day(session.starts_at, ctx.cohort.zone)
        return d, d
    return day_span(when, ctx.now, ctx.cohort.zone)


async def away(ctx: Ctx, cmd: c.Away) -> Message:
    co, me = ctx.cohort, ctx.member
    session = await resolve_day(ctx.uow, co, ctx.now, cmd.when) if cmd.when.next else None
    first, last = _days(ctx, cmd.when, session)
    today = local_day(ctx.now, co.zone)
    if last < today:
        raise ctx.fail(f"{last.isoformat()} is in the past (today is {today.isoformat()} in "
                       f"{co.zone}): nothing to miss there.")
    if first < today:
        first = today  # (the part of a range that is over cannot be missed any more)
    ctx.uow.add(Absence(member_id=me.id, first_day=first.isoformat(), last_day=last.isoformat()))
    await ctx.uow.flush()
    zone = ZoneInfo(co.zone)
    start = datetime.combine(first, datetime.min.time(), zone)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone)
    affected = [s for s in await ctx.uow.sessions_between(co.id, start, end)]
    span = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
    pinged = (f"You will not be pinged for {plural(len(affected), 'session')} then, and keep "
              "your place in the rotation." if affected else
              f"{co.name} has no session then, so nothing changes for you.")
    body: list[Message | str] = [f"Noted: you are away {span}. {pinged}"]
    held = await ctx.uow.find(Assignment, session_id=tuple(s.id for s in affected),
                              member_id=me.id) if affected else []
    for a in held:
        body.append(f"You hold {a.role} in one of them: hand it on with "
                    f"{ctx.cmd(f'swap {a.role} @member')}.")
    return lines(body)


async def back(ctx: Ctx, cmd: c.Back) -> Message:
    co, me = ctx.cohort, ctx.member
    mine = await ctx.uow.find(Absence, member_id=me.id)
    if cmd.when is None:
        removed = mine
    else:
        session = await resolve_day(ctx.uow, co, ctx.now, cmd.when) if cmd.when.next else None
        first, last = _days(ctx, cmd.when, session)
        removed = [a for a in mine if a.first_day <= last.isoformat()
                   and a.last_day >= first.isoformat()]
    for a in removed:
        await ctx.uow.delete(a)
    if not removed:
        return Message.of("You had no absence recorded for that.")
    return Message.of(f"Welcome back: {plural(len(removed), 'absence')} removed.")


async def _cast_for_next(ctx: Ctx) -> tuple[Session, Cast]:
    session = await next_session(ctx.uow, ctx.cohort, ctx.now)
    if session is None:
        raise UserError(f"{ctx.cohort.name} has no upcoming session.")
    return session, await fix_cast(ctx.uow, ctx.cohort, session)


async def _set_role(ctx: Ctx, session: Session, role: str, member: Member, source: str) -> None:
    """Give `role` to `member`; whatever role `member` held goes to the previous holder."""
    rows = {a.role: a for a in await ctx.uow.find(Assignment, session_id=session.id)}
    previous = rows.get(role)
    for other in rows.values():
        if other.member_id == member.id and other.role != role:
            if previous is not None:
                other.member_id, other.source = previous.member_id, source
            else:
                await ctx.uow.delete(other)
    if previous is None:
        ctx.uow.add(Assignment(session_id=session.id, role=role, member_id=member.id,
                               source=source))
    else:
        previous.member_id, previous.source = member.id, source
    await ctx.uow.flush()


async def request_swap(ctx: Ctx, cmd: c.RequestSwap) -> Message:
    co, me = ctx.cohort, ctx.member
    if cmd.role not in co.roles:
        raise ctx.fail(f"'{cmd.role[:30]}' is not a role in {co.name} ({', '.join(co.roles)}).")
    other = await member_of(ctx.uow, co, cmd.other)
    if other is None or not other.is_member:
        raise ctx.fail(f"{cmd.other.id[:40]} is not a member of {co.name}.")
    if other.id == me.id:
        raise ctx.fail("You cannot swap with yourself.")
    session, cast = await _cast_for_next(ctx)
    if cast.roles.get(cmd.role) != me.id:
        mine = cast.role_of(me.id)
        held = (f"you hold {', '.join(mine)}" if mine else "you hold no role then")
        raise ctx.fail(f"You do not hold {cmd.role} in the next session ({held}).")
    if other.id not in cast.present:
        raise ctx.fail(f"{cmd.other.id[:40]} is away for the next session and cannot take "
                       f"{cmd.role}; ask someone who is there.")
    for old in await ctx.uow.find(Swap, from_member=me.id, status="pending"):
        old.status = "declined"
    ctx.uow.add(Swap(session_id=session.id, role=cmd.role, from_member=me.id,
                     to_member=other.id, created_at=ctx.now))
    zone = await zone_of(ctx.uow, ctx.directory, other.user, co.zone, co.tenant)
    await ctx.post(Message(
        (Mention(me.user), Text(f" asks you to take their role {cmd.role} in {co.name} on "),
         When(session.starts_at, zone),
         Text(f". Reply {ctx.cmd('swap accept')} or {ctx.cmd('swap decline')}.")),
        (Button("Accept", "swap accept"), Button("Decline", "swap decline")),
    ), user=other.user)
    return Message.of("Asked ", Mention(other.user), f" to take {cmd.role}. Nothing changes "
                      "unless they accept.")


async def answer_swap(ctx: Ctx, cmd: c.AnswerSwap) -> Message:
    co, me = ctx.cohort, ctx.member
    pending = await ctx.uow.find(Swap, to_member=me.id, status="pending", order_by="-id")
    if not pending:
        raise ctx.fail("Nobody has asked you for a swap.")
    swap = pending[0]
    session = await ctx.uow.get(Session, swap.session_id)
    requester = await ctx.uow.get(Member, swap.from_member)
    # A swap that can no longer happen is closed (and that is saved): replying with an error
    # would roll the closing back and leave it pending for ever.
    if session is None or requester is None or session.starts_at <= ctx.now:
        swap.status = "declined"
        return Message.of("That swap is no longer possible: the session has started or gone.")
    if not cmd.accept:
        swap.status = "declined"
        await ctx.post(Message.of(Mention(me.user), f" declined to take {swap.role}."),
                       user=requester.user)
        return Message.of("Declined. Nothing changed.")
    team = await load_roster(ctx.uow, co)
    if me.id not in {m.id for m in team.present(session, co.zone)}:
        # (closed and saved, like any swap that can no longer happen; both sides are told)
        swap.status = "declined"
        await ctx.post(Message.of(Mention(me.user), " is away for the session on ",
                                  When(session.starts_at, co.zone),
                                  f" and cannot take {swap.role}: the swap is off, the role "
                                  "is still yours."), user=requester.user)
        return Message.of("You are away for that session, so you cannot take a role in it: "
                          f"the swap is off, and {swap.role} stays with ", Mention(requester.user),
                          ". (Say you are there after all with ",
                          ctx.cmd("back <date>"), ".)")
    current = {a.role: a.member_id for a in await ctx.uow.find(Assignment, session_id=session.id)}
    if current.get(swap.role) != requester.id:
        swap.status = "declined"
        return Message.of("That swap is no longer possible: the role changed hands meanwhile.")
    swap.status = "accepted"
    await _set_role(ctx, session, swap.role, me, "swap")
    await ctx.post(Message.of(Mention(me.user), f" accepted: they take {swap.role}."),
                   user=requester.user)
    await ctx.post(Message.of(f"Role change for {co.name} on ", When(session.starts_at, co.zone),
                              f": {swap.role} is now ", Mention(me.user), " (swap)."))
    return Message.of(f"You take {swap.role} on ", When(session.starts_at, await _zone(ctx)), ".")


async def assign_role(ctx: Ctx, cmd: c.AssignRole) -> Message:
    co = ctx.cohort
    if cmd.role not in co.roles:
        raise ctx.fail(f"'{cmd.role[:30]}' is not a role in {co.name} ({', '.join(co.roles)}).")
    member = await member_of(ctx.uow, co, cmd.member)
    if member is None or not member.is_member:
        raise ctx.fail(f"{cmd.member.id[:40]} is not a member of {co.name}.")
    session = await resolve_day(ctx.uow, co, ctx.now, cmd.when)
    await fix_cast(ctx.uow, co, session)
    await _set_role(ctx, session, cmd.role, member, "override")
    await ctx.post(Message.of(f"Role change for {co.name} on ", When(session.starts_at, co.zone),
                              f": {cmd.role} is now ", Mention(member.user), "."))
    return Message.of(f"{cmd.role} on ", When(session.starts_at, co.zone), " is now ",
                      Mention(member.user), ".")


async def cancel_session(ctx: Ctx, cmd: c.CancelSession) -> Message:
    co = ctx.cohort
    session = await resolve_day(ctx.uow, co, ctx.now, cmd.when)
    session.status, session.cancel_reason = CANCELLED, cmd.reason
    await ctx.uow.void_pending(session_id=session.id)
    reason = f" Reason: {cmd.reason}" if cmd.reason else ""
    await ctx.post(Message.of(Strong(f"{co.name}: the session on "),
                              When(session.starts_at, co.zone),
                              Strong(" is cancelled."), Text(reason)))
    return Message.of("Cancelled the session on ", When(session.starts_at, co.zone),
                      ". Its reminders will not go out.")


def _wall(ctx: Ctx, when: datetime | c.DayTime) -> datetime:
    """The cohort's wall time for what the person typed ("tue 2pm": the coming Tuesday)."""
    if isinstance(when, datetime):
        return when
    return when.on(local_day(ctx.now, ctx.cohort.zone))


async def move_session(ctx: Ctx, cmd: c.MoveSession) -> Message:
    co = ctx.cohort
    session = await resolve_day(ctx.uow, co, ctx.now, cmd.when)
    to = exact_utc(_wall(ctx, cmd.to), ZoneInfo(co.zone))
    if to <= ctx.now:
        raise ctx.fail("That time is in the past.")
    old = session.starts_at
    await ctx.uow.void_pending(session_id=session.id, kinds=DERIVED)
    session.starts_at, session.rev = to, session.rev + 1
    for queued in await ctx.uow.find(Notification, session_id=session.id, kind=PROMPT,
                                     status="pending"):  # prompts move with their session
        attach_prompt(queued, session)
    await ctx.uow.flush()
    await plan_session(ctx.uow, co, session, ctx.now)
    await ctx.post(Message.of(Strong(f"{co.name}: a session moved"), " from ",
                              When(old, co.zone), " to ", When(to, co.zone), "."))
    return Message.of("Moved to ", When(to, co.zone), ". Reminders follow the new time.")


async def add_session(ctx: Ctx, cmd: c.AddSession) -> Message:
    co = ctx.cohort
    at = exact_utc(_wall(ctx, cmd.at), ZoneInfo(co.zone))
    if at <= ctx.now:
        raise ctx.fail("That time is in the past.")
    duration = 90
    if co.schedule:
        from bot.domain.schedule import Schedule

        duration = int(Schedule.from_json(co.schedule).duration.total_seconds() // 60)
    # A slot that is taken (or a session that would overlap one) would be listed and reminded
    # twice: refuse it, and say which session is there.
    end = at + timedelta(minutes=duration)
    await ensure_sessions(ctx.uow, co, ctx.now, end + timedelta(days=1))
    for other in await ctx.uow.sessions_between(co.id, at - timedelta(days=1), end):
        if other.starts_at < end and at < other.starts_at + timedelta(minutes=other.duration_min):
            raise ctx.fail("There is already a session then: "
                           f"{format_local(other.starts_at, ZoneInfo(co.zone))}.")
    session = Session(cohort_id=co.id, starts_at=at, duration_min=duration, origin="added")
    ctx.uow.add(session)
    await ctx.uow.flush()
    await plan_session(ctx.uow, co, session, ctx.now)
    await ctx.post(Message.of(Strong(f"{co.name}: extra session"), " on ",
                              When(at, co.zone), "."))
    return Message.of("Added a session on ", When(at, co.zone), ".")


async def post_prompt(ctx: Ctx, cmd: c.PostPrompt) -> Message:
    co = ctx.cohort
    if co.channel is None:
        raise ctx.fail(f"{co.name} is not linked to a channel yet.")
    if not cmd.next_session:
        await ctx.post(Message.of(Strong("Prompt: "), Text(cmd.text)))
        return Message.of("Posted.")
    session = await next_session(ctx.uow, co, ctx.now)
    if session is None:
        raise ctx.fail(f"{co.name} has no upcoming session to attach it to.")
    await queue_prompt(ctx.uow, co, session, cmd.text)
    return Message.of("The prompt will be posted when the session starts: ",
                      When(session.starts_at, await _zone(ctx)), ".")


async def _running(ctx: Ctx) -> Session:
    session = await current_or_next(ctx.uow, ctx.cohort, ctx.now)
    if session is None:
        raise ctx.fail(f"No session is running, and {ctx.cohort.name} has none coming.")
    if session.starts_at - ctx.now > timedelta(hours=1):
        zone = ZoneInfo(await ctx.zone())
        raise ctx.fail("No session is running or about to start (within the hour): the next "
                       f"is {format_local(session.starts_at, zone)}.")
    return session


async def _phase_from(ctx: Ctx, session: Session, index: int) -> None:
    phases = CohortSettings.from_json(ctx.cohort.settings).session_phases(session.duration_min)
    await ctx.uow.void_pending(session_id=session.id, kinds=[PHASE])
    session.phase_run += 1
    session.phase = index if index < len(phases) else None
    await ctx.post(phase_message(phases, index, roles=ctx.cohort.roles,
                                 add_action=ctx.cmd("action add <text>")),
                   key=f"phase:{session.id}:{session.phase_run}:now")
    if index >= len(phases):
        return
    for n in phase_notices(session_id=session.id, run=session.phase_run, start_phase=index,
                           at=ctx.now, phases=phases):
        await ctx.uow.add_notification(Notification(
            key=n.key, kind=n.kind, cohort_id=ctx.cohort.id, session_id=session.id,
            due_at=n.due_at, stale_at=n.stale_at, payload=n.payload,
        ))


async def session_start(ctx: Ctx, cmd: c.SessionStart) -> Message:
    session = await _running(ctx)
    if session.phase is not None:
        raise ctx.fail(f"The session is already running ({ctx.cmd('session next')} moves on).")
    await _phase_from(ctx, session, 0)
    return Message.of("Session started; phase prompts will follow on time.")


async def session_next(ctx: Ctx, cmd: c.SessionNext) -> Message:
    session = await _running(ctx)
    if session.phase is None:
        raise ctx.fail(f"No session is running; start one with {ctx.cmd('session start')}.")
    await _phase_from(ctx, session, session.phase + 1)
    return Message.of("Moved on to the next phase.")


async def session_end(ctx: Ctx, cmd: c.SessionEnd) -> Message:
    session = await _running(ctx)
    if session.phase is None:
        raise ctx.fail("No session is running.")
    phases = CohortSettings.from_json(ctx.cohort.settings).session_phases(session.duration_min)
    await _phase_from(ctx, session, len(phases))
    return Message.of("Session ended.")


HANDLERS: dict[type[c.Command], Handler] = {
    c.Next: show_next,
    c.ShowSchedule: show_schedule,
    c.Away: away,
    c.Back: back,
    c.RequestSwap: request_swap,
    c.AnswerSwap: answer_swap,
    c.AssignRole: assign_role,
    c.CancelSession: cancel_session,
    c.MoveSession: move_session,
    c.AddSession: add_session,
    c.PostPrompt: post_prompt,
    c.SessionStart: session_start,
    c.SessionNext: session_next,
    c.SessionEnd: session_end,
}
