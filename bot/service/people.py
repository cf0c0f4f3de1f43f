"""Commands about the caller themself: help, time zone, forget-me."""

from __future__ import annotations

import uuid

from bot.chat import commands as c
from bot.chat.grammar import find_specs, help_lines
from bot.chat.message import Message, lines
from bot.domain.model import Cohort, Member, Person, Question, RateCount, Swap, Upvote
from bot.domain.timeparse import parse_zone
from bot.service.context import Ctx, Handler, person_of, tell_facilitators


async def show_help(ctx: Ctx, cmd: c.Help) -> Message:
    word = ctx.policy.prefix_for(ctx.platform)
    if cmd.topic:
        specs = find_specs(cmd.topic)
        if not specs:
            raise ctx.fail(f"No command '{cmd.topic[:30]}'. {word} help lists them all.")
        allowed = [s for s in specs if s.role <= ctx.role]
        shown = allowed or specs
        note = [] if allowed else [f"(needs a {shown[0].role.label} role)"]
        return lines([*help_lines(max(s.role for s in shown), word=word, specs=shown), *note])
    where = f" in {ctx.cohort_.name}" if ctx.cohort_ else ""
    return lines([f"What you can do{where} (as {ctx.role.label}):",
                  *help_lines(ctx.role, word=word),
                  f"{word} help <command> explains one command."])


async def set_timezone(ctx: Ctx, cmd: c.SetTimezone) -> Message:
    if cmd.zone is None:
        zone = await ctx.zone()
        return Message.of(f"Times are shown to you in {zone}. Change it with "
                          f"{ctx.cmd('tz <Area/City>')}.")
    zone = parse_zone(cmd.zone).key
    person = await person_of(ctx.uow, ctx.user, ctx.tenant)
    if person is None:
        ctx.uow.add(Person(tenant=ctx.tenant, platform=ctx.user.platform, user_id=ctx.user.id,
                           zone=zone))
    else:
        person.zone = zone
    return Message.of(f"Times are now shown to you in {zone}.")


async def forget_me(ctx: Ctx, cmd: c.ForgetMe) -> Message:
    # This tenant's memberships: the same id in another workspace is another person.
    mine = await ctx.uow.memberships(ctx.user, ctx.tenant)
    if not cmd.confirmed:
        return Message.of(
            f"This deletes your memberships ({len(mine)}), roles, absences, actions, "
            "check-in answers, time zone and every message the bot still holds for you or "
            "about you. Anonymous questions were never linked to you and stay. Type "
            f"{ctx.cmd('forget-me confirm')} to go ahead."
        )
    ids = tuple(m.id for _, m in mine)
    if ids:
        await ctx.uow.delete_where(Swap, from_member=ids)
        await ctx.uow.delete_where(Swap, to_member=ids)
        await _forget_votes(ctx, [co for co, _ in mine])
        await ctx.uow.delete_where(Member, id=ids)  # cascades to actions, roles, absences
    await ctx.uow.delete_where(Person, tenant=ctx.tenant, platform=ctx.user.platform,
                               user_id=ctx.user.id)
    day = ctx.now.date().isoformat()
    await ctx.uow.delete_where(RateCount, day=day, key_hash=ctx.keys.digest(
        await ctx.keys.of_day(ctx.uow, ctx.now), str(ctx.user)))
    await ctx.uow.forget_messages(ctx.user, ctx.tenant)
    ctx.erased = True
    for cohort in {co.id: co for co, _ in mine}.values():
        await _tell_facilitators(ctx, cohort)
    return Message.of("Done: everything the bot kept about you is deleted.")


async def _forget_votes(ctx: Ctx, cohorts: list[Cohort]) -> None:
    """The caller's upvote records on questions still open for voting (the counts stay)."""
    for cohort in {co.id: co for co in cohorts}.values():
        for q in await ctx.uow.find(Question, cohort_id=cohort.id, status="released"):
            if q.vote_salt is not None:
                await ctx.uow.delete_where(Upvote, question_id=q.id,
                                           voter_hash=ctx.keys.voter(q.vote_salt, str(ctx.user)))


async def _tell_facilitators(ctx: Ctx, cohort: Cohort) -> None:
    """A notice that names no one: the rotation and the roster changed."""
    notice = Message.of(f"A member left {cohort.name} and had their data deleted. The "
                        "rotation goes on without them.")
    await tell_facilitators(ctx.uow, cohort, notice, now=ctx.now,
                            key=f"forget:{uuid.uuid4().hex}")


HANDLERS: dict[type[c.Command], Handler] = {
    c.Help: show_help,
    c.SetTimezone: set_timezone,
    c.ForgetMe: forget_me,
}
