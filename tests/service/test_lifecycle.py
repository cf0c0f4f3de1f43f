"""A cohort's life through the real core on SQLite and PostgreSQL, with a simulated clock.

Sessions: weekly Tuesday 14:00 Europe/London; the clock starts Monday 30 Nov 2026 09:00 UTC,
so the first session is Tue 1 Dec 14:00 UTC and its 72 h announcement is already past.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from bot.domain.refs import UserRef
from bot.service.api import Invocation
from tests.conftest import Harness


async def test_reminders_go_to_the_channel_at_each_offset(harness: Harness) -> None:
    await harness.setup_cohort()
    harness.clear()
    await harness.advance("1d4h")  # Tue 13:00 UTC: the 24 h and 1 h reminders are out
    posts = harness.channel_posts()
    reminders = [p for p in posts if p.startswith("Reminder")]
    assert len(reminders) == 2
    assert "meets in 1 day — Tue 1 Dec 2026, 14:00 GMT" in reminders[0]
    assert "meets in 1 h — Tue 1 Dec 2026, 14:00 GMT" in reminders[1]
    # Everyone present is mentioned once (as a role holder or consultant).
    for name in ("ana", "ben", "cleo", "dev", "eli"):
        assert reminders[1].count(f"@{name}") == 1


async def test_away_member_is_not_pinged_and_keeps_their_place(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("ana", "away next")
    assert "away 2026-12-01" in reply
    harness.clear()
    await harness.advance("1d4h")
    reminder = [p for p in harness.channel_posts() if p.startswith("Reminder")][-1]
    assert "@ana" not in reminder
    assert "case-giver: @ben" in reminder
    # Back for the next session: ana, who missed her turn, is case-giver then.
    schedule = await harness.say("ana", "schedule 2")
    assert re.search(r"Tue 8 Dec 2026, 14:00 GMT — case-giver: @ana", schedule), schedule


async def test_rotation_everyone_is_case_giver_once_before_anyone_twice(harness: Harness) -> None:
    await harness.setup_cohort()
    givers: list[str] = []
    for _ in range(5):
        harness.clear()
        await harness.advance("7d")
        for post in harness.channel_posts():
            if post.startswith("Reminder: Peer A meets in 1 h"):
                givers += re.findall(r"case-giver: @(\w+)", post)
    assert sorted(givers) == ["ana", "ben", "cleo", "dev", "eli"], givers


async def test_announcement_fixes_roles_72h_before(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.advance("2d")  # Wed: the announcement for Tue 8 Dec is due Sat 5 Dec 14:00
    harness.clear()
    await harness.advance("3d6h")  # Sat 5 Dec 15:00
    announcements = [p for p in harness.channel_posts() if p.startswith("Roles for Peer A")]
    assert len(announcements) == 1
    assert "Tue 8 Dec 2026, 14:00 GMT" in announcements[0]
    assert "Everyone else consults." in announcements[0]


async def test_checkin_nudge_summary_and_carry_over(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.advance("1d6h")  # session 1 is over
    assert "Action 1" in await harness.say("ben", "action add Write the grant intro")
    assert "Action 2" in await harness.say("ben", "action add Ask for feedback")
    assert "Action 1" in await harness.say("cleo", "action add Book a meeting")
    assert "shared by name" not in await harness.say("cleo", "checkin")
    await harness.say("cleo", "checkin share")
    harness.clear()
    await harness.advance("5d")  # Sun 6 Dec 15:00 UTC: check-ins went out at 14:00
    assert len(harness.dms("ben")) == 1 and "1. Write the grant intro" in harness.dms("ben")[0]
    assert len(harness.dms("cleo")) == 1
    assert harness.dms("ana") == []  # no open actions, no check-in
    await harness.say("ben", "action done 1 sent it")
    await harness.say("ben", "action notyet 2")
    await harness.say("ben", "action partly 2 halfway")  # answers can be edited
    harness.clear()
    await harness.advance("1d")  # Mon 7 Dec 15:00: the nudge (due 14:00) went only to cleo
    assert harness.dms("ben") == []
    assert len(harness.dms("cleo")) == 1 and harness.dms("cleo")[0].startswith("Nudge")
    harness.clear()
    await harness.advance("1d")  # past Tue 8 Dec 14:00: the summary is posted
    summary = [p for p in harness.channel_posts() if p.startswith("Check-in summary")]
    assert len(summary) == 1
    assert "3 actions — 1 done, 1 partly, 0 not yet, 0 dropped, 1 without an answer" in summary[0]
    assert "@cleo: Book a meeting [no answer]" in summary[0]  # cleo shares her lines
    assert "Write the grant intro" not in summary[0]  # ben did not share
    # Done closed; partly and unanswered carry over with their answers reset.
    listing = await harness.say("ben", "action list")
    assert "2. Ask for feedback" in listing and "Write the grant intro" not in listing
    assert "[" not in listing


async def test_anonymous_questions_batch_in_random_order(harness: Harness) -> None:
    await harness.setup_cohort()
    texts = [f"Question number {i}?" for i in range(6)]
    for i, text in enumerate(texts):
        reply = await harness.say(["ana", "ben", "cleo"][i % 3], f"ask {text}", channel=None)
        assert "Your code:" in reply
    assert harness.channel_posts() == []  # nothing posted at ask time
    await harness.advance("1d4h")  # the batch goes out 1 h before the session
    posts = [p for p in harness.channel_posts() if p.startswith("Anonymous question")]
    assert len(posts) == 6
    assert {p.split("\n", 1)[1] for p in posts} == set(texts)
    assert [p.split("\n")[0] for p in posts] == [f"Anonymous question #{i}" for i in range(1, 7)]


async def test_members_learn_nothing_about_when_others_ask(harness: Harness) -> None:
    await harness.setup_cohort()
    before = await harness.say("dev", "questions")
    await harness.say("ana", "ask Is it fine to skip the retreat?", channel=None)
    assert await harness.say("dev", "questions") == before
    assert "waiting" not in before
    # The facilitator, who reviews them anyway, is told.
    assert "1 more waiting to be posted." in await harness.say("fay", "questions")


async def test_inbound_event_ids_go_once_no_redelivery_can_come(harness: Harness) -> None:
    await harness.setup_cohort()
    inv = Invocation(user=UserRef("terminal", "ana"), text="next", channel=None,
                     event_id="terminal:ev:1")
    assert await harness.app.bot.handle(inv)
    assert await harness.app.bot.handle(inv) == []  # a redelivery is dropped
    await harness.advance("2h")
    assert await harness.app.bot.handle(inv) == []  # still within the window
    await harness.advance("1d")
    async with harness.app.engine.connect() as conn:
        left = (await conn.execute(sa.text("SELECT count(*) FROM seen_events"))).scalar_one()
    assert left == 0


async def test_immediate_release_and_moderation(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("root", "cohort set question-release immediate")
    await harness.say("root", "cohort set moderation on")
    reply = await harness.say("ana", "ask Is it ok to leave early?", channel=None)
    code = re.search(r"Your code: (\S+)", reply)
    assert code is not None
    assert harness.channel_posts() == []
    review = await harness.say("fay", "questions review")
    rid = re.search(r"\[(\w+)\] Is it ok to leave early\?", review)
    assert rid is not None, review
    assert "waiting for a facilitator" in await harness.say("ana", f"question {code[1]}", None)
    await harness.say("fay", f"approve {rid[1]}")
    assert harness.channel_posts() == ["Anonymous question #1\nIs it ok to leave early?"]
    assert "posted as anonymous question #1" in await harness.say("ana", f"question {code[1]}",
                                                                     None)
    # Returned with a note: the author learns it through the code alone.
    reply = await harness.say("ben", "ask Something off-topic for us", channel=None)
    code2 = re.search(r"Your code: (\S+)", reply)
    assert code2 is not None
    rid2 = re.search(r"\[(\w+)\] Something", await harness.say("fay", "questions review"))
    assert rid2 is not None
    await harness.say("fay", f"return {rid2[1]} please rephrase")
    status = await harness.say("ben", f"question {code2[1]}", None)
    assert "returned" in status and "please rephrase" in status


async def test_retract_upvote_and_rate_limit(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("ana", "ask Is this the first one?", channel=None)
    code = re.search(r"Your code: (\S+)", reply)
    assert code is not None
    assert "withdrawn" in await harness.say("ana", f"retract {code[1]}", None)
    assert "already withdrawn" in await harness.say("ana", f"retract {code[1]}", None)
    assert "No question has that code" in await harness.say("ana", "retract ZZZZ-ZZZZ", None)
    for i in range(5):
        assert "Your code" in await harness.say("ben", f"ask More questions, number {i}?", None)
    limited = await harness.say("ben", "ask One too many?", channel=None)
    assert "at most 5 questions a day" in limited  # ana's + ben's share no counter
    await harness.say("fay", "release")
    posts = [p for p in harness.channel_posts() if p.startswith("Anonymous question")]
    assert len(posts) == 5 and not any("First?" in p for p in posts)
    assert "Upvoted #2 (now 1)" in await harness.say("cleo", "upvote 2")
    assert "already upvoted" in await harness.say("cleo", "upvote 2")
    assert "(now 2)" in await harness.say("dev", "upvote #2")
    assert "no anonymous question #9" in await harness.say("dev", "upvote 9")


async def test_swap_needs_consent_and_facilitator_can_override(harness: Harness) -> None:
    await harness.setup_cohort()
    assert "ana asks" not in "".join(harness.dms("eli"))
    reply = await harness.say("ana", "swap case-giver @eli")
    assert "Nothing changes unless they accept" in reply
    assert "@ana asks you to take their role case-giver" in harness.dms("eli")[0]
    assert "case-giver: @ana" in await harness.say("ana", "schedule 1")
    await harness.say("eli", "swap accept")
    assert "case-giver: @eli" in await harness.say("ana", "schedule 1")
    assert any("case-giver is now @eli (swap)" in p for p in harness.channel_posts())
    assert "Nobody has asked you" in await harness.say("eli", "swap accept")
    await harness.say("fay", "rotation assign case-giver @dev")
    sched = await harness.say("ana", "schedule 1")
    assert "case-giver: @dev" in sched and "timekeeper: @eli" in sched


async def test_session_cancel_move_add(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("fay", "session cancel 2026-12-01 holiday")
    assert any("is cancelled" in p and "holiday" in p for p in harness.channel_posts())
    assert "cancelled: holiday" in await harness.say("ana", "schedule 2")
    await harness.say("fay", "session move next to 2026-12-10 10:00")
    assert "Thu 10 Dec 2026, 10:00 GMT" in await harness.say("ana", "next")
    await harness.say("fay", "session add 2026-12-03 16:00")
    assert "Thu 3 Dec 2026, 16:00 GMT" in await harness.say("ana", "next")
    harness.clear()
    await harness.advance("3d")  # past Thu 3 Dec: nothing for the cancelled Tue 1 Dec
    reminders = [p for p in harness.channel_posts() if p.startswith("Reminder")]
    assert reminders and all("Thu 3 Dec" in p for p in reminders)


async def test_guided_session_phases(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.advance("1d4h30m")  # 30 min before the session
    harness.clear()
    assert "started" in await harness.say("fay", "session start")
    # (the default phases stretched to the 90-minute session)
    assert harness.channel_posts()[-1].startswith("Phase 1/6: casting (8 min).")
    await harness.advance("8m")
    assert harness.channel_posts()[-1].startswith("Phase 2/6: case report (15 min).")
    await harness.say("fay", "session next")
    assert harness.channel_posts()[-1].startswith("Phase 3/6: key question")
    await harness.advance("8m")
    assert harness.channel_posts()[-1].startswith("Phase 4/6: method choice")
    await harness.say("fay", "session end")
    assert harness.channel_posts()[-1].startswith("Session over.")
    before = len(harness.channel_posts())
    await harness.advance("1h")  # the old timed prompts were cancelled
    assert not any(p.startswith("Phase") for p in harness.channel_posts()[before:])


async def test_prompts_now_and_at_next_session(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("fay", "prompt What went well this week? @here")
    assert harness.channel_posts()[-1] == "Prompt: What went well this week? @here"
    last = harness.messenger.sent[-1].message
    assert last.mentions() == ()  # repeated user text never becomes a mention
    await harness.say("fay", "prompt next Bring one example")
    assert not any("Bring one example" in p for p in harness.channel_posts())
    await harness.advance("1d6h")
    assert "Prompt: Bring one example" in harness.channel_posts()


async def test_user_zone_is_used_for_times_shown(harness: Harness) -> None:
    await harness.setup_cohort()
    assert "America/New_York" in await harness.say("ana", "tz america/new_york")
    assert "Tue 1 Dec 2026, 09:00 EST" in await harness.say("ana", "next")
    assert "Tue 1 Dec 2026, 14:00 GMT" in await harness.say("ben", "next")


async def test_dst_session_stays_at_local_time(harness: Harness) -> None:
    await harness.setup_cohort(schedule="weekly tue 14:00 Europe/London for 90m")
    await harness.advance_to(harness.clock.now().replace(year=2027, month=3, day=20))
    sched = await harness.say("ana", "schedule 3")
    assert "Tue 23 Mar 2027, 14:00 GMT" in sched
    assert "Tue 30 Mar 2027, 14:00 BST" in sched


async def test_pause_resume_archive(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("root", "cohort pause")
    harness.clear()
    await harness.advance("2d")
    assert harness.channel_posts() == []
    assert "active again" in await harness.say("root", "cohort resume")
    await harness.advance("7d")
    assert any(p.startswith("Reminder") for p in harness.channel_posts())
    assert "archived" in await harness.say("root", "cohort archive confirm")
    assert "Peer A is archived" in await harness.say("ana", "--cohort peer-a next")


async def test_forget_me_deletes_personal_data(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("ana", "action add Something personal")
    await harness.say("ana", "tz Europe/Berlin")
    assert "Type /cohort forget-me confirm" in await harness.say("ana", "forget-me")
    assert "deleted" in await harness.say("ana", "forget-me confirm")
    assert "Only members of Peer A" in await harness.say("ana", "next")
    assert "UTC" in await harness.say("ana", "tz", channel=None)


async def test_a_swap_overtaken_by_events_is_closed_for_good(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("ana", "swap case-giver @eli")
    await harness.say("fay", "rotation assign case-giver @dev")  # ana no longer holds it
    assert "no longer possible" in await harness.say("eli", "swap accept")
    assert "Nobody has asked you" in await harness.say("eli", "swap accept")


async def test_reminders_by_dm_reach_present_members_in_their_zone(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("root", "cohort set reminders-to dm")
    await harness.say("ben", "tz Asia/Tokyo")
    await harness.say("cleo", "away next")
    harness.clear()
    await harness.advance("1d4h")  # (only the last reminder goes by DM: one ping, not two)
    assert not any(p.startswith("Reminder") for p in harness.channel_posts())
    assert harness.dms("ben") == ["Reminder: Peer A meets in 1 h — Tue 1 Dec 2026, 23:00 JST. "
                                  "Your role: moderator."]
    assert harness.dms("ana") == ["Reminder: Peer A meets in 1 h — Tue 1 Dec 2026, 14:00 GMT. "
                                  "Your role: case-giver."]
    assert harness.dms("cleo") == []  # away: not pinged


async def test_archived_cohorts_lose_actions_after_the_retention(harness: Harness) -> None:
    from bot.domain.model import Action

    await harness.setup_cohort()
    await harness.say("ana", "action add Keep a journal")
    assert "deleted in 90 days" in await harness.say("root", "cohort archive confirm")
    await harness.advance("89d")
    async with harness.app.bot._uow() as uow:
        assert len(await uow.find(Action)) == 1
    await harness.advance("2d")
    async with harness.app.bot._uow() as uow:
        assert await uow.find(Action) == []


async def test_an_admin_who_is_not_a_member_is_told_how_to_join(harness: Harness) -> None:
    await harness.setup_cohort()
    reply = await harness.say("root", "action add Something")
    assert "This is for members of Peer A, and you are not one" in reply
    assert "/cohort cohort members add @you" in reply


async def test_facilitator_summary_before_the_session(harness: Harness) -> None:
    await harness.setup_cohort()
    assert "No open actions in Peer A yet." in await harness.say("fay", "summary")
    await harness.say("ben", "action add Write the intro")
    await harness.say("ben", "action done 1 sent")
    await harness.say("cleo", "action add Book a room")
    await harness.say("cleo", "checkin share")
    summary = await harness.say("fay", "summary")
    assert summary.splitlines() == [
        "Check-in so far: 2 open actions — 1 done, 0 partly, 0 not yet, 0 dropped, "
        "1 without an answer.",
        "@cleo: Book a room [no answer yet]",
    ]
    assert "Only a facilitator of Peer A" in await harness.say("ben", "summary")
