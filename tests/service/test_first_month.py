"""A programme's first month: nothing goes wrong silently, a grammar that forgives, help
that helps. Weekly Tue 14:00 Europe/London for 90m; the clock starts Mon 30 Nov 2026 09:00 UTC.
"""

from __future__ import annotations

from tests.conftest import Harness


async def test_queued_prompt_survives_pause_and_resume(harness: Harness) -> None:
    await harness.setup_cohort()
    assert "when the session starts" in await harness.say("fay", "prompt next Bring one example")
    assert "paused" in await harness.say("root", "cohort pause")
    assert "active again" in await harness.say("root", "cohort resume")
    await harness.advance("1d6h")  # past Tue 1 Dec 14:00
    assert "Prompt: Bring one example" in harness.channel_posts()


async def test_queued_prompt_follows_a_moved_session(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("fay", "prompt next Bring one example")
    assert "Moved" in await harness.say("fay", "session move next to 2026-12-02 10:00")
    await harness.advance("1d6h")  # Tue 15:00: the session is now on Wednesday
    assert "Prompt: Bring one example" not in harness.channel_posts()
    await harness.advance("1d")
    assert harness.channel_posts().count("Prompt: Bring one example") == 1


async def test_queued_prompt_survives_a_new_schedule(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("fay", "prompt next Bring one example")
    reply = await harness.say("root", "cohort schedule weekly wed 10:00 Europe/London for 90m")
    assert "1 queued prompt will be posted when the next session starts: Wed 2 Dec 2026, " \
        "10:00 GMT." in reply
    await harness.advance("2d")  # Wed 2 Dec 09:00: not yet
    assert "Prompt: Bring one example" not in harness.channel_posts()
    await harness.advance("2h")
    assert harness.channel_posts().count("Prompt: Bring one example") == 1
    # Dates instead of a weekly rule: the prompt goes to the first of them.
    await harness.say("fay", "prompt next Read the case first")
    reply = await harness.say("root", "cohort schedule dates 2026-12-03 10:00, 2026-12-10 10:00")
    assert "will be posted when the next session starts: Thu 3 Dec" in reply
    await harness.advance("1d2h")
    assert harness.channel_posts().count("Prompt: Read the case first") == 1


async def test_a_prompt_due_in_a_pause_waits_for_the_first_session_after_it(
        harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("fay", "prompt next Bring one example")
    await harness.say("root", "cohort pause")
    await harness.advance("1d6h")  # Tue 1 Dec 14:00 passes while paused
    assert "Prompt: Bring one example" not in harness.channel_posts()
    await harness.say("root", "cohort resume")
    await harness.advance("7d")  # Tue 8 Dec 14:00: the first session after the pause
    assert harness.channel_posts().count("Prompt: Bring one example") == 1


async def test_session_add_on_a_taken_slot_is_refused(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("fay", "session add 2026-12-08 14:00")
    assert "There is already a session then: Tue 8 Dec 2026, 14:00 GMT." in reply
    overlapping = await harness.say("fay", "session add 2026-12-15 15:00")  # inside 14:00-15:30
    assert "There is already a session then: Tue 15 Dec 2026, 14:00 GMT." in overlapping
    schedule = await harness.say("ana", "schedule 3")
    assert schedule.count("Tue 8 Dec 2026") == 1
    assert "Added" in await harness.say("fay", "session add 2026-12-10 14:00")


async def test_phases_speak_of_the_cohorts_roles_and_fill_its_length(harness: Harness) -> None:
    await harness.setup_cohort(schedule="weekly tue 14:00 Europe/London for 120m")
    assert "presenter" in await harness.say("root", "cohort roles presenter moderator timekeeper")
    await harness.advance("1d4h30m")  # Tue 13:30, half an hour before the session
    harness.clear()
    await harness.say("fay", "session start")
    first = harness.channel_posts()[-1]
    assert "presenter, moderator, timekeeper" in first
    assert "note-taker" not in first and "case-giver" not in first
    await harness.advance("119m")
    posts = harness.channel_posts()
    assert not any(p.startswith("Session over.") for p in posts)
    assert not any("note-taker" in p or "case-giver" in p for p in posts), posts
    await harness.advance("1m")  # 120 minutes after the start
    assert harness.channel_posts()[-1].startswith("Session over.")
    assert "/cohort action add <text>" in harness.channel_posts()[-1]


async def test_explicit_phases_are_kept_as_set(harness: Harness) -> None:
    await harness.setup_cohort(schedule="weekly tue 14:00 Europe/London for 120m")
    await harness.say("root", "cohort set phases casting=5m, consultation=20m")
    await harness.advance("1d4h30m")
    await harness.say("fay", "session start")
    harness.clear()
    await harness.advance("25m")
    assert harness.channel_posts()[-1].startswith("Session over.")


async def test_an_away_member_cannot_take_a_role_by_swap(harness: Harness) -> None:
    await harness.setup_cohort()  # Tue 1 Dec: ana is case-giver, ben moderator, eli consults
    await harness.say("eli", "away next")
    refused = await harness.say("ana", "swap case-giver @eli")
    assert "eli is away for the next session" in refused
    assert harness.dms("eli") == []
    # Asked while there, away by the time they accept: refused, and both are told.
    await harness.say("eli", "back next")
    assert "Asked" in await harness.say("ana", "swap case-giver @eli")
    await harness.say("eli", "away next")
    harness.clear()
    reply = await harness.say("eli", "swap accept")
    assert "You are away for that session" in reply
    assert any("is away for the session" in d for d in harness.dms("ana"))
    assert "case-giver: @ana" in await harness.say("ana", "schedule 1")


async def test_swap_of_a_role_not_held_says_what_you_hold(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("ben", "swap note-taker @dev")
    assert "You do not hold note-taker in the next session (you hold moderator)." in reply


async def test_away_members_are_excused_in_the_checkin_summary(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.advance("1d6h")  # session 1 is over
    await harness.say("ben", "action add Write the grant intro")
    await harness.say("cleo", "action add Book a meeting")
    await harness.say("dev", "action add Read the paper")
    await harness.say("ben", "action done 1")
    await harness.say("cleo", "away 2026-12-08")
    summary = await harness.say("fay", "summary")
    assert "3 open actions — 1 done" in summary
    assert "1 without an answer, 1 excused (away)" in summary  # dev is missing, cleo excused
    harness.clear()
    for step in ("5d", "1d", "1d"):  # past Tue 8 Dec 14:00: the session's summary is out
        await harness.advance(step)
    posts = harness.channel_posts()
    summaries = [p for p in posts if p.startswith("Check-in summary")]
    assert len(summaries) == 1, posts
    [posted] = summaries
    assert "1 without an answer, 1 excused (away)" in posted


async def test_zone_abbreviations_and_cities_get_the_zone_they_mean(harness: Harness) -> None:
    await harness.setup_cohort()
    for typed, meant in (("EST", "America/New_York"), ("pst", "America/Los_Angeles"),
                         ("CET", "Europe/Berlin"), ("London", "Europe/London"),
                         ("new_york", "America/New_York"), ("Tokyo", "Asia/Tokyo")):
        reply = await harness.say("ana", f"tz {typed}")
        assert f"Did you mean {meant}" in reply, (typed, reply)
        assert "Usage: /cohort tz" in reply
    assert "Tue 1 Dec 2026, 14:00 GMT" in await harness.say("ana", "next")  # nothing changed
    refused = await harness.say("root", "cohort schedule weekly thu 09:30 EST")
    assert "Did you mean America/New_York" in refused
    assert "Europe/London" in await harness.say("root", "cohort show")
    fixed = await harness.say("root", "cohort schedule weekly thu 09:30 america/chicago")
    assert "America/Chicago" in fixed


async def test_archive_asks_first_tells_the_channel_and_frees_it(harness: Harness) -> None:
    await harness.setup_cohort()
    asked = await harness.say("root", "cohort archive")
    assert "/cohort cohort archive confirm" in asked
    assert "active" in await harness.say("root", "cohort show")  # nothing changed yet
    harness.clear()
    done = await harness.say("root", "cohort archive confirm")
    assert "archived and its channel is free" in done
    assert any("Peer A is archived." in p for p in harness.channel_posts())
    shown = await harness.say("root", "--cohort peer-a cohort show")
    assert "archived" in shown and "Next sessions" not in shown
    # The channel can hold next term's cohort.
    created = await harness.say("root", "cohort create Peer A 2027")
    assert "Created Peer A 2027 (id peer-a-2027), linked to this channel." in created
    assert "Peer A 2027 (id peer-a-2027) — active" in await harness.say("root", "cohort show")


async def test_an_archived_cohort_is_not_offered_in_a_dm(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("root", "cohort create Peer B", channel="peer-b")
    await harness.say("root", "cohort members add @ana", channel="peer-b")
    assert "several cohorts" in await harness.say("ana", "next", channel=None)
    await harness.say("root", "cohort archive confirm", channel="peer-b")
    reply = await harness.say("ana", "next", channel=None)
    assert "several cohorts" not in reply
    assert "Next session of Peer A" in reply


async def test_unlink_and_rename(harness: Harness) -> None:
    await harness.setup_cohort()
    harness.clear()
    assert "Renamed Peer A to Peer A (spring)" in await harness.say("root",
                                                                    "cohort rename Peer A (spring)")
    assert "Peer A is now called Peer A (spring)." in harness.channel_posts()
    assert "is unlinked" in await harness.say("root", "cohort unlink")
    assert "not linked to a cohort" in await harness.say("ana", "next")
    assert "linked to this channel" in await harness.say("root", "cohort link peer-a",
                                                         channel="new-room")
    assert "Next session of Peer A (spring)" in await harness.say("ana", "next",
                                                                  channel="new-room")


async def test_dates_in_the_past_are_flagged(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("ana", "away 2026-10-05")
    assert "2026-10-05 is in the past" in reply and "Usage: /cohort away" in reply
    assert "session(s)" not in reply
    assert "had no absence" in await harness.say("ana", "back all")  # nothing was stored
    partly = await harness.say("ana", "away 2026-11-20..2026-12-02")
    assert "Noted: you are away 2026-11-30 to 2026-12-02." in partly
    assert "not be pinged for 1 session then" in partly
    assert "That time is in the past" in await harness.say("fay", "session add 2026-11-02 14:00")
    assert "past" in await harness.say("root", "cohort schedule dates 2026-10-05 14:00")


async def test_a_time_skipped_on_a_dst_night_is_flagged(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("fay", "session add 2027-03-28 01:30")
    assert "2027-03-28 01:30 does not exist in Europe/London" in reply
    moved = await harness.say("fay", "session move next to 2027-03-28 01:15")
    assert "does not exist" in moved
    assert "Tue 1 Dec 2026" in await harness.say("ana", "next")  # nothing moved
    assert "does not exist" in await harness.say(
        "root", "cohort schedule dates 2027-03-28 01:30 Europe/London")
    # A repeating schedule is kept, and the one night its time is skipped is named.
    weekly = await harness.say("root", "cohort schedule weekly sun 01:30 Europe/London")
    assert ("Note: 2027-03-28 01:30 does not exist in Europe/London (the clocks go forward "
            "that night): that session starts at 02:30.") in weekly
    assert weekly.count("does not exist") == 1
    assert "does not exist" not in await harness.say(
        "root", "cohort schedule weekly sun 14:00 Europe/London")


async def test_a_removal_tells_the_person_the_facilitators_and_whose_role_moved(
        harness: Harness) -> None:
    await harness.setup_cohort()
    # Planned for Tue 1 Dec: ana case-giver, ben moderator, cleo note-taker, dev timekeeper.
    before = await harness.say("ana", "schedule 2")
    harness.clear()
    assert "Removed @ben" in await harness.say("root", "cohort members remove @ben")
    assert harness.dms("ben") == ["You were removed from Peer A by @root: no more roles, "
                                  "reminders or check-ins from it."]
    assert harness.dms("fay") == ["@ben was removed from Peer A by @root."]
    after = await harness.say("ana", "schedule 2")
    assert after != before
    moved = [who for who in ("ana", "cleo", "dev", "eli") if harness.dms(who)]
    assert moved, "nobody was told of the reshuffle"
    for who in moved:
        [dm] = harness.dms(who)
        assert dm.startswith("Roles in Peer A changed after a member left:")
        assert "(was " in dm
    # Only those whose role changed are told: ana keeps case-giver on Tue 1 Dec.
    assert "case-giver: @ana" in after.splitlines()[1]
    assert all("@ben" not in dm for who in moved for dm in harness.dms(who))


async def test_removing_an_announced_role_holder_gives_the_role_on(harness: Harness) -> None:
    await harness.setup_cohort()
    assert "You take" not in await harness.say("fay", "rotation assign timekeeper @dev")
    harness.clear()
    await harness.say("root", "cohort members remove @dev")
    reminder_roles = await harness.say("ana", "schedule 1")
    assert "timekeeper: @eli" in reminder_roles
    [dm] = harness.dms("eli")
    assert "timekeeper (was consultant)" in dm


async def test_leaving_the_channel_tells_those_whose_planned_role_changed(
        harness: Harness) -> None:
    from bot.domain.refs import ChannelRef, UserRef

    await harness.setup_cohort()
    harness.clear()
    await harness.app.bot.moved(UserRef("terminal", "ben"), ChannelRef("terminal", "peer-a"),
                                "terminal", present=False)
    await harness.app.dispatcher.run_due()
    told = [who for who in ("ana", "cleo", "dev", "eli") if harness.dms(who)]
    assert told
    assert all(harness.dms(w)[0].startswith("Roles in Peer A changed after a member left the "
                                            "channel:") for w in told)
    # ana stays case-giver on Tue 1 Dec: only the sessions where her role changed are named
    assert all("Tue 1 Dec" not in dm for dm in harness.dms("ana"))
    assert "ben" not in "".join(harness.dms("ana"))


GRAMMAR = [
    ("nxt", "Unknown command 'nxt'. Did you mean '/cohort next'?"),
    ("hlep", "Did you mean '/cohort help'?"),
    ("shedule 2", "Did you mean '/cohort schedule'"),
    ("session nxt", "Unknown command 'nxt' after 'session'. Did you mean '/cohort session next'?"),
    ("action finished 1", "Unknown command 'finished' after 'action'. Did you mean "
                          "'/cohort action done'?"),
    ("cohort crate Peer C", "Unknown command 'crate' after 'cohort'. Did you mean "
                            "'/cohort cohort create'?"),
    ("cohort members ad @eli", "Did you mean '/cohort cohort members add'?"),
    ("crate Peer C", "Did you mean '/cohort cohort create'?"),
    ("action", "'action' needs one more word: add, list, done"),
    ("schedule weekly tue 14:00", "To set the schedule: /cohort cohort schedule"),
]


async def test_unknown_words_get_the_nearest_valid_ones(harness: Harness) -> None:
    await harness.setup_cohort()
    for text, expected in GRAMMAR:
        reply = await harness.say("root", text)
        assert expected in reply, (text, reply)
        assert "Unknown command 'cohort'" not in reply and "Unknown command 'session'" not in reply
        assert "\nUsage: /cohort " in reply, (text, reply)


async def test_admin_verbs_work_without_the_cohort_word(harness: Harness) -> None:
    await harness.setup_cohort()
    assert "Created Peer C" in await harness.say("root", "create Peer C", channel="peer-c")
    assert "Added @gus" in await harness.say("root", "members add @gus", channel="peer-c")
    refused = await harness.say("ana", "pause")
    assert "Only an admin" in refused
    assert "active" in await harness.say("root", "cohort show")


async def test_cohort_set_alone_lists_every_setting_with_its_value(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("root", "cohort set")
    for line in ("• reminders-to = channel", "• moderation = off", "• min-batch = 2",
                 "• phases = default"):
        assert line in reply, reply
    assert "Did you mean moderation?" in await harness.say("root", "cohort set moderaton on")


async def test_cohort_names_where_ids_belong_suggest_ids_of_the_callers_tenant(
        harness: Harness) -> None:
    from bot.domain.refs import ChannelRef, UserRef
    from bot.service.api import Invocation

    await harness.setup_cohort()
    reply = await harness.say("ana", "--cohort Peer A next", channel=None)
    assert "'Peer A' is a name" in reply and "Did you mean --cohort peer-a?" in reply
    assert "Did you mean --cohort peer-a?" in await harness.say("ana", "--cohort peer-b next",
                                                                channel=None)
    # Another tenant's people never hear of this tenant's cohorts.
    other = UserRef("terminal", "ana")
    replies = await harness.app.bot.handle(Invocation(
        user=other, text="--cohort Peer A next", channel=ChannelRef("terminal", "elsewhere"),
        tenant="terminal:other"))
    text = "\n".join(r.message.plain() for r in replies)
    assert "'Peer A' is a name" in text
    assert "peer-a" not in text
    replies = await harness.app.bot.handle(Invocation(
        user=UserRef("terminal", "root"), text="--cohort peer-b next", channel=None,
        tenant="terminal:other"))
    assert "peer-a" not in "\n".join(r.message.plain() for r in replies)


async def test_times_and_days_as_people_say_them(harness: Harness) -> None:
    await harness.setup_cohort()  # Mon 30 Nov 2026
    added = await harness.say("fay", "session add 2026-12-10 2:30pm")
    assert "Added a session on Thu 10 Dec 2026, 14:30 GMT." in added
    schedule = await harness.say("root", "cohort schedule weekly wed 2pm Europe/London for 1h")
    assert "Next sessions: Wed 2 Dec 2026, 14:00 GMT" in schedule
    away = await harness.say("ana", "away next week")
    assert "Noted: you are away 2026-12-07 to 2026-12-13." in away
    assert "not be pinged for 2 sessions then" in away  # Wed 9 and the extra Thu 10
    assert "Noted: you are away 2026-12-02." in await harness.say("ben", "away wednesday")
    assert "1 absence removed" in await harness.say("ben", "back wed")
    assert "away 2026-12-02" in await harness.say("cleo", "away next wed")


async def test_help_is_short_and_grouped_by_task_for_each_role(harness: Harness) -> None:
    await harness.setup_cohort()
    member = (await harness.say("ana", "help")).splitlines()
    admin = (await harness.say("root", "help")).splitlines()
    assert len(member) <= 20 and len(admin) <= 30, (len(member), len(admin))
    assert member[0] == "What you can do in Peer A (as member):"
    assert any(line.startswith("Actions: /cohort action add <text>") for line in member)
    assert not any("cohort create" in line or "session start" in line for line in member)
    assert any(line.startswith("Set up: /cohort cohort create <name>") for line in admin)
    # Every command listed carries the prefix.
    for line in member + admin:
        body = line.split(": ", 1)[-1].strip()
        if " · " in body:
            assert all(part.startswith("/cohort ") for part in body.split(" · ")), line


async def test_help_for_one_command_gives_usage_examples_and_values(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("root", "cohort set moderation on")
    settings = await harness.say("root", "help cohort set")
    assert "Usage: /cohort cohort set <setting> [value]" in settings
    assert "Examples: /cohort cohort set · /cohort cohort set reminders-to both" in settings
    for line in ("• moderation = on", "• reminders-to = channel", "• min-batch = 2",
                 "• facilitator-members = on"):
        assert line in settings, settings
    schedule = await harness.say("root", "help cohort schedule")
    assert "monthly first wed 16:00 UTC" in schedule and "2pm" in schedule
    away = await harness.say("ana", "help away")
    assert "/cohort away next week" in away and "Days: next" in away
    assert "Roles in Peer A: case-giver, moderator" in await harness.say("ana", "help swap")
    assert "Did you mean /cohort help away?" in await harness.say("ana", "help awy")


async def test_facilitators_add_and_remove_members_unless_turned_off(harness: Harness) -> None:
    await harness.setup_cohort()
    assert "Added @gus" in await harness.say("fay", "cohort members add @gus")
    assert "Removed @gus" in await harness.say("fay", "cohort members remove @gus")
    assert "Only a facilitator of Peer A" in await harness.say("ana", "cohort members add @gus")
    # A facilitator of Peer A has no say over Peer B.
    await harness.say("root", "cohort create Peer B", channel="peer-b")
    refused = await harness.say("fay", "cohort members add @gus", channel="peer-b")
    assert "Added" not in refused
    await harness.say("root", "cohort set facilitator-members off")
    refused = await harness.say("fay", "cohort members add @gus")
    assert "Only an admin of Peer A can add or remove members" in refused
    assert "Added @gus" in await harness.say("root", "cohort members add @gus")


async def test_session_start_too_early_says_when_the_session_is(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("fay", "session start")
    assert "the next is Tue 1 Dec 2026, 14:00 GMT" in reply


async def test_a_typo_of_ask_in_a_channel_is_withdrawn_like_ask(harness: Harness) -> None:
    await harness.setup_cohort()
    [reply] = await harness.replies("ana", "aks Is it fine to say no?")
    assert reply.private and reply.withdraw
    assert "Did you mean '/cohort ask'?" in reply.message.plain()
    assert "say no" not in reply.message.plain()


async def test_a_session_in_the_past_cannot_be_cancelled_moved_or_recast(
        harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.advance("2d")  # Wed 2 Dec: Tuesday's session took place
    for text in ("session cancel 2026-12-01", "session move 2026-12-01 to 2026-12-03 14:00",
                 "rotation assign moderator @eli 2026-12-01"):
        reply = await harness.say("fay", text)
        assert "The session on 2026-12-01 has already started or taken place." in reply, text
    assert "case-giver: @ana" in "\n".join(harness.channel_posts())


async def test_session_add_and_move_take_weekdays(harness: Harness) -> None:
    await harness.setup_cohort()  # Mon 30 Nov 2026
    assert "Added a session on Thu 3 Dec 2026, 14:00 GMT." in await harness.say(
        "fay", "session add thu 2pm")
    # ("next wed" is the coming Wednesday; the reply shows the date it took)
    assert "Moved to Wed 2 Dec 2026, 09:30 GMT." in await harness.say(
        "fay", "session move 2026-12-08 to next wed 9:30am")
    assert "Can't read the time" in await harness.say("fay", "session add fri noonish")


async def test_cohort_link_with_a_name_suggests_the_id(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("root", "cohort unlink")
    reply = await harness.say("root", "cohort link Peer A", channel="new-room")
    assert "'Peer A' is a name" in reply and "Did you mean /cohort cohort link peer-a?" in reply
    several = await harness.say("root", "cohort create Peer B", channel="peer-b")
    assert "Created" in several
    await harness.say("root", "cohort members add @ana", channel="peer-b")
    await harness.say("root", "cohort link peer-a")
    reply = await harness.say("ana", "next", channel=None)
    assert "You are in several cohorts (peer-a, peer-b): say which, e.g. /cohort --cohort " \
        "peer-a next." in reply


async def test_a_schedule_that_ended_already_is_flagged(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("root", "cohort schedule weekly tue 14:00 until 2026-11-01")
    assert "'until 2026-11-01' is in the past (today is 2026-11-30)" in reply
    assert "every Tuesday at 14:00" in await harness.say("root", "cohort show")  # unchanged
