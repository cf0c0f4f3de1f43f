"""Commands about the caller themself: help, time zone, forget-me."""

from __future__ import annotations

import difflib
import uuid

from bot.chat import commands as c
from bot.chat.grammar import COMMANDS, Role, Spec, find_specs
from bot.chat.help import detail, overview
from bot.chat.message import Message, lines
from bot.domain.cohort_settings import SETTING_KEYS, CohortSettings, describe_setting
from bot.domain.model import Cohort, Member, Person, Question, RateCount, Swap, Upvote
from bot.domain.timeparse import parse_zone
from bot.service.context import Ctx, Handler, person_of, tell_facilitators


async def show_help(ctx: Ctx, cmd: c.Help) -> Message:
    word = ctx.policy.prefix_for(ctx.platform)
    if cmd.topic:
        return await _help_topic(ctx, cmd.topic, word)
    where = f" in {ctx.cohort_.name}" if ctx.cohort_ else ""
    body = [f"What you can do{where} (as {ctx.role.label}):", *overview(ctx.role, word=word)]
    if ctx.role == Role.ANYONE:
        body.append("In a cohort you see its own commands here.")
    body.append(f"{word} help <command> shows its examples and values, e.g. {word} help away.")
    return lines(body)


async def _help_topic(ctx: Ctx, topic: str, word: str) -> Message:
    words = topic.removeprefix(word.lower()).split()
    specs = find_specs(" ".join(words))
    if not specs:
        names = sorted({" ".join(s.words[: len(words)]) for s in COMMANDS})
        near = difflib.get_close_matches(" ".join(words)[:40], names, n=2, cutoff=0.6)
        hint = f" Did you mean {' or '.join(f'{word} help {n}' for n in near)}?" if near else ""
        raise ctx.fail(f"No command '{topic[:30]}'.{hint} {word} help lists them all.")
    allowed = [s for s in specs if s.role <= ctx.role]
    shown = allowed or specs
    body: list[str] = []
    if len(shown) > 3:  # a family ("help cohort"): its forms, one line each
        body.append(f"'{' '.join(words)}' has {len(shown)} forms:")
        body += [f"{s.usage(word)} — {s.summary}" for s in shown]
        body.append(f"{word} help <command> shows one with its examples, e.g. "
                    f"{word} help {shown[0].name}.")
        return lines(body)
    if len(shown) > 1:
        body.append(f"'{' '.join(words)}' has {len(shown)} forms:")
    for i, spec in enumerate(shown):
        if i:
            body.append("")
        body += detail(spec, word=word, values=await _values(ctx, spec))
    if not allowed:
        body.append(f"(needs a {shown[0].role.label} role)")
    return lines(body)


async def _values(ctx: Ctx, spec: Spec) -> list[str]:
    """What only this cohort knows: its roles, its settings and their current values."""
    co = ctx.cohort_
    if co is None:
        return []
    if spec.name in ("swap", "rotation assign"):
        return [f"Roles in {co.name}: {', '.join(co.roles)}."]
    if spec.name == "cohort set":
        settings = CohortSettings.from_json(co.settings)
        return [f"Settings of {co.name}, with their values now:",
                *(f"• {k.name} = {describe_setting(settings, k.name)} — {k.help}"
                  for k in SETTING_KEYS)]
    return []


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
