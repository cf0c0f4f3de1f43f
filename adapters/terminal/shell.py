"""An interactive (or scripted) chat in the terminal, with the real core behind it.

Lines starting with `/cohort` or `!cohort` are commands; other lines are chat, echoed as
`[#channel] name: text`. Meta-commands: `:as NAME`, `:in #CHANNEL`, `:dm`, `:advance 90m`
(simulated clock only), `:now`, `:help`. Every line the bot prints starts with where it went:
`[#peer-a]`, `[dm:ana]`, or `[private:ana]` for a reply only the caller sees; what is
delivered while `:advance` moves the clock also carries its time, `[#peer-a · Tue 1 Dec 13:00]`
(UTC, like `:now`).

A channel here is a place others can see, as a Matrix room is: a command typed in one is
`seen_by_channel`, so the core refuses a command that would tie its sender to an anonymous
question, and the shell shows the message withdrawn (`Reply.withdraw`). A reply meant for a
direct conversation (`Reply.direct`) prints as `[dm:name]`.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol, TextIO
from zoneinfo import ZoneInfo

from adapters.terminal.render import prefixed, render
from bot.chat.message import Message
from bot.domain.errors import UserError
from bot.domain.refs import ChannelRef, UserRef
from bot.domain.timeparse import format_local, parse_duration
from bot.service.api import Invocation, Reply
from bot.service.ports import Outgoing

PLATFORM = "terminal"


class TerminalMessenger:
    """Prints outgoing messages. Remembers delivered outbox ids in `delivered_log` (when given)
    so that a message resent after a crash is not printed twice — the terminal's equivalent of
    a platform's transaction-id dedupe."""

    platform = PLATFORM

    def __init__(self, out: TextIO, delivered_log: Path | None = None) -> None:
        self._out = out
        #: While set (the shell's `:advance`), each line also shows when it was delivered.
        self.stamp: Callable[[], datetime] | None = None
        self._delivered: set[int] = set()
        self._log: TextIO | None = None
        if delivered_log is not None:
            if delivered_log.exists():
                self._delivered = {
                    int(x) for x in delivered_log.read_text().split() if x.isdigit()
                }
            # Kept open so the record follows the print within microseconds: a crash between
            # the two is the only way a line can be printed twice.
            self._log = delivered_log.open("a", buffering=1)

    async def send(self, out: Outgoing) -> str:
        self._print(out, render(out.message))
        return f"terminal-{out.outbox_id}"

    # A terminal cannot change what it printed: it prints the change as a line of its own.

    async def edit(self, out: Outgoing, message_id: str) -> None:
        self._print(out, "(edited) " + render(out.message))

    async def delete(self, out: Outgoing, message_id: str) -> None:
        self._print(out, "(removed) " + render(out.message))

    async def whisper(self, user: UserRef, tenant: str | None, place: ChannelRef | None,
                      message: Message) -> None:
        """Printed at once, and recorded nowhere (it has no outbox id)."""
        where = f"dm:{user.id}"
        if self.stamp is not None:
            where += f" · {_short_time(self.stamp())}"
        self._out.write(prefixed(f"[{where}]", render(message)) + "\n")
        self._out.flush()

    def _print(self, out: Outgoing, text: str) -> None:
        if out.outbox_id in self._delivered:
            return
        place = f"dm:{out.target}" if out.direct else f"#{out.target}"
        if self.stamp is not None:
            place += f" · {_short_time(self.stamp())}"
        self._out.write(prefixed(f"[{place}]", text) + "\n")
        self._out.flush()
        if self._log is not None:
            self._log.write(f"{out.outbox_id}\n")
        self._delivered.add(out.outbox_id)


def _short_time(when: datetime) -> str:
    """`Tue 1 Dec 13:00` (UTC): when a message went out, short enough for every line."""
    t = when.astimezone(_UTC)
    return f"{t:%a} {t.day} {t:%b %H:%M}"


class Clockwork(Protocol):
    """What the shell needs from the clock (a simulated one can be moved)."""

    def now(self) -> datetime: ...


class Shell:
    def __init__(
        self,
        *,
        handle: Callable[[Invocation], Awaitable[list[Reply]]],
        run_due: Callable[[], Awaitable[object]],
        advance: Callable[[datetime], Awaitable[None]] | None,
        clock: Clockwork,
        out: TextIO,
        user: str,
        channel: str,
        command_word: str = "cohort",
        messenger: TerminalMessenger | None = None,
        stop_hint: str = "end with Ctrl-D",
    ) -> None:
        self._handle = handle
        self._run_due = run_due
        self._advance = advance
        self._clock = clock
        self._out = out
        self.user = user
        self.channel: str | None = channel
        self._word = command_word
        self._messenger = messenger
        self._stop_hint = stop_hint

    def say(self, line: str) -> None:
        self._out.write(line + "\n")
        self._out.flush()

    @property
    def place(self) -> str:
        return f"#{self.channel}" if self.channel else f"dm:{self.user}"

    def _command_text(self, line: str) -> str | None:
        for prefix in ("/", "!"):
            head = prefix + self._word
            if line == head or line.startswith(head + " "):
                return line[len(head):].strip()
        return None

    async def line(self, raw: str) -> None:
        line = raw.strip()
        if not line or line.startswith("#"):
            return
        if line.startswith(":"):
            await self._meta(line)
            return
        self.say(f"[{self.place}] {self.user}: {line}")
        text = self._command_text(line)
        if text is None:
            return
        channel = ChannelRef(PLATFORM, self.channel) if self.channel else None
        # A channel is a place others can see (as a Matrix room): the command is too.
        replies = await self._handle(Invocation(user=UserRef(PLATFORM, self.user), text=text,
                                                channel=channel,
                                                seen_by_channel=channel is not None))
        if any(r.withdraw for r in replies):
            why = (": everyone here could see it" if channel is not None else
                   ", so that it does not stay beside their name")
            self.say(f"[{self.place}] ({self.user}'s message was removed{why})")
        for reply in replies:
            if reply.direct:
                prefix = f"[dm:{self.user}]"
            elif reply.private:
                prefix = f"[private:{self.user}]"
            else:
                prefix = f"[{self.place}]"
            self.say(prefixed(prefix, render(reply.message)))
        await self._run_due()

    def _where(self) -> str:
        return f"#{self.channel}" if self.channel else "your direct conversation with the bot"

    def greeting(self) -> str:
        """The first line: what to type."""
        return (f"[shell] You are {self.user} in {self._where()}. Type /{self._word} help for the "
                f"bot's commands, :help for the shell's own; {self._stop_hint}.")

    async def _meta(self, line: str) -> None:
        word, _, arg = line.partition(" ")
        arg = arg.strip()
        if word == ":as" and arg:
            self.user = arg.lstrip("@")
        elif word == ":as":
            self.say(f"[shell] You are {self.user}, typing in {self._where()} "
                     "(:as NAME to be someone else).")
        elif word == ":in" and arg:
            self.channel = arg.lstrip("#")
        elif word == ":in":
            self.say(f"[shell] You are typing in {self._where()} (:in #CHANNEL to move).")
        elif word == ":dm":
            self.channel = None
        elif word == ":now":
            self.say(f"[clock] {format_local(self._clock.now(), _UTC)}")
        elif word == ":advance":
            if self._advance is None:
                self.say("[shell] :advance needs the simulated clock (--clock simulated).")
                return
            try:
                delta = parse_duration(arg)
            except UserError as e:
                self.say(f"[shell] {e.message}")
                return
            if self._messenger is not None:
                self._messenger.stamp = self._clock.now
            try:
                await self._advance(self._clock.now() + delta)
            finally:
                if self._messenger is not None:
                    self._messenger.stamp = None
            self.say(f"[clock] {format_local(self._clock.now(), _UTC)}")
        elif word == ":help":
            for usage, what in _META_HELP:
                self.say(f"[shell] {usage.replace('WORD', self._word):<14} {what}")
        else:
            self.say(f"[shell] unknown meta-command {word!r} (try :help)")

    async def run(self, stream: TextIO | None = None) -> None:
        """Read lines until end of input. Cancellable at any point (SIGTERM)."""
        stream = stream or sys.stdin
        self.say(self.greeting())
        if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            for raw in stream:  # a script file: reading never blocks
                await self.line(raw)
            return
        interactive = stream.isatty()  # asked now: the pipe transport closes the stream at EOF
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        # A pipe or terminal is read by the event loop itself, so a stop signal can cancel
        # the read (a reading thread would keep the process alive).
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), stream
        )
        try:
            while True:
                if interactive:
                    self._out.write(f"{self.place} {self.user}> ")
                    self._out.flush()
                raw = await reader.readline()
                if not raw:
                    return
                await self.line(raw.decode("utf-8", errors="replace"))
        finally:
            transport.close()


_UTC = ZoneInfo("UTC")

_META_HELP = (
    (":as NAME", "act as someone else (:as alone: who you are)"),
    (":in #CHANNEL", "type in a channel, where everyone there sees what you type"),
    (":dm", "type in your direct conversation with the bot"),
    (":advance 90m", "move the simulated clock, delivering what falls due (--clock simulated)"),
    (":now", "show the time (UTC)"),
    (":help", "this list"),
    ("/WORD help", "what you may ask the bot"),
)
