"""Drive the real `cohortbot run` process on a Synapse homeserver, and watch it through the
eyes of member clients (matrix-nio)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    MegolmEvent,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
)

from adapters.matrix.platform import ANSWERED_IN_DM
from tests.e2e.conftest import COHORTBOT
from tests.support.planting import Planted, plant
from tests.support.synapse import RegisteredUser, SynapseServer

#: The bots' `matrix.store_key` in tests (any string of at least 16 characters).
STORE_KEY = "test-store-key-0123456789abcdef"

ENCRYPTION = {"type": "m.room.encryption", "state_key": "",
              "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


class BotProcess:
    """`cohortbot run` with Matrix enabled: a TOML config, a SQLite file, a store directory."""

    def __init__(self, root: Path, server: SynapseServer, account: RegisteredUser,
                 admins: list[str], **matrix: Any) -> None:
        self.root = root
        self.account = account
        self.store = root / "matrix-store"
        self.db = root / "bot.db"
        self.config = root / "cohortbot.toml"
        self.logfile = root / "bot.log"
        self.proc: subprocess.Popen[bytes] | None = None
        settings = {"enabled": True, "homeserver": server.base_url,
                    "user_id": account.user_id, "password": account.password,
                    "store_path": str(self.store), "device_name": "cohortbot-test",
                    "store_key": STORE_KEY, **matrix}
        settings = {k: v for k, v in settings.items() if v is not None}  # None: not set
        self.config.write_text("\n".join([
            "[database]", f'url = "sqlite+aiosqlite:///{self.db}"',
            "[bot]", f"admins = {json.dumps(['matrix:' + a for a in admins])}",
            'log_level = "INFO"',
            "[matrix]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items()), "",
        ]))

    @property
    def user_id(self) -> str:
        return self.account.user_id

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COHORTBOT_")}
        env["PYTHONUNBUFFERED"] = "1"
        log = self.logfile.open("ab")
        self.proc = subprocess.Popen([COHORTBOT, "--config", str(self.config), "run"],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                     env=env, start_new_session=True)
        log.close()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)

    def device_id(self) -> str:
        """The bot's device, from its saved login."""
        return str(json.loads((self.store / "session.json").read_text())["device_id"])

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def wait_log(self, text: str, timeout: float = 30, *, count: int = 1) -> None:
        """Until `text` appears `count` times in the log (each start logs in once)."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the bot exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the bot's log:\n{self.log()[-3000:]}")
            time.sleep(0.1)


def matrix_environ(server: SynapseServer, account: RegisteredUser, store: Path
                   ) -> dict[str, str]:
    """Matrix settings for a bot process, as environment overrides."""
    return {
        "COHORTBOT_MATRIX__ENABLED": "true",
        "COHORTBOT_MATRIX__HOMESERVER": server.base_url,
        "COHORTBOT_MATRIX__USER_ID": account.user_id,
        "COHORTBOT_MATRIX__PASSWORD": account.password,
        "COHORTBOT_MATRIX__STORE_PATH": str(store),
        "COHORTBOT_MATRIX__STORE_KEY": STORE_KEY,
    }


@dataclass
class Seen:
    room_id: str
    sender: str
    content: dict[str, Any]
    event_id: str
    decrypted: bool

    @property
    def body(self) -> str:
        return str(self.content.get("body", ""))


@dataclass
class Member:
    """A person on the homeserver: a nio client that keeps everything it has seen."""

    client: AsyncClient
    seen: list[Seen] = field(default_factory=list)
    join_invites_from: set[str] = field(default_factory=set)
    #: Encrypted messages this device could not decrypt (no room key reached it).
    undecrypted: list[Seen] = field(default_factory=list)

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    async def sync(self, timeout_ms: int = 500) -> None:
        c = self.client
        resp = await c.sync(timeout=timeout_ms)
        assert isinstance(resp, SyncResponse), f"{self.user_id}: sync failed: {resp}"
        for room_id, info in resp.rooms.join.items():
            for ev in info.timeline.events:
                src = getattr(ev, "source", {}) or {}
                if src.get("type") == "m.room.message" or hasattr(ev, "body"):
                    content = src.get("content", {})
                    self.seen.append(Seen(room_id, ev.sender, content, ev.event_id,
                                          bool(getattr(ev, "decrypted", False))))
                elif isinstance(ev, MegolmEvent):
                    self.undecrypted.append(Seen(room_id, ev.sender, src.get("content", {}),
                                                 ev.event_id, False))
        for room_id, info in resp.rooms.invite.items():
            inviter = next((e.sender for e in info.invite_state
                            if getattr(e, "membership", None) == "invite"
                            and getattr(e, "state_key", None) == self.user_id), None)
            if inviter in self.join_invites_from:
                await c.join(room_id)
        if c.should_upload_keys:
            await c.keys_upload()
        if c.should_query_keys:
            await c.keys_query()
        if c.should_claim_keys:
            await c.keys_claim(c.get_users_for_key_claiming())
        await c.send_to_device_messages()

    async def wait_for(self, check: Callable[[Seen], bool], timeout: float = 30,
                       what: str = "a message") -> Seen:
        deadline = time.monotonic() + timeout
        while True:
            for s in self.seen:
                if check(s):
                    return s
            if time.monotonic() > deadline:
                bodies = "\n".join(f"  [{s.room_id[:8]}] {s.sender}: {s.body[:120]!r}"
                                   for s in self.seen[-15:])
                raise AssertionError(f"{self.user_id} never saw {what}; last seen:\n{bodies}")
            await self.sync()

    async def say(self, room_id: str, text: str, html: str | None = None) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if html is not None:
            content.update(format="org.matrix.custom.html", formatted_body=html)
        if room_id not in self.client.rooms:
            await self.wait_room(room_id)
        resp = await self.client.room_send(room_id, "m.room.message", content,
                                           ignore_unverified_devices=True)
        assert isinstance(resp, RoomSendResponse), f"send failed: {resp}"
        return str(resp.event_id)

    async def wait_room(self, room_id: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while room_id not in self.client.rooms:
            assert time.monotonic() < deadline, f"{self.user_id} never saw room {room_id}"
            await self.sync()

    async def create_room(self, invite: list[str], *, encrypted: bool = False,
                          power: dict[str, int] | None = None) -> str:
        resp = await self.client.room_create(
            invite=invite, initial_state=[ENCRYPTION] if encrypted else [],
            power_level_override={"users": power} if power else None)
        assert isinstance(resp, RoomCreateResponse), resp
        await self.wait_room(resp.room_id)
        return str(resp.room_id)

    async def open_direct(self, user_id: str, *, encrypted: bool = True) -> str:
        """A direct room with `user_id`, opened as Element's "Start chat" does."""
        resp = await self.client.room_create(
            invite=[user_id], is_direct=True, preset=RoomPreset.trusted_private_chat,
            initial_state=[ENCRYPTION] if encrypted else [])
        assert isinstance(resp, RoomCreateResponse), resp
        await self.wait_room(resp.room_id)
        return str(resp.room_id)

    async def joined(self, room_id: str, user_id: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            room = self.client.rooms.get(room_id)
            if room is not None and user_id in room.users:
                return
            assert time.monotonic() < deadline, f"{user_id} never joined {room_id}"
            await self.sync()


def from_bot(bot: BotProcess, room_id: str | None = None, *, contains: str = "",
             notice: bool | None = None) -> Callable[[Seen], bool]:
    def check(s: Seen) -> bool:
        return (s.sender == bot.user_id and (room_id is None or s.room_id == room_id)
                and contains in s.body
                and (notice is None or (s.content.get("msgtype") == "m.notice") == notice))
    return check


def replying_to(bot: BotProcess, room_id: str, event_id: str) -> Callable[[Seen], bool]:
    """The bot's messages in `room_id` that reply to `event_id`."""
    def check(s: Seen) -> bool:
        relates = s.content.get("m.relates_to") or {}
        return (from_bot(bot, room_id)(s)
                and (relates.get("m.in_reply_to") or {}).get("event_id") == event_id)
    return check


def elsewhere(bot: BotProcess, room_id: str, *, contains: str = "",
              notice: bool | None = None) -> Callable[[Seen], bool]:
    """The bot's messages anywhere but in `room_id` (in a direct room)."""
    def check(s: Seen) -> bool:
        return from_bot(bot, contains=contains, notice=notice)(s) and s.room_id != room_id
    return check


async def command(member: Member, bot: BotProcess, room_id: str, text: str,
                  timeout: float = 30) -> tuple[str, Seen]:
    """Type `text` in `room_id`: the command's event id, and the bot's answer wherever it
    went. In the room, as a reply to the command; or in a direct room, and then the room has
    a notice saying so (the member joins the direct rooms the bot opens)."""
    member.join_invites_from.add(bot.user_id)
    mark = len(member.seen)
    sent = await member.say(room_id, text)
    here = await member.wait_for(replying_to(bot, room_id, sent), timeout=timeout,
                                 what=f"the answer to {text!r}")
    if here.body != ANSWERED_IN_DM:
        return sent, here

    def later(s: Seen) -> bool:  # (in their direct room, not in another shared room)
        room = member.client.rooms.get(s.room_id)
        return (elsewhere(bot, room_id)(s) and room is not None
                and set(room.users) == {member.user_id, bot.user_id}
                and any(s is x for x in member.seen[mark:]))

    return sent, await member.wait_for(later, timeout=timeout,
                                       what=f"the DM answer to {text!r}")


async def answer(member: Member, bot: BotProcess, room_id: str, text: str,
                 timeout: float = 30) -> Seen:
    """The bot's answer to `text` typed in `room_id`, wherever it went (see `command`)."""
    return (await command(member, bot, room_id, text, timeout))[1]


async def plant_prompts(db: Path, slug: str, due: list[datetime], tag: str) -> None:
    """`prompt` notifications for an existing cohort, text `<tag>-<n>`, one per instant."""
    await plant(db, [Planted(slug, f"{tag}-{i:02d}", at) for i, at in enumerate(due)])


class ConnectionCounter:
    """Listens where a stopped server was, counting each connection and closing it at once:
    what a client's retries cost while the server is down."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.count = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ConnectionCounter:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.count += 1
            writer.close()

        self._server = await asyncio.start_server(on_connect, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
