"""The terminal prints what the bot sends; a change to a message sent earlier (an edit, a
removal) cannot change what was printed, so it is a line of its own in the same place."""

from __future__ import annotations

import io

from adapters.terminal.shell import TerminalMessenger
from bot.chat.message import Message
from bot.domain.refs import ChannelRef, UserRef
from bot.service.ports import Outgoing


def _out(outbox_id: int, text: str, *, direct: bool = False) -> Outgoing:
    return Outgoing(outbox_id=outbox_id, key=f"k{outbox_id}", target="ana" if direct else
                    "peer-a", direct=direct, message=Message.of(text))


async def test_an_edit_and_a_removal_are_lines_in_the_channel_printed_once() -> None:
    screen = io.StringIO()
    terminal = TerminalMessenger(screen)
    sent = await terminal.send(_out(1, "Anonymous question #1\nHow do I say no?"))
    await terminal.edit(_out(2, "Anonymous question #1 (3 upvotes)"), sent)
    await terminal.delete(_out(3, "Anonymous question #1 was withdrawn by its author."), sent)
    await terminal.delete(_out(3, "Anonymous question #1 was withdrawn by its author."), sent)
    await terminal.edit(_out(4, "Hello", direct=True), "terminal-9")
    assert screen.getvalue().splitlines() == [
        "[#peer-a] Anonymous question #1",
        "[#peer-a] How do I say no?",
        "[#peer-a] (edited) Anonymous question #1 (3 upvotes)",
        "[#peer-a] (removed) Anonymous question #1 was withdrawn by its author.",
        "[dm:ana] (edited) Hello",
    ]


async def test_a_whisper_is_a_dm_line_printed_at_once() -> None:
    screen = io.StringIO()
    terminal = TerminalMessenger(screen)
    await terminal.whisper(UserRef("terminal", "ana"), None, ChannelRef("terminal", "peer-a"),
                           Message.of("Your anonymous question in Peer A is approved."))
    assert screen.getvalue() == "[dm:ana] Your anonymous question in Peer A is approved.\n"
