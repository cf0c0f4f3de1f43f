"""A posted anonymous question withdrawn by its author, on a real Synapse: the bot redacts
its own post in the cohort's room (the adapter runs in this process on a simulated clock)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from bot.domain.refs import ChannelRef, UserRef
from bot.service.api import Invocation
from bot.service.dispatcher import Dispatcher
from tests.matrix.support import Member
from tests.matrix.test_question_privacy import (
    QUESTION,
    ask,
    cohort_with_dm,
    event,
    from_bot,
    redacted,
    rig,
)
from tests.support.matrix_fixtures import ClientFactory
from tests.support.synapse import SynapseServer


async def test_withdrawing_a_posted_question_redacts_the_bots_post(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    admin, ana = [Member(await matrix_client_factory()) for _ in range(2)]
    async with rig(tmp_path, synapse, admin) as r:
        platform = await r.start()
        # (The rig's app has no messenger of its own: deliveries go through this platform.)
        deliver = Dispatcher(r.app.uow, r.clock, r.app.policy,
                             {"matrix": platform.messenger}).run_due
        dm = await cohort_with_dm(r, admin, ana)
        [room] = [rid for rid in admin.client.rooms if rid != dm]
        await admin.say(room, "!cohort cohort set question-release immediate")
        await admin.wait_for(from_bot(r.user_id, room, "immediate"), what="the setting")
        _, _, code = await ask(r, ana, dm)
        await deliver()
        post = await admin.wait_for(from_bot(r.user_id, room, QUESTION), what="the post")
        assert not redacted(await event(admin, room, post.event_id))

        await ana.say(dm, f"!cohort retract {code}")
        await ana.wait_for(from_bot(r.user_id, dm, "its post is being removed"),
                           what="the answer")
        await deliver()
        source = await event(admin, room, post.event_id)
        assert redacted(source), source
        assert source["content"] == {}


async def test_the_author_is_told_in_their_direct_room(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    admin, ana = [Member(await matrix_client_factory()) for _ in range(2)]
    async with rig(tmp_path, synapse, admin) as r:
        platform = await r.start()
        r.app.messengers["matrix"] = platform.messenger  # (the core tells through it)
        dm = await cohort_with_dm(r, admin, ana)
        [room] = [rid for rid in admin.client.rooms if rid != dm]
        await admin.say(room, "!cohort cohort set moderation on")
        await admin.wait_for(from_bot(r.user_id, room, "moderation"), what="the setting")
        await ask(r, ana, dm)

        async def facilitator(text: str) -> str:
            replies = await r.app.bot.handle(Invocation(
                user=UserRef("matrix", admin.user_id), text=text,
                channel=ChannelRef("matrix", room)))
            return "\n".join(x.message.plain() for x in replies)

        found = re.search(r"\[(\w+)\]", await facilitator("questions review"))
        assert found is not None
        assert "Approved" in await facilitator(f"approve {found[1]}")
        told = await ana.wait_for(from_bot(r.user_id, dm, "is approved by a facilitator"),
                                  what="the outcome")
        assert told.decrypted  # (the bot's direct rooms are encrypted)
        assert "It will be posted with the next batch." in told.body
        # Nothing went to the shared room.
        assert not any("approved" in s.body for s in admin.seen if s.room_id == room
                       and s.sender == r.user_id)


async def test_the_count_on_the_post_is_an_edit_of_it(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    admin, ana = [Member(await matrix_client_factory()) for _ in range(2)]
    async with rig(tmp_path, synapse, admin) as r:
        platform = await r.start()
        r.app.messengers["matrix"] = platform.messenger
        dm = await cohort_with_dm(r, admin, ana)
        [room] = [rid for rid in admin.client.rooms if rid != dm]
        await admin.say(room, "!cohort cohort set question-release immediate")
        await admin.wait_for(from_bot(r.user_id, room, "immediate"), what="the setting")
        await ask(r, ana, dm)
        await r.app.dispatcher.run_due()
        post = await admin.wait_for(from_bot(r.user_id, room, QUESTION), what="the post")
        replies = await r.app.bot.handle(Invocation(user=UserRef("matrix", ana.user_id),
                                                    text="upvote 1", channel=None))
        assert "Upvoted #1" in replies[0].message.plain()
        r.clock.set(r.clock.now() + timedelta(minutes=13))
        await r.app.dispatcher.run_due()
        edit = await admin.wait_for(from_bot(r.user_id, room, "▲ 1 upvote"), what="the edit")
        content = (await event(admin, room, edit.event_id))["content"]
        assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": post.event_id}
        assert content["m.new_content"]["body"].endswith("▲ 1 upvote")
        assert content["m.mentions"] == {}
