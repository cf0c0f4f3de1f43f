"""The real `cohortbot run` seen by members on the stack Element is built on: matrix-js-sdk
with its Rust crypto, cross-signing bootstrapped as Element does, and device isolation set to
"only signed devices" (Element's exclude-insecure-devices). Such a client neither reads from
nor writes to a device its owner did not sign: every message of the bot must still decrypt."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from adapters.matrix.platform import ANSWERED_IN_DM
from tests.matrix.support import BotProcess, plant_prompts
from tests.support.jsclient import JsClient, JsEvent
from tests.support.jsclient_fixtures import JsClientFactory
from tests.support.synapse import SynapseServer

SIGNED = "is cross-signed"


def pill(client: JsClient) -> str:
    return f'<a href="https://matrix.to/#/{client.user_id}">{client.user_id}</a>'


def from_bot(bot: BotProcess, room: str | None = None, *, contains: str = "",
             replying_to: str | None = None) -> Callable[[JsEvent], bool]:
    def check(e: JsEvent) -> bool:
        relates = (e.relates_to or {}).get("m.in_reply_to") or {}
        return (e.sender == bot.user_id and e.type == "m.room.message"
                and (room is None or e.room_id == room) and contains in (e.body or "")
                and (replying_to is None or relates.get("event_id") == replying_to))
    return check


async def test_element_members_use_the_bot_in_encrypted_rooms_and_direct_rooms(
    synapse: SynapseServer, js_client_factory: JsClientFactory, tmp_path: Path
) -> None:
    account = synapse.register_user()
    admin = await js_client_factory(auto_join=[account.user_id])
    ana, ben = [await js_client_factory(auto_join=[admin.user_id, account.user_id])
                for _ in range(2)]
    bot = BotProcess(tmp_path, synapse, account, admins=[admin.user_id])
    bot.start()
    try:
        bot.wait_log(SIGNED)
        # An encrypted cohort room; the bot is a moderator, so it can withdraw messages.
        room = await admin.create_room([bot.user_id, ana.user_id, ben.user_id], encrypted=True,
                                       power_users={bot.user_id: 50})
        for who in (bot.user_id, ana.user_id, ben.user_id):
            await admin.wait_for_member(room, who)
        await admin.send(room, "!cohort cohort create Peer A")
        created = await admin.wait_for(from_bot(bot, room, contains="Created Peer A"),
                                       what="the cohort created")
        assert created.decrypted
        # Members added by pills, as Element's autocomplete writes them.
        await admin.send(room, f"!cohort cohort members add {ana.user_id} {ben.user_id}",
                         html=f"!cohort cohort members add {pill(ana)} {pill(ben)}")
        added = await admin.wait_for(from_bot(bot, room, contains="Added"), what="members added")
        assert ana.user_id in (added.body or "") and ben.user_id in (added.body or "")

        # `ask` typed in the room: withdrawn at once, and the bot says how to ask, in a
        # direct room it opens.
        typed = await ana.send(room, "!cohort ask Is it fine to say no to my PI?")
        hint = await ana.wait_for(lambda e: from_bot(bot, contains="direct message")(e)
                                  and e.room_id != room, what="the hint in a direct room")
        await ana.wait_for(lambda e: e.event_id == typed and e.redacted,
                           what="the question typed in the room, withdrawn")
        await ana.send(hint.room_id, "!cohort ask Is it fine to say no to my PI?")
        first = await ana.wait_for(from_bot(bot, hint.room_id, contains="Your code"),
                                   what="the code in the bot's direct room")

        # A direct room the member opens from their client ("Start chat").
        own = await ben.create_room([bot.user_id], encrypted=True, direct=True)
        await ben.wait_for_member(own, bot.user_id)
        await ben.send(own, "!cohort ask How do I plan a thesis?")
        second = await ben.wait_for(from_bot(bot, own, contains="Your code"),
                                    what="the code in the direct room the member opened")
        assert first.decrypted and second.decrypted

        await admin.send(room, "!cohort release")
        for member in (ana, ben):
            posted = await member.wait_for(from_bot(bot, room, contains="Anonymous question"),
                                           what="a released question")
            assert posted.decrypted

        # A restart: a command sent while the bot is down is answered once, after it, and a
        # scheduled message falls due just after it.
        mark = (await ben.events()).next
        bot.stop()
        down = await ben.send(room, "!cohort help")
        await plant_prompts(bot.db, "peer-a", [datetime.now(UTC) + timedelta(seconds=3)],
                            "scheduled")
        bot.start()
        bot.wait_log(SIGNED, count=2)
        for member in (admin, ana, ben):
            prompt = await member.wait_for(from_bot(bot, room, contains="scheduled-00"),
                                           what="a scheduled message")
            assert prompt.decrypted
        notice = await ben.wait_for(from_bot(bot, room, replying_to=down),
                                    what="the answer to a command sent while down")
        assert notice.body == ANSWERED_IN_DM
        await ben.wait_for(lambda e: from_bot(bot)(e) and e.room_id != room, since=mark,
                           what="help, in a direct room")
        await admin.send(room, "!cohort cohort set moderation on")
        after = await admin.wait_for(from_bot(bot, room, contains="moderation = on"),
                                     what="a reply after the restart")
        assert after.decrypted
    finally:
        bot.stop()

    device = bot.device_id()
    for member in (admin, ana, ben):
        events = [e for e in (await member.events()).events
                  if e.sender == bot.user_id and e.encrypted and not e.redacted]
        # Every message of the bot decrypts, on every member's device…
        assert events, f"{member} saw nothing of the bot"
        unread = [e.short() for e in events if not e.decrypted]
        assert not unread, f"{member} could not read: {unread}"
        # …nothing is answered twice…
        answers = Counter(((e.relates_to or {}).get("m.in_reply_to") or {}).get("event_id")
                          for e in events)
        answers.pop(None, None)
        assert all(n == 1 for n in answers.values()), answers
        # …and the bot's device is one its owner signed, with no warning on its messages.
        status = await member.device_status(bot.user_id)
        assert status.device(device).signed_by_owner is True
        info = await member.event_info(events[-1].room_id, events[-1].event_id)
        assert info.has_info and info.shield_colour != "RED", info
