"""A room's power counts in that room only, on a real Synapse with the real `cohortbot run`.

Fay is a room admin twice over, and of neither room a cohort lives in: power level 100 in a
room of version 11, and creator of a room of version 12 (whose creators outrank every power
level and appear in no power level list). In those rooms she may set up cohorts of her own.
Over Peer N, which lives in the configured admin's room, her rooms give her nothing: every
command of the grammar she sends with `--cohort peer-n` is refused as it would be for any
stranger, `cohort list` does not show Peer N, `cohort link peer-n` answers as if there were
no such cohort, and Peer N's rows do not change. A restart changes none of it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nio import RoomCreateResponse

from bot.chat.grammar import COMMANDS, Role, Spec
from tests.faults.test_authorization import invocation_text, refusal
from tests.matrix.support import BotProcess, Member, answer, from_bot
from tests.support.matrix_fixtures import ClientFactory
from tests.support.synapse import SynapseServer


async def _room(owner: Member, invite: list[str], *, version: str) -> str:
    resp = await owner.client.room_create(invite=invite, room_version=version)
    assert isinstance(resp, RoomCreateResponse), resp
    await owner.wait_room(resp.room_id)
    return str(resp.room_id)


def _cohort_rows(db: Path, slug: str) -> list[object]:
    """Everything stored about one cohort: its row, members, questions and messages."""
    with sqlite3.connect(db) as conn:
        [(cid,)] = conn.execute("SELECT id FROM cohorts WHERE slug = ?", (slug,)).fetchall()
        return [conn.execute(f"SELECT * FROM {table} WHERE {col} = ? ORDER BY 1",
                             (cid,)).fetchall()
                for table, col in (("cohorts", "id"), ("members", "cohort_id"),
                                   ("questions", "cohort_id"), ("outbox", "cohort_id"),
                                   ("sessions", "cohort_id"))]


def _matrix_text(spec: Spec, server: str) -> str:
    """The matrix's example for `spec`, its people named as Matrix users."""
    return " ".join(f"{w}:{server}" if w.startswith("@") else w
                    for w in invocation_text(spec).split(" "))


async def test_power_in_another_room_gives_nothing_over_a_cohort(
        synapse: SynapseServer, matrix_client_factory: ClientFactory, tmp_path: Path) -> None:
    root, fay, ana = [Member(await matrix_client_factory()) for _ in range(3)]
    bot = BotProcess(tmp_path, synapse, synapse.register_user(), admins=[root.user_id])
    # Dozens of commands within a minute from the same people: the per-person limit is not
    # what is tested here.
    bot.config.write_text(bot.config.read_text().replace(
        "[bot]\n", "[bot]\ncommands_per_minute = 1000\n", 1))
    bot.start()
    try:
        bot.wait_log("matrix: logged in")
        ana.join_invites_from = {root.user_id}
        root.join_invites_from = {fay.user_id}
        home = await _room(root, [bot.user_id, ana.user_id], version="12")
        await root.joined(home, bot.user_id)
        await root.say(home, "!cohort cohort create Peer N")
        await root.wait_for(from_bot(bot, home, contains="Created Peer N"))
        await root.say(home, f"!cohort cohort members add {ana.user_id}")
        await root.wait_for(from_bot(bot, home, contains="Added"))

        # Fay's rooms: power level 100 (version 11), and creator (version 12). The bot joins
        # them because a configured admin invites it.
        rooms = {}
        for version in ("11", "12"):
            room = await _room(fay, [root.user_id], version=version)
            await root.wait_room(room)
            await root.client.room_invite(room, bot.user_id)
            await root.joined(room, bot.user_id)
            rooms[version] = room
        fay_room = fay.client.rooms[rooms["12"]]
        assert fay.user_id not in fay_room.power_levels.users  # a creator, listed nowhere

        # Her power is real where she has it: each room gets a cohort of her own.
        for version, room in rooms.items():
            await fay.say(room, f"!cohort cohort create Fay {version}")
            await fay.wait_for(from_bot(bot, room, contains=f"Created Fay {version}"),
                               what=f"the cohort of the version {version} room")

        before = _cohort_rows(bot.db, "peer-n")
        cells = [spec for spec in COMMANDS if not spec.secret and spec.role > Role.ANYONE]
        for version, room in rooms.items():
            for spec in cells:
                # One at a time: a sync shows a room's latest events only. (A refusal
                # is answered in her direct room.)
                reply = await answer(fay, bot, room, "!cohort --cohort peer-n "
                                     + _matrix_text(spec, synapse.server_name))
                first = reply.body.split("\n")[0]
                assert first == refusal(spec, "Peer N"), (version, spec.name, reply.body)

            reply = await answer(fay, bot, room, "!cohort cohort list")
            assert f"Fay {version}" in reply.body and "Peer N" not in reply.body, reply.body
            reply = await answer(fay, bot, room, "!cohort cohort link peer-n")
            assert reply.body.startswith("This channel is already linked to"), reply.body
        # An unlinked room of hers: linking Peer N there is refused as for an unknown id.
        spare = await _room(fay, [root.user_id], version="11")
        await root.wait_room(spare)
        await root.client.room_invite(spare, bot.user_id)
        await root.joined(spare, bot.user_id)
        reply = await answer(fay, bot, spare, "!cohort cohort link peer-n")
        other = await answer(fay, bot, spare, "!cohort cohort link nonesuch")
        assert reply.body == other.body.replace("nonesuch", "peer-n"), (reply.body, other.body)
        assert reply.body.startswith("No cohort has the id 'peer-n'"), reply.body

        assert _cohort_rows(bot.db, "peer-n") == before
        # The configured admin still rules Peer N from its room.
        shown = await answer(root, bot, home, "!cohort cohort show")
        assert shown.body.startswith("Peer N (id peer-n)"), shown.body
        assert ana.user_id in shown.body and fay.user_id not in shown.body

        # After a restart the creators of a version 12 room (whose create event now comes in
        # a sync's state, never in its timeline) are still its admins.
        bot.stop()
        bot.start()
        bot.wait_log("matrix: logged in", count=2)
        shown = await answer(fay, bot, rooms["12"], "!cohort cohort show", timeout=60)
        assert shown.body.startswith("Fay 12 (id fay-12)"), shown.body
    finally:
        bot.stop()
    assert "Traceback" not in bot.log()
