"""The real `cohortbot run` process on a real Synapse, seen from member clients."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.matrix.conftest import ClientFactory
from tests.matrix.support import BotProcess, Member, Seen, from_bot
from tests.support.synapse import SynapseServer


def _next_slot(lead: timedelta) -> datetime:
    """A session start at least `lead` plus half a minute away, on a whole minute."""
    at = datetime.now(UTC) + lead + timedelta(seconds=30)
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


async def _people(make: ClientFactory, n: int) -> list[Member]:
    return [Member(await make()) for _ in range(n)]


async def test_a_cohort_from_setup_to_summary_in_a_room(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path
) -> None:
    admin, ana, ben = await _people(matrix_client_factory, 3)
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[admin.user_id])
    bot.start()
    try:
        bot.wait_log("matrix: logged in")
        for m in (ana, ben):
            m.join_invites_from = {admin.user_id, bot.user_id}
        room = await admin.create_room([bot.user_id, ana.user_id, ben.user_id])
        for m in (ana, ben):
            await m.wait_room(room)
        await admin.joined(room, bot.user_id)

        async def admin_says(text: str, expect: str) -> Seen:
            await admin.say(room, f"!cohort {text}")
            return await admin.wait_for(from_bot(bot, room, contains=expect, notice=True),
                                        what=f"the reply to {text!r}")

        reply = await admin_says("cohort create Peer A", "Created Peer A")
        assert reply.content["m.relates_to"]["m.in_reply_to"]["event_id"]
        assert reply.content["m.mentions"] == {}
        for setting in ("announce-lead 2m", "checkin-lead 2m", "nudge-lead 1m",
                        "question-lead 1m"):
            await admin_says(f"cohort set {setting}", setting.split()[0])
        await admin_says("cohort reminders 1m", "Reminders for Peer A")
        # One member typed as a user id, one picked from autocomplete (a pill).
        await admin.say(room, f"!cohort cohort members add {ana.user_id} Ben",
                        html=f'!cohort cohort members add {ana.user_id} '
                             f'<a href="https://matrix.to/#/{ben.user_id}">Ben</a>')
        await admin.wait_for(from_bot(bot, room, contains="Added", notice=True))
        start = _next_slot(timedelta(minutes=2))
        await admin_says(f"cohort schedule dates {start:%Y-%m-%d %H:%M} UTC for 2m", "Schedule")

        # A member: an action, a bad command, an admin command.
        await ana.say(room, "!cohort action add Read chapter 3")
        await ana.wait_for(from_bot(bot, room, contains="Action 1 recorded", notice=True))
        await ben.say(room, "!cohort frobnicate")
        bad = await ben.wait_for(from_bot(bot, room, contains="Unknown command", notice=True))
        assert "Usage: !cohort help" in bad.body
        await ben.say(room, "!cohort cohort archive")
        refused = await ben.wait_for(from_bot(bot, room, contains="admin", notice=True),
                                     what="a refusal")
        assert "Traceback" not in refused.body

        # A question typed in the room is withdrawn, and the author told how to ask by DM.
        typed = await ana.say(room, "!cohort ask Is it fine to say no to my PI?")
        hint = await ana.wait_for(lambda s: s.sender == bot.user_id and s.room_id != room
                                  and "direct message" in s.body, what="the DM hint")
        dm = hint.room_id
        await ana.say(dm, "!cohort ask Is it fine to say no to my PI?")
        code = await ana.wait_for(from_bot(bot, dm, contains="Your code", notice=True))
        assert "anonymous question is in" in code.body

        # The session's notifications, on the real clock.
        announce = await ana.wait_for(from_bot(bot, room, contains="Roles for", notice=False),
                                      timeout=200, what="the rotation announcement")
        assert set(announce.content["m.mentions"]["user_ids"]) <= {ana.user_id, ben.user_id}
        assert announce.content["m.mentions"]["user_ids"]
        assert "matrix.to/#/@" in announce.content["formatted_body"]
        checkin = await ana.wait_for(from_bot(bot, dm, contains="Read chapter 3", notice=False),
                                     timeout=60, what="the check-in DM")
        assert checkin.content["msgtype"] == "m.text"
        await ana.say(dm, "!cohort action done 1 finished it")
        await ana.wait_for(from_bot(bot, dm, contains="done", notice=True))
        reminder = await ben.wait_for(from_bot(bot, room, contains="meets in 1 min"),
                                      timeout=120, what="the reminder")
        assert reminder.content["msgtype"] == "m.text"
        question = await ben.wait_for(from_bot(bot, room, contains="Anonymous question #1"),
                                      timeout=60, what="the question")
        summary = await ben.wait_for(from_bot(bot, room, contains="Check-in summary"),
                                     timeout=120, what="the summary")
        assert "1 done" in summary.body
    finally:
        bot.stop()

    # The withdrawn message is gone from the room (redacted) ...
    await ana.sync()
    assert not any(s.event_id == typed and s.body for s in admin.seen)
    # ... and nothing that carries the question names its author.
    assert ana.user_id not in question.body and ana.user_id not in str(question.content)
    with sqlite3.connect(bot.db) as db:
        rows = db.execute("SELECT * FROM questions").fetchall()
    assert rows and all(ana.user_id not in str(r) for r in rows)
    assert "Traceback" not in bot.log()
