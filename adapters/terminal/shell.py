"""An interactive (or scripted) chat in the terminal, with the real core behind it.

Lines starting with `/cohort` or `!cohort` are commands; other lines are chat, echoed as
`[#channel] name: text`. Meta-commands: `:as NAME`, `:in #CHANNEL`, `:dm`, `:advance 90m`
(simulated clock only), `:now`, `:help`. Every line the bot prints starts with where it went:
`[#peer-a]`, `[dm:ana]`, or `[private:ana]` for a reply only the caller sees.
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
        if out.outbox_id not in self._delivered:
            prefix = f"[dm:{out.target}]" if out.direct else f"[#{out.target}]"
            self._out.write(prefixed(prefix, render(out.message)) + "\n")
            self._out.flush()
            if self._log is not None:
                self._log.write(f"{out.outbox_id}\n")
            self._delivered.add(out.outbox_id)
        return f"terminal-{out.outbox_id}"


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
    ) -> None:
        self._handle = handle
        self._run_due = run_due
        self._advance = advance
        self._clock = clock
        self._out = out
        self.user = user
        self.channel: str | None = channel
        self._word = command_word

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
        replies = await self._handle(Invocation(user=UserRef(PLATFORM, self.user), text=text,
                                                channel=channel))
        for reply in replies:
            prefix = f"[private:{self.user}]" if reply.private else f"[{self.place}]"
            self.say(prefixed(prefix, render(reply.message)))
        await self._run_due()

    async def _meta(self, line: str) -> None:
        word, _, arg = line.partition(" ")
        arg = arg.strip()
        if word == ":as" and arg:
            self.user = arg.lstrip("@")
        elif word == ":in" and arg:
            self.channel = arg.lstrip("#")
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
            await self._advance(self._clock.now() + delta)
            self.say(f"[clock] {format_local(self._clock.now(), _UTC)}")
        elif word == ":help":
            self.say("[shell] :as NAME · :in #CHANNEL · :dm · :advance 90m · :now · "
                     f"/{self._word} help")
        else:
            self.say(f"[shell] unknown meta-command {word!r} (try :help)")

    async def run(self, stream: TextIO | None = None) -> None:
        """Read lines until end of input. Cancellable at any point (SIGTERM)."""
        stream = stream or sys.stdin
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
