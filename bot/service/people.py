"""Commands about the caller themself: help, time zone, forget-me."""

from __future__ import annotations

from bot.chat import commands as c
from bot.chat.grammar import find_specs, help_lines
from bot.chat.message import Message, lines
from bot.domain.model import Member, Person, Swap
from bot.domain.timeparse import parse_zone
from bot.service.context import Ctx, Handler, person_of


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
    memberships = [m for _, m in await ctx.uow.memberships(ctx.user, ctx.tenant)]
    if not cmd.confirmed:
        return Message.of(
            f"This deletes your memberships ({len(memberships)}), roles, absences, actions, "
            "check-in answers and time zone. Anonymous questions were never linked to you and "
            f"stay. Type {ctx.cmd('forget-me confirm')} to go ahead."
        )
    ids = tuple(m.id for m in memberships)
    if ids:
        await ctx.uow.delete_where(Swap, from_member=ids)
        await ctx.uow.delete_where(Swap, to_member=ids)
        await ctx.uow.delete_where(Member, id=ids)  # cascades to actions, roles, absences
    await ctx.uow.delete_where(Person, tenant=ctx.tenant, platform=ctx.user.platform,
                               user_id=ctx.user.id)
    return Message.of("Done: everything the bot kept about you is deleted.")


HANDLERS: dict[type[c.Command], Handler] = {
    c.Help: show_help,
    c.SetTimezone: set_timezone,
    c.ForgetMe: forget_me,
}
