"""Where a reply goes, what counts as a direct room, and what leaving a room does: on a real
Synapse, with the real `cohortbot run`, seen through matrix-nio member clients.

- A reply to a command typed in the cohort's room goes to the caller's direct room, and the
  room gets a one-line notice; setup and facilitator confirmations stay in the room.
- A room is direct only while its members are the bot and one person: a room an admin made
  "direct" with a third person in it is not, and neither is a direct room of the bot's once
  someone else joins it (the person it was with is told, in a new one). The bot's own direct
  rooms give the member no power to invite.
- Leaving (or being kicked from) the cohort's room suspends the membership until the member
  is back; the facilitators are told.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomPutStateResponse,
)

from adapters.matrix.platform import ANSWERED_IN_DM, NO_LONGER_DIRECT
from tests.matrix.support import (
    BotProcess,
    Member,
    Seen,
    answer,
    command,
    elsewhere,
    from_bot,
    replying_to,
)
from tests.support.matrix_fixtures import ClientFactory
from tests.support.synapse import SynapseServer

QUESTION = "Should we share our slides before the session?"


@asynccontextmanager
async def running(tmp_path: Path, synapse: SynapseServer, admin: Member
                  ) -> AsyncIterator[BotProcess]:
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[admin.user_id])
    bot.start()
    try:
        bot.wait_log("matrix: logged in")
        yield bot
    finally:
        bot.stop()
    assert "Traceback" not in bot.log()


async def cohort_room(bot: BotProcess, admin: Member, members: list[Member],
                      facilitators: list[Member], name: str) -> str:
    """A room the admin made, with the bot and everyone in it, and a cohort linked to it."""
    everyone = members + facilitators
    for m in everyone:
        m.join_invites_from = {admin.user_id, bot.user_id}
    room = await admin.create_room([bot.user_id, *(m.user_id for m in everyone)])
    for user in (bot.user_id, *(m.user_id for m in everyone)):
        await admin.joined(room, user)
    setup = [(f"cohort create {name}", f"Created {name}"),
             ("cohort schedule weekly tue 14:00 UTC for 90m", "Schedule for"),
             ("cohort members add " + " ".join(m.user_id for m in members), "Added")]
    if facilitators:
        setup.append(("cohort facilitators add " + " ".join(m.user_id for m in facilitators),
                      "facilitates"))
    for text, expect in setup:
        reply = await answer(admin, bot, room, f"!cohort {text}")
        assert reply.room_id == room and expect in reply.body, (text, reply.body)
    return room


def _command_of(s: Seen) -> str:
    return str(((s.content.get("m.relates_to") or {}).get("m.in_reply_to") or {})
               .get("event_id", ""))


async def in_dm(member: Member, bot: BotProcess, room: str, text: str) -> Seen:
    """Type `text` in the shared `room`: the answer, which must come in a direct room, while
    the room gets exactly one reply to the command, the notice, as an `m.notice`."""
    sent, reply = await command(member, bot, room, text)
    assert reply.room_id != room, (text, reply.body)
    await member.sync()
    in_room = [s for s in member.seen if replying_to(bot, room, sent)(s)]
    assert [(s.body, s.content["msgtype"]) for s in in_room] == [(ANSWERED_IN_DM, "m.notice")]
    return reply


async def open_dm(member: Member, bot: BotProcess, room: str) -> str:
    """The direct room the bot opens with `member` to answer a question they typed in the
    shared `room` (refused there, whatever else changes)."""
    member.join_invites_from.add(bot.user_id)
    await member.say(room, "!cohort ask Anyone else behind?")
    hint = await member.wait_for(elsewhere(bot, room, contains="Everyone in the channel"),
                                 what="the refusal in a direct room")
    return hint.room_id


async def in_room(member: Member, bot: BotProcess, room: str, text: str) -> Seen:
    """Type `text` in `room`: the answer, which must stay there, as an `m.notice` reply."""
    reply = await answer(member, bot, room, text)
    assert reply.room_id == room and reply.content["msgtype"] == "m.notice", (text, reply.body)
    return reply


async def test_private_replies_go_to_the_dm_and_setup_confirmations_stay_in_the_room(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    root, ana, fay = [Member(await matrix_client_factory()) for _ in range(3)]
    async with running(tmp_path, synapse, root) as bot:
        room = await cohort_room(bot, root, [ana], [fay], "Peer B")
        # Setup and facilitator actions: confirmed where they were typed.
        set_reply = await in_room(root, bot, room, "!cohort cohort set moderation on")
        assert "moderation = on" in set_reply.body
        posted = await in_room(fay, bot, room, "!cohort prompt What went well this week?")
        assert posted.body == "Posted."
        await fay.wait_for(from_bot(bot, room, contains="Prompt: What went well", notice=False))

        # A member's own data: in her direct room, the room told only that much.
        nxt = await in_dm(ana, bot, room, "!cohort next")
        assert nxt.body.startswith("Next session of Peer B"), nxt.body
        dm = nxt.room_id
        await ana.say(dm, f"!cohort ask {QUESTION}")
        await ana.wait_for(from_bot(bot, dm, contains="Your code"), what="the code")

        # Pending questions: to the facilitator alone.
        review = await in_dm(fay, bot, room, "!cohort questions review")
        assert QUESTION in review.body and "waiting for review" in review.body, review.body
        # A usage error, too.
        bad = await in_dm(ana, bot, room, "!cohort frobnicate")
        assert "Unknown command" in bad.body and bad.room_id == dm, bad.body

        for m in (root, ana, fay):
            await m.sync()
            shown = [s.body for s in m.seen if from_bot(bot, room)(s)]
            assert not any(QUESTION in b or "Next session of" in b or "Unknown command" in b
                           for b in shown), shown
        # Confirmations got no notice.
        for reply in (set_reply, posted):
            assert not [s for s in root.seen + fay.seen
                        if replying_to(bot, room, _command_of(reply))(s)
                        and s.body == ANSWERED_IN_DM]


async def test_a_room_made_direct_with_a_third_person_in_it_is_no_direct_room(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    root, carol = [Member(await matrix_client_factory()) for _ in range(2)]
    async with running(tmp_path, synapse, root) as bot:
        root.join_invites_from = {bot.user_id}
        carol.join_invites_from = {root.user_id}
        # Marked direct on the invite the bot gets, with Carol in it; the bot may redact.
        resp = await root.client.room_create(
            is_direct=True, invite=[bot.user_id, carol.user_id],
            power_level_override={"users": {bot.user_id: 50}})
        assert isinstance(resp, RoomCreateResponse), resp
        room = resp.room_id
        await root.wait_room(room)
        for user in (bot.user_id, carol.user_id):
            await root.joined(room, user)

        asked = await root.say(room, "!cohort ask Who here is struggling?")
        hint = await root.wait_for(elsewhere(bot, room, contains="Everyone in the channel"),
                                   what="the refusal in a direct room")
        assert "did not act on it" in hint.body
        event = await root.client.room_get_event(room, asked)
        assert isinstance(event, RoomGetEventResponse), event
        assert (event.event.source.get("unsigned") or {}).get("redacted_because"), \
            "the ask stayed in the room"
        await root.sync()
        assert not [s for s in root.seen + carol.seen
                    if from_bot(bot, room)(s) and s.body == ANSWERED_IN_DM]


async def _state(member: Member, room: str, kind: str) -> dict[str, Any]:
    resp = await member.client.room_get_state_event(room, kind)
    assert isinstance(resp, RoomGetStateEventResponse), resp
    return dict(resp.content)


@asynccontextmanager
async def as_bot(synapse: SynapseServer, bot: BotProcess) -> AsyncIterator[AsyncClient]:
    """The bot's own account, with the login it saved (no crypto): what only the bot, or an
    older version's direct room, could do."""
    saved = json.loads((bot.store / "session.json").read_text())
    client = AsyncClient(synapse.base_url, saved["user_id"],
                         config=AsyncClientConfig(encryption_enabled=False))
    client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
    try:
        yield client
    finally:
        await client.close()


async def test_the_bots_direct_room_is_private_and_a_third_person_ends_it(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    root, ana, carol = [Member(await matrix_client_factory()) for _ in range(3)]
    async with running(tmp_path, synapse, root) as bot:
        room = await cohort_room(bot, root, [ana], [], "Peer D")
        dm = await open_dm(ana, bot, room)

        # The room the bot opened: invite only, and Ana may invite nobody.
        assert (await _state(ana, dm, "m.room.join_rules"))["join_rule"] == "invite"
        levels = await _state(ana, dm, "m.room.power_levels")
        mine = levels.get("users", {}).get(ana.user_id, levels.get("users_default", 0))
        assert mine < 100 and mine < levels.get("invite", 0), levels
        create = await _state(ana, dm, "m.room.create")  # (room version 12: no co-creator)
        assert ana.user_id not in create.get("additional_creators", []), create
        assert ana.client.rooms[dm].join_rule == "invite"

        # As in a direct room of an older version, where the member had power level 100,
        # Ana invites Carol, who joins.
        levels["users"] = {**levels.get("users", {}), ana.user_id: 100}
        async with as_bot(synapse, bot) as own:
            put = await own.room_put_state(dm, "m.room.power_levels", levels)
            assert isinstance(put, RoomPutStateResponse), put
        await ana.sync()
        carol.join_invites_from = {ana.user_id}
        invited = await ana.client.room_invite(dm, carol.user_id)
        assert not hasattr(invited, "status_code"), invited
        await carol.wait_room(dm)
        await ana.joined(dm, carol.user_id)

        told = await ana.wait_for(elsewhere(bot, dm, contains="Someone else joined"),
                                  what="the bot saying the direct room is over")
        assert told.body == NO_LONGER_DIRECT and told.room_id != room
        new_dm = told.room_id
        # The old room is a room like any other now: a question typed there is refused,
        # and the refusal comes in the new direct room.
        await ana.say(dm, f"!cohort ask {QUESTION}")
        refused = await ana.wait_for(from_bot(bot, new_dm, contains="Everyone in the channel"),
                                     what="the refusal in the new direct room")
        assert "did not act on it" in refused.body
        await ana.sync()
        assert not [s for s in ana.seen if from_bot(bot, dm, contains="Your code")(s)]
        # Said once.
        assert len([s for s in ana.seen if s.body == NO_LONGER_DIRECT]) == 1


async def test_leaving_the_cohorts_room_suspends_the_membership_until_back(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    root, ana, fay = [Member(await matrix_client_factory()) for _ in range(3)]
    async with running(tmp_path, synapse, root) as bot:
        room = await cohort_room(bot, root, [ana], [fay], "Peer L")
        dm = await open_dm(ana, bot, room)
        fay.join_invites_from.add(bot.user_id)

        async def told(what: str) -> Seen:
            return await fay.wait_for(elsewhere(bot, room, contains=what),
                                      what=f"the facilitator told {what!r}")

        async def next_in_dm() -> str:
            mark = len(ana.seen)
            await ana.say(dm, "!cohort next")
            reply = await ana.wait_for(
                lambda s: from_bot(bot, dm)(s) and any(s is x for x in ana.seen[mark:]),
                what="the answer to next")
            return reply.body

        await ana.client.room_leave(room)
        notice = await told("left the channel of Peer L")
        assert ana.user_id in notice.body
        assert (await next_in_dm()).startswith("You left the channel of Peer L")

        # Invited again, she joins: she takes part again.
        await root.client.room_invite(room, ana.user_id)
        await ana.client.join(room)
        await root.joined(room, ana.user_id)
        await told("is back in the channel of Peer L")
        assert (await next_in_dm()).startswith("Next session of Peer L")

        # Kicked: the same as leaving.
        await root.client.room_kick(room, ana.user_id)
        await fay.wait_for(lambda s: len([x for x in fay.seen
                                          if elsewhere(bot, room, contains="left the channel")(x)
                                          ]) == 2, what="the second notice")
        assert (await next_in_dm()).startswith("You left the channel of Peer L")
