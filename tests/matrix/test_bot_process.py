"""The real `cohortbot run` process on a real Synapse, seen from member clients."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.matrix.platform import ANSWERED_IN_DM
from tests.matrix.support import (
    BotProcess,
    ConnectionCounter,
    Member,
    Seen,
    answer,
    from_bot,
    plant_prompts,
    replying_to,
)
from tests.support.matrix_fixtures import ClientFactory
from tests.support.synapse import SynapseServer


def _next_slot(lead: timedelta) -> datetime:
    """A session start at least `lead` plus half a minute away, on a whole minute."""
    at = datetime.now(UTC) + lead + timedelta(seconds=30)
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


async def _people(make: ClientFactory, n: int) -> list[Member]:
    return [Member(await make()) for _ in range(n)]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_a_cohort_from_setup_to_summary_in_a_room(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path,
    encrypted: bool,
) -> None:
    admin, ana, ben = await _people(matrix_client_factory, 3)
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[admin.user_id])
    bot.start()
    try:
        bot.wait_log("matrix: logged in")
        for m in (ana, ben):
            m.join_invites_from = {admin.user_id, bot.user_id}
        # The bot is a moderator here, so it may redact what should not have been posted.
        room = await admin.create_room([bot.user_id, ana.user_id, ben.user_id],
                                       power={bot.user_id: 50}, encrypted=encrypted)
        for m in (ana, ben):
            await m.wait_room(room)
        await admin.joined(room, bot.user_id)

        async def admin_says(text: str, expect: str) -> Seen:
            await admin.say(room, f"!cohort {text}")
            return await admin.wait_for(from_bot(bot, room, contains=expect, notice=True),
                                        what=f"the reply to {text!r}")

        reply = await admin_says("cohort create Peer A", "Created Peer A")
        assert reply.decrypted == encrypted
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

        # A member: an action, a bad command, an admin command. Typed in the room, they are
        # answered in the caller's direct room, and the room is told so.
        added = await answer(ana, bot, room, "!cohort action add Read chapter 3")
        assert added.room_id != room and "Action 1 recorded" in added.body
        assert added.content["msgtype"] == "m.notice"
        bad = await answer(ben, bot, room, "!cohort frobnicate")
        assert bad.room_id != room and "Unknown command" in bad.body
        assert "Usage: !cohort help" in bad.body
        refused = await answer(ben, bot, room, "!cohort cohort archive")
        assert refused.room_id != room and "admin" in refused.body
        assert "Traceback" not in refused.body

        # A question typed in the room is withdrawn, and the author told how to ask by DM.
        typed = await ana.say(room, "!cohort ask Is it fine to say no to my PI?")
        hint = await ana.wait_for(lambda s: s.sender == bot.user_id and s.room_id != room
                                  and "direct message" in s.body, what="the DM hint")
        dm = hint.room_id
        await ana.say(dm, "!cohort ask Is it fine to say no to my PI?")
        code = await ana.wait_for(from_bot(bot, dm, contains="Your code", notice=True))
        assert "anonymous question is in" in code.body
        # A second question, so that the batch goes out (alone, one is held back).
        await ben.say(room, "!cohort ask How do I plan a thesis?")
        hint = await ben.wait_for(lambda s: s.sender == bot.user_id and s.room_id != room
                                  and "direct message" in s.body, what="Ben's DM hint")
        await ben.say(hint.room_id, "!cohort ask How do I plan a thesis?")
        await ben.wait_for(from_bot(bot, hint.room_id, contains="Your code", notice=True))

        # The session's notifications, on the real clock.
        announce = await ana.wait_for(from_bot(bot, room, contains="Roles for", notice=False),
                                      timeout=200, what="the rotation announcement")
        assert set(announce.content["m.mentions"]["user_ids"]) <= {ana.user_id, ben.user_id}
        assert announce.content["m.mentions"]["user_ids"]
        assert "matrix.to/#/@" in announce.content["formatted_body"]
        # Laid out as on Slack: a heading, the roles as a list, the hint in small print.
        assert announce.content["formatted_body"].startswith("<h4>Roles for Peer A</h4><p>")
        assert "</p><ul><li>" in announce.content["formatted_body"]
        assert "<p><em>Need to swap? !cohort swap &lt;role&gt; @member</em></p>" in \
            announce.content["formatted_body"]
        checkin = await ana.wait_for(from_bot(bot, dm, contains="Read chapter 3", notice=False),
                                     timeout=60, what="the check-in DM")
        assert checkin.content["msgtype"] == "m.text"
        assert checkin.content["formatted_body"].startswith("<h4>Check-in time (")
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
        assert summary.content["formatted_body"].startswith("<h4>Check-in summary for ")
    finally:
        bot.stop()

    # The withdrawn message is gone from the room (redacted) ...
    withdrawn = await admin.client.room_get_event(room, typed)
    assert withdrawn.event.source.get("unsigned", {}).get("redacted_because"), withdrawn
    assert "say no" not in str(withdrawn.event.source.get("content"))
    # ... and nothing that carries the question names its author.
    assert ana.user_id not in question.body and ana.user_id not in str(question.content)
    with sqlite3.connect(bot.db) as db:
        rows = db.execute("SELECT * FROM questions").fetchall()
    assert rows and all(ana.user_id not in str(r) for r in rows)
    assert "Traceback" not in bot.log()


async def test_an_encrypted_room_works_across_a_restart_on_the_same_device(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path
) -> None:
    admin, stranger = await _people(matrix_client_factory, 2)
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[admin.user_id])
    bot.start()
    try:
        bot.wait_log("matrix: logged in")
        room = await admin.create_room([bot.user_id], encrypted=True)
        await admin.joined(room, bot.user_id)
        await admin.say(room, "!cohort cohort create Secret Circle")
        created = await admin.wait_for(from_bot(bot, room, contains="Created Secret Circle"),
                                       what="the reply in the encrypted room")
        assert created.decrypted and created.content["msgtype"] == "m.notice"
        device = json.loads((bot.store / "session.json").read_text())["device_id"]

        # A stranger's invite is declined.
        other = await stranger.create_room([bot.user_id])
        bot.wait_log("declined an invitation")
        await stranger.sync()
        assert bot.user_id not in stranger.client.rooms[other].users

        bot.stop()
        # Sent while the bot is down, well inside the replay window: answered after the
        # restart (a private answer: in the admin's direct room, with a notice here), once.
        down = await admin.say(room, "!cohort help")
        bot.start()
        bot.wait_log("matrix: logged in", count=2)
        await admin.say(room, "!cohort cohort set moderation on")
        after = await admin.wait_for(from_bot(bot, room, contains="moderation = on"),
                                     what="a reply after the restart")
        assert after.decrypted
        assert json.loads((bot.store / "session.json").read_text())["device_id"] == device
        notice = await admin.wait_for(replying_to(bot, room, down),
                                      what="the answer to a command sent while it was down")
        assert notice.body == ANSWERED_IN_DM
        # Nothing handled before the restart was handled again, nor that one twice.
        await admin.sync()
        replies = [s for s in admin.seen if s.sender == bot.user_id]
        assert sum("Created Secret Circle" in s.body for s in replies) == 1
        assert sum(replying_to(bot, room, down)(s) for s in admin.seen) == 1
        assert not any("Usage" in s.body for s in replies)
    finally:
        bot.stop()
    assert "Traceback" not in bot.log()
    assert bot.log().count("logged in as") == 2


async def test_homeserver_down_and_back_nothing_lost_nothing_twice_few_requests(
    synapse_server_factory: Callable[..., SynapseServer],
    matrix_client_factory: ClientFactory, tmp_path: Path,
) -> None:
    server = synapse_server_factory()
    (admin,) = [Member(await matrix_client_factory(server))]
    bot = BotProcess(tmp_path, server, server.register_user(), admins=[admin.user_id])
    with bot.config.open("a") as f:
        f.write("[scheduler]\nsweep_seconds = 5\n")
    bot.start()
    try:
        bot.wait_log("matrix: logged in")
        room = await admin.create_room([bot.user_id])
        await admin.joined(room, bot.user_id)
        await admin.say(room, "!cohort cohort create Peer R")
        await admin.wait_for(from_bot(bot, room, contains="Created Peer R"))

        server.stop()
        now = datetime.now(UTC)
        due = [now + timedelta(seconds=3 + 2 * i) for i in range(5)]
        await plant_prompts(bot.db, "peer-r", due, "outage")
        outage = 45.0
        async with ConnectionCounter(server.port) as counter:
            await asyncio.sleep(outage)  # the outage itself: how often does the bot knock?
        print(f"requests while the homeserver was down for {outage:.0f} s: {counter.count}")
        # Sync and sends each back off (1, 2, 4 … 60 s and 5, 10 … 60 s): about ten
        # attempts in 45 s, each at most two connections (aiohttp retries a dropped one once).
        assert 2 <= counter.count <= 24, counter.count
        server.start()
        for i in range(5):
            await admin.wait_for(from_bot(bot, room, contains=f"outage-{i:02d}"),
                                 timeout=90, what=f"prompt {i} after the outage")
        await admin.sync()
    finally:
        bot.stop()
    bodies = [s.body for s in admin.seen if s.sender == bot.user_id and "outage-" in s.body]
    assert sorted(bodies) == sorted(set(bodies)) and len(bodies) == 5, bodies
    assert "Traceback" not in bot.log()


async def test_twenty_notifications_due_in_the_same_second_all_arrive_under_default_limits(
    synapse_default_limits: SynapseServer, matrix_client_factory: ClientFactory,
    tmp_path: Path,
) -> None:
    server = synapse_default_limits  # Synapse's own rate limits; the bot is not exempted
    admin = Member(await matrix_client_factory(server))
    bot = BotProcess(tmp_path, server, server.register_user(), admins=[admin.user_id])
    with bot.config.open("a") as f:
        f.write("[scheduler]\nsweep_seconds = 5\n")
    bot.start()
    try:
        bot.wait_log("matrix: logged in")
        room = await admin.create_room([bot.user_id])
        await admin.joined(room, bot.user_id)
        await admin.say(room, "!cohort cohort create Burst")
        await admin.wait_for(from_bot(bot, room, contains="Created Burst"))
        at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
        await plant_prompts(bot.db, "burst", [at] * 20, "burst")
        for i in range(20):
            await admin.wait_for(from_bot(bot, room, contains=f"burst-{i:02d}"), timeout=150,
                                 what=f"notification {i}")
        await admin.sync()
    finally:
        bot.stop()
    bodies = [s.body for s in admin.seen if s.sender == bot.user_id and "burst-" in s.body]
    assert len(bodies) == 20 and len(set(bodies)) == 20
    log = bot.log()
    assert "rate limited; sending again" in log  # the homeserver did push back
    assert "failed for good" not in log and "Traceback" not in log


async def test_room_power_makes_an_admin_and_the_profile_zone_shows_times(
    synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path
) -> None:
    admin, carol, dan = await _people(matrix_client_factory, 3)
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[admin.user_id])
    bot.start()
    try:
        bot.wait_log("matrix: logged in")
        for m in (carol, dan):
            m.join_invites_from = {admin.user_id}
        resp = await admin.client.room_create(
            invite=[bot.user_id, carol.user_id, dan.user_id],
            power_level_override={"users": {carol.user_id: 100}})
        assert hasattr(resp, "room_id"), resp
        room = resp.room_id
        for m in (admin, carol, dan):
            await m.wait_room(room)
        await admin.joined(room, bot.user_id)
        # Carol is no admin in the config, but she has power level 100 in this room.
        await carol.say(room, "!cohort cohort create Power Room")
        await carol.wait_for(from_bot(bot, room, contains="Created Power Room"))
        await carol.say(room, "!cohort cohort schedule weekly tue 14:00 UTC for 90m")
        await carol.wait_for(from_bot(bot, room, contains="Schedule for Power Room"))
        await carol.say(room, f"!cohort cohort members add {dan.user_id}")
        await carol.wait_for(from_bot(bot, room, contains="Added"))
        # Dan (power level 0) may not change the cohort.
        refusal = await answer(dan, bot, room, "!cohort cohort set moderation on")
        assert "admin" in refusal.body and "moderation = on" not in refusal.body
        # Dan's profile says Tokyo: his times are shown there.
        status, _ = synapse.request("PUT", f"/_matrix/client/v3/profile/{dan.user_id}/m.tz",
                                    {"m.tz": "Asia/Tokyo"}, access_token=dan.client.access_token)
        assert status == 200
        reply = await answer(dan, bot, room, "!cohort next")
        assert "23:00" in reply.body and "JST" in reply.body, reply.body
    finally:
        bot.stop()
