"""Admin commands: create, link, schedule and configure cohorts. Each reply says what the
change will do (e.g. the next session times)."""

from __future__ import annotations

import difflib
import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.chat import commands as c
from bot.chat.grammar import Role
from bot.chat.message import Mention, Message, Strong, Text, When, lines, plural
from bot.domain.cohort_settings import (
    DEFAULT_REMINDERS_MIN,
    DEFAULT_ROLES,
    SETTING_KEYS,
    CohortSettings,
    apply_setting,
    consequence,
    describe_setting,
)
from bot.domain.errors import NotAllowed, UserError
from bot.domain.model import ACTIVE, ARCHIVED, PAUSED, SCHEDULED, Cohort, Member, Notification
from bot.domain.planning import DERIVED, PROMPT
from bot.domain.refs import UserRef
from bot.domain.schedule import Schedule, describe, occurrences, parse_schedule_spec
from bot.domain.timeparse import exact_utc, format_duration, format_wall
from bot.service.cohort_state import next_session, queue_prompt, roster, upcoming
from bot.service.context import (
    Ctx,
    Handler,
    admin_over,
    member_of,
    queue_message,
    tell_facilitators,
)
from bot.service.planner import plan_cohort
from bot.service.reshuffle import refill, snapshot, tell_changes


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:32] or "cohort"


async def _unique_slug(ctx: Ctx, name: str) -> str:
    base, n = _slug(name), 1
    slug = base
    while await ctx.uow.find(Cohort, tenant=ctx.tenant, slug=slug):
        n += 1
        slug = f"{base}-{n}"
    return slug


async def _linked(ctx: Ctx) -> Cohort | None:
    ch = ctx.inv.channel
    if ch is None:
        return None
    found = await ctx.uow.find(Cohort, tenant=ctx.tenant, platform=ch.platform,
                               channel_id=ch.id)
    return found[0] if found else None


async def _next_sessions(ctx: Ctx, cohort: Cohort, n: int = 3) -> Message:
    sessions = [s for s in await upcoming(ctx.uow, cohort, ctx.now, n) if s.status == SCHEDULED]
    if not sessions:
        return Message.of("No upcoming sessions.")
    parts: list[Text | When] = [Text("Next sessions: ")]
    for i, s in enumerate(sessions):
        if i:
            parts.append(Text("; "))
        parts.append(When(s.starts_at, cohort.zone))
    return Message(tuple(parts))


async def create_cohort(ctx: Ctx, cmd: c.CreateCohort) -> Message:
    if await ctx.uow.find(Cohort, tenant=ctx.tenant, name=cmd.name):
        raise ctx.fail(f"A cohort called {cmd.name} exists already.")
    existing = await _linked(ctx)
    if existing is not None:
        raise ctx.fail(f"This channel is already linked to {existing.name}.")
    ch = ctx.inv.channel
    cohort = Cohort(
        name=cmd.name, slug=await _unique_slug(ctx, cmd.name), zone=ctx.policy.default_zone,
        created_at=ctx.now, tenant=ctx.tenant, platform=ch.platform if ch else None,
        channel_id=ch.id if ch else None,
        roles=list(DEFAULT_ROLES), reminder_offsets=list(DEFAULT_REMINDERS_MIN),
        settings=CohortSettings().to_json(),
    )
    ctx.uow.add(cohort)
    await ctx.uow.flush()
    where = "linked to this channel" if ch else \
        f"not linked yet: run {ctx.cmd('cohort link ' + cohort.slug)} in its channel"
    return lines([
        Message.of("Created ", Strong(cohort.name), f" (id {cohort.slug}), {where}."),
        f"Next: {ctx.cmd('cohort schedule weekly tue 14:00 Europe/London for 90m')}, then "
        f"{ctx.cmd('cohort members add @…')}.",
    ])


async def link_cohort(ctx: Ctx, cmd: c.LinkCohort) -> Message:
    ch = ctx.inv.channel
    if ch is None:
        raise ctx.fail("Run this in the channel the cohort should use.")
    # Rights over both places: the cohort's (checked by its role) and this one.
    if not await admin_over(ctx.policy, ctx.directory, ctx.inv, ch):
        raise NotAllowed("Only an admin of this channel can link a cohort to it.")
    existing = await _linked(ctx)
    if existing is not None:
        raise ctx.fail(f"This channel is already linked to {existing.name}.")
    if cmd.name is not None:
        named = [co for co in await ctx.uow.find(Cohort, tenant=ctx.tenant)
                 if co.name.lower() == cmd.name.lower() and await ctx.admin_of(co)]
        hint = (f" Did you mean {ctx.cmd('cohort link ' + named[0].slug)}?" if named
                else f" See {ctx.cmd('cohort list')}.")
        raise ctx.fail(f"'{cmd.name[:40]}' is a name: cohort link takes the cohort's id "
                       f"(one word).{hint}")
    if cmd.slug is None:
        if ctx.cohort_ is None:
            raise ctx.fail(f"Which cohort? Give its id (see {ctx.cmd('cohort list')}).")
        cohort = ctx.cohort_
    else:
        found = await ctx.uow.find(Cohort, tenant=ctx.tenant, slug=cmd.slug)
        # A cohort the caller may not administer is as unknown as one that does not exist.
        if not found or not await ctx.admin_of(found[0]):
            raise ctx.fail(f"No cohort has the id '{cmd.slug}' (see {ctx.cmd('cohort list')}).")
        cohort = found[0]
    cohort.platform, cohort.channel_id = ch.platform, ch.id
    return Message.of(Strong(cohort.name), " is now linked to this channel.")


async def list_cohorts(ctx: Ctx, cmd: c.ListCohorts) -> Message:
    # The caller's tenant only, and of it only what they administer (a Matrix room's power
    # level rules that room's cohort, not its neighbours').
    cohorts = [co for co in await ctx.uow.find(Cohort, tenant=ctx.tenant, order_by="name")
               if await ctx.admin_of(co)]
    if not cohorts:
        return Message.of(f"No cohorts yet. Create one with {ctx.cmd('cohort create <name>')}.")
    body: list[Message | str] = ["Cohorts:"]
    for co in cohorts:
        n = len(await roster(ctx.uow, co))
        linked = "linked" if co.channel else "not linked"
        body.append(Message.of(Strong(co.name), f" (id {co.slug}) — {co.status}, "
                               f"{plural(n, 'member')}, {linked}"))
    return lines(body)


async def show_cohort(ctx: Ctx, cmd: c.ShowCohort) -> Message:
    co = ctx.cohort
    members = await roster(ctx.uow, co)
    facilitators = [m for m in await ctx.uow.find(Member, cohort_id=co.id, is_facilitator=True)]
    settings = CohortSettings.from_json(co.settings)
    sched = describe(Schedule.from_json(co.schedule)) if co.schedule else "no schedule yet"
    reminders = ", ".join(format_duration(timedelta(minutes=m)) for m in co.reminder_offsets)

    def people(ms: list[Member]) -> Message:
        parts: list[Text | Mention] = []
        for i, m in enumerate(ms):
            parts += [Text(", ")] if i else []
            parts.append(Mention(m.user))
        return Message(tuple(parts)) if parts else Message.of("none")

    body: list[Message | str] = [
        Message.of(Strong(co.name), f" (id {co.slug}) — {co.status}, zone {co.zone}"),
        f"Schedule: {sched}",
        await _next_sessions(ctx, co) if co.status != ARCHIVED else "No more sessions: archived.",
        f"Roles: {', '.join(co.roles)}",
        f"Reminders before each session: {reminders or 'off'}",
        Message.of(f"Members ({len(members)}): ") + people(members),
        Message.of("Facilitators: ") + people(facilitators),
        "Settings: " + "; ".join(f"{k.name} = {describe_setting(settings, k.name)}"
                                 for k in SETTING_KEYS),
    ]
    return lines(body)


async def _replan(ctx: Ctx, cohort: Cohort, *, drop_future: bool = False) -> list[str]:
    """Re-plan the cohort's notifications after a change (same transaction). Queued prompts
    keep their session; those of sessions that go (a new schedule) are queued again for the
    next session: their texts are returned."""
    future = await ctx.uow.sessions_between(cohort.id, ctx.now, ctx.now + timedelta(days=800),
                                            include_cancelled=True)
    carried: list[str] = []
    for s in future:
        gone = drop_future and s.origin == "schedule"
        if gone:
            carried += [str(n.payload.get("text", "")) for n in await ctx.uow.find(
                Notification, session_id=s.id, kind=PROMPT, status="pending")]
        await ctx.uow.void_pending(session_id=s.id, kinds=None if gone else DERIVED)
        if gone:
            await ctx.uow.delete(s)
    await ctx.uow.flush()
    await plan_cohort(ctx.uow, cohort, ctx.now, ctx.policy)
    session = await next_session(ctx.uow, cohort, ctx.now) if carried else None
    if session is not None:
        for text in carried:
            await queue_prompt(ctx.uow, cohort, session, text)
    return carried


async def set_schedule(ctx: Ctx, cmd: c.SetSchedule) -> Message:
    co = ctx.cohort
    sched = parse_schedule_spec(cmd.spec, default_zone=co.zone)
    zone = ZoneInfo(sched.zone)
    try:
        instants = [exact_utc(d, zone) for d in sched.dates]
    except UserError as e:
        raise ctx.fail(e.message) from None
    if instants and all(i <= ctx.now for i in instants) and sched.rrule is None:
        raise ctx.fail("Every date of that schedule is in the past: give dates to come.")
    past = [d for d, i in zip(sched.dates, instants, strict=True) if i <= ctx.now]
    today = ctx.now.astimezone(zone).date()
    if sched.rrule is not None and sched.until is not None and sched.until < today \
            and not [i for i in instants if i > ctx.now]:
        raise ctx.fail(f"'until {sched.until.isoformat()}' is in the past (today is "
                       f"{today.isoformat()}): that schedule would have no sessions.")
    co.schedule = sched.to_json()
    co.zone = sched.zone
    # A new schedule replaces the old one's future sessions (and their cancellations or
    # moves); one-off added sessions stay.
    prompts = await _replan(ctx, co, drop_future=True)
    skipped: list[Message | str] = (
        [f"Left out, being in the past: {', '.join(format_wall(d) for d in past)}."]
        if past else [])
    if prompts:
        first = await next_session(ctx.uow, co, ctx.now)
        skipped.append(
            Message.of(f"{plural(len(prompts), 'queued prompt')} will be posted when the next "
                       "session starts: ", When(first.starts_at, co.zone), ".")
            if first else
            f"{plural(len(prompts), 'queued prompt')} dropped: the schedule has no session "
            "to post them in.")
    return lines([
        Message.of("Schedule for ", Strong(co.name), f": {describe(sched)}."),
        *skipped,
        *_skipped_hours(sched, zone, ctx.now),
        await _next_sessions(ctx, co),
    ])


def _skipped_hours(sched: Schedule, zone: ZoneInfo, now: datetime) -> list[str]:
    """A line for each session of the coming year whose wall time does not exist (the hour
    skipped when the clocks go forward): it starts later, and the admin is told when."""
    if sched.rrule is None or sched.start_time is None:
        return []
    wanted = sched.start_time
    moved = [i.astimezone(zone) for i in occurrences(sched, after=now,
                                                     before=now + timedelta(days=366))]
    return [f"Note: {d:%Y-%m-%d} {wanted:%H:%M} does not exist in {zone.key} (the clocks go "
            f"forward that night): that session starts at {d:%H:%M}."
            for d in moved if d.time().replace(tzinfo=None) != wanted]


async def _add_people(ctx: Ctx, users: tuple[UserRef, ...], *, facilitator: bool,
                      add: bool) -> list[UserRef]:
    changed: list[UserRef] = []
    co = ctx.cohort
    for user in users:
        if user.platform != ctx.platform:
            raise ctx.fail("Mention people on this platform.")
        m = await member_of(ctx.uow, co, user)
        if add:
            if m is None:
                m = Member(cohort_id=co.id, platform=user.platform, user_id=user.id,
                           joined_at=ctx.now, is_member=not facilitator,
                           is_facilitator=facilitator)
                ctx.uow.add(m)
                changed.append(user)
            elif facilitator and not m.is_facilitator:
                m.is_facilitator = True
                changed.append(user)
            elif not facilitator and not m.is_member:
                m.is_member, m.joined_at = True, ctx.now
                changed.append(user)
        elif m is not None:
            if facilitator and m.is_facilitator:
                m.is_facilitator = False
                changed.append(user)
            elif not facilitator and m.is_member:
                m.is_member = False
                changed.append(user)
            if not m.is_member and not m.is_facilitator:
                await ctx.uow.delete(m)
    await ctx.uow.flush()
    return changed


def _names(users: list[UserRef]) -> Message:
    parts: list[Text | Mention] = []
    for i, u in enumerate(users):
        parts += [Text(", ")] if i else []
        parts.append(Mention(u))
    return Message(tuple(parts))


async def change_members(ctx: Ctx, cmd: c.ChangeMembers) -> Message:
    co = ctx.cohort
    if ctx.role < Role.ADMIN and not CohortSettings.from_json(co.settings).facilitator_members:
        raise NotAllowed(f"Only an admin of {co.name} can add or remove members (an admin "
                         "turned facilitator-members off).")
    before = await snapshot(ctx.uow, co, ctx.now) if not cmd.add else {}
    changed = await _add_people(ctx, cmd.users, facilitator=False, add=cmd.add)
    n = len(await roster(ctx.uow, ctx.cohort))
    if changed and not cmd.add:
        for user in changed:
            # (what the bot owes the person, not a message the caller sends: no flood limit)
            await queue_message(ctx.uow, Message.of(
                f"You were removed from {co.name} by ", Mention(ctx.user),
                ": no more roles, reminders or check-ins from it."),
                now=ctx.now, cohort=co, key=f"removed:{uuid.uuid4().hex}", user=user)
            await tell_facilitators(
                ctx.uow, co, Message.of(Mention(user), f" was removed from {co.name} by ",
                                        Mention(ctx.user), "."),
                now=ctx.now, key=f"removed:{uuid.uuid4().hex}",
                but=ctx.member_.id if ctx.member_ is not None else None)
        await refill(ctx.uow, co, ctx.now)
        await tell_changes(ctx.uow, co, ctx.now, before, why="after a member left")
    if not changed:
        return Message.of(f"Nothing changed: {'already members' if cmd.add else 'not members'}."
                          f" {ctx.cohort.name} has {plural(n, 'member')}.")
    verb = "Added" if cmd.add else "Removed"
    tail = " They join the end of the rotation queue." if cmd.add else ""
    return Message.of(f"{verb} ") + _names(changed) + Message.of(
        f". {ctx.cohort.name} has {plural(n, 'member')}.{tail}")


async def change_facilitators(ctx: Ctx, cmd: c.ChangeFacilitators) -> Message:
    changed = await _add_people(ctx, cmd.users, facilitator=True, add=cmd.add)
    if not changed:
        return Message.of("Nothing changed.")
    verb = "now facilitate" if cmd.add else "no longer facilitate"
    if len(changed) == 1:
        verb += "s"
    return _names(changed) + Message.of(f" {verb} {ctx.cohort.name}.")


async def set_roles(ctx: Ctx, cmd: c.SetRoles) -> Message:
    ctx.cohort.roles = list(cmd.roles)
    return Message.of(f"Roles for {ctx.cohort.name}, in priority order: {', '.join(cmd.roles)}. "
                      "Everyone else consults. Sessions already announced keep their roles.")


async def set_reminders(ctx: Ctx, cmd: c.SetReminders) -> Message:
    co = ctx.cohort
    co.reminder_offsets = list(cmd.offsets_min)
    await _replan(ctx, co)
    if not cmd.offsets_min:
        return Message.of(f"Reminders for {co.name} are off.")
    text = ", ".join(format_duration(timedelta(minutes=m)) for m in cmd.offsets_min)
    return lines([f"Reminders for {co.name} go out {text} before each session.",
                  await _next_sessions(ctx, co)])


async def set_option(ctx: Ctx, cmd: c.SetCohortOption) -> Message:
    co = ctx.cohort
    settings = CohortSettings.from_json(co.settings)
    names = [k.name for k in SETTING_KEYS]
    if cmd.key is None:
        return lines([f"Settings of {co.name} (change one with "
                      f"{ctx.cmd('cohort set <setting> <value>')}):",
                      *(f"• {k.name} = {describe_setting(settings, k.name)} — {k.help}"
                        for k in SETTING_KEYS)])
    if cmd.key not in names:
        near = difflib.get_close_matches(cmd.key, names, n=1, cutoff=0.6)
        hint = f" Did you mean {near[0]}?" if near else ""
        raise ctx.fail(f"Unknown setting '{cmd.key[:30]}'.{hint} Settings: {', '.join(names)}.")
    if cmd.value is None:
        spec = next(k for k in SETTING_KEYS if k.name == cmd.key)
        return Message.of(f"{cmd.key} = {describe_setting(settings, cmd.key)} ({spec.help}).")
    try:
        new = apply_setting(settings, cmd.key, cmd.value)
    except UserError as e:
        raise ctx.fail(e.message) from None
    co.settings = new.to_json()
    await _replan(ctx, co)
    cost = consequence(new, cmd.key)
    return Message.of(f"{co.name}: {cmd.key} = {describe_setting(new, cmd.key)}."
                      + (f"\n{cost}" if cost else ""))


async def change_status(ctx: Ctx, cmd: c.ChangeCohortStatus) -> Message:
    co = ctx.cohort
    if co.status == ARCHIVED:
        raise ctx.fail(f"{co.name} is archived; it cannot change any more.")
    if cmd.status == "pause":
        co.status = PAUSED
        await _replan(ctx, co)
        return Message.of(f"{co.name} is paused: no reminders or announcements until "
                          f"{ctx.cmd('cohort resume')}.")
    if cmd.status == "resume":
        co.status = ACTIVE
        await _replan(ctx, co)
        return lines([f"{co.name} is active again.", await _next_sessions(ctx, co)])
    days = ctx.policy.retention.days
    if not cmd.confirmed:
        where = "frees its channel for another cohort" if co.channel else "cannot be undone"
        return Message.of(
            f"Archiving {co.name} is for good: no more reminders, announcements or check-ins, "
            f"its actions and check-in notes are deleted {plural(days, 'day')} later, and it "
            f"{where}. "
            f"Type {ctx.cmd(_with_cohort(ctx, 'cohort archive confirm'))} to go ahead.")
    co.status, co.archived_at = ARCHIVED, ctx.now
    await _replan(ctx, co)
    await ctx.post(Message.of(Strong(f"{co.name} is archived."), " Thank you all. The bot no "
                              "longer sends reminders here; this channel is free for another "
                              "cohort."))
    co.channel_id = None  # (the message above is addressed already)
    return Message.of(f"{co.name} is archived and its channel is free. Its actions and check-in "
                      f"notes will be deleted in {plural(days, 'day')}.")


def _with_cohort(ctx: Ctx, command: str) -> str:
    """`command` as the caller must type it to reach the same cohort from where they are."""
    if ctx.inv.channel is not None and ctx.cohort_ is not None \
            and ctx.cohort_.channel == ctx.inv.channel:
        return command
    return f"--cohort {ctx.cohort.slug} {command}"


async def unlink_cohort(ctx: Ctx, cmd: c.UnlinkCohort) -> Message:
    co = ctx.cohort
    if co.channel is None:
        raise ctx.fail(f"{co.name} is not linked to a channel.")
    await ctx.post(Message.of(f"{co.name} is no longer linked to this channel: its reminders "
                              "and posts stop here."))
    co.channel_id = None
    return Message.of(f"{co.name} (id {co.slug}) is unlinked; link it elsewhere with "
                      f"{ctx.cmd('cohort link ' + co.slug)} in its new channel.")


async def rename_cohort(ctx: Ctx, cmd: c.RenameCohort) -> Message:
    co = ctx.cohort
    if cmd.name == co.name:
        return Message.of("Nothing changed.")
    others = [o for o in await ctx.uow.find(Cohort, tenant=ctx.tenant, name=cmd.name)
              if o.id != co.id]
    if others:
        raise ctx.fail(f"A cohort called {cmd.name} exists already.")
    old, co.name = co.name, cmd.name
    await ctx.post(Message.of(f"{old} is now called ", Strong(cmd.name), "."))
    return Message.of(f"Renamed {old} to ", Strong(cmd.name), f"; its id stays {co.slug}.")


HANDLERS: dict[type[c.Command], Handler] = {
    c.CreateCohort: create_cohort,
    c.LinkCohort: link_cohort,
    c.ListCohorts: list_cohorts,
    c.ShowCohort: show_cohort,
    c.SetSchedule: set_schedule,
    c.ChangeMembers: change_members,
    c.ChangeFacilitators: change_facilitators,
    c.SetRoles: set_roles,
    c.SetReminders: set_reminders,
    c.SetCohortOption: set_option,
    c.ChangeCohortStatus: change_status,
    c.UnlinkCohort: unlink_cohort,
    c.RenameCohort: rename_cohort,
}
