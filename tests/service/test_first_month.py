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
