"""`Reply.shareable`: only confirmations of setup and facilitator actions, never a read of
someone's data, a refusal or a usage error (platforms without ephemeral replies show
shareable replies where the command was typed; see docs/matrix.md)."""

from __future__ import annotations

from bot.chat.grammar import COMMANDS, SHAREABLE
from tests.conftest import Harness


def test_every_shareable_name_is_a_command_and_none_is_secret() -> None:
    names = {spec.name: spec for spec in COMMANDS}
    assert not SHAREABLE - names.keys()
    assert not any(names[n].secret for n in SHAREABLE)
    assert {n for n in SHAREABLE if not n.startswith(("cohort", "session"))} == {
        "prompt", "release", "rotation assign"}


async def test_confirmations_are_shareable_reads_refusals_and_errors_are_not(
        harness: Harness) -> None:
    await harness.setup_cohort(members="@ana")
    [set_reply] = await harness.replies("root", "cohort set moderation on")
    assert set_reply.shareable and "moderation = on" in set_reply.message.plain()
    for user, text in (("ana", "next"), ("ana", "help"), ("ana", "action list"),
                       ("fay", "questions review"), ("root", "cohort list"),
                       ("ana", "cohort set moderation off"),  # refused: not an admin
                       ("ana", "frobnicate"), ("root", "cohort schedule nonsense")):
        [reply] = await harness.replies(user, text)
        assert reply.private and not reply.shareable, (text, reply.message.plain())
