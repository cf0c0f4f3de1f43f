"""cohortbot on Matrix, with matrix-nio (end-to-end encryption through vodozemac).

One `MatrixPlatform` is one bot account. It keeps its login (device id, access token), its
sync token and its crypto store under `store_path`, so a restart reuses the same device and
resumes the sync where it stopped. The crypto store is sealed with `matrix.store_key`, and
the directory is readable by its owner only (see `adapters.matrix.store`). The sync loop
backs off up to a minute while the homeserver is unreachable and wakes the core when it is
back; sends use the outbox id as transaction id, so a resend after a crash is deduplicated
by the homeserver.

Where replies go: a reply to a command typed in a shared room goes to the caller's direct
room, and the room gets a one-line notice saying so, unless it is public (`Reply.private`
is false) or a confirmation that reveals nothing private (`Reply.shareable`); commands tied
to an anonymous question are withdrawn instead (no notice). A room is direct only while its
members (joined or invited) are the bot and the one person it is direct with: checked when
a command arrives. The bot's own direct rooms use the `private_chat` preset, where only the
bot may invite; every direct room is kept in `m.direct`. When a third person joins a direct
room, the bot stops treating it as one and tells the person, once, in a new direct room.

Cross-signing: at its first start the bot gives its account cross-signing keys and, at every
start, signs its device with them, so that Element and other clients that exclude devices
nobody vouched for talk to it (see `adapters.matrix.cross_signing`). The keys live in the
database, sealed with `matrix.store_key`. With `matrix.exclude_insecure_devices` (the
default, as in Element), room keys go only to members' devices their owner signed.

Invitations: the bot joins rooms an admin invites it to, and direct rooms (`is_direct`)
opened by anyone who is in one of its cohorts; it declines every other invitation.

Leaving: a member who leaves, is kicked or banned from a room that is not direct is reported
to the core (`Core.moved`), and so is their coming back.

Privacy of anonymous questions: a command that ties its sender to an anonymous question
(`Reply.withdraw`) is redacted as soon as it is answered, in a direct room as in any other,
where the bot's power level allows it. A reply that holds a secret of its reader
(`Reply.fleeting`, a question's code) is redacted `FLEETING` after it was sent; the pending
redactions survive a restart (see `adapters.matrix.fleeting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import ClientConnectionError
from nio import (
    Api,
    AsyncClient,
    AsyncClientConfig,
    DirectRoomsResponse,
    InviteMemberEvent,
    JoinError,
    KeysQueryResponse,
    LocalProtocolError,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    ProfileGetResponse,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessagesResponse,
    RoomMessageText,
    RoomPreset,
    RoomRedactResponse,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from adapters.matrix import cross_signing as xs
from adapters.matrix.account import saved_login
from adapters.matrix.creators import RoomCreators, creator_power
from adapters.matrix.fleeting import FILE_NAME, Pending, PendingRedactions
from adapters.matrix.inbound import command_text
from adapters.matrix.render import render
from adapters.matrix.store import KEY_VARIABLE, restrict, seal, store_keys
from bot import metrics
from bot.chat.message import Message
from bot.config import ConfigError, MatrixSettings
from bot.domain.refs import ChannelRef, UserRef
from bot.service.api import FLEETING, Core, Invocation, Reply
from bot.service.ports import (
    Clock,
    CrossSigningKeys,
    DeliveryError,
    Outgoing,
    SealedCrossSigning,
)

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 30_000
MAX_PAUSE = 60.0  # seconds between attempts while the homeserver is unreachable
RATE_LIMIT_BUDGET = 40.0  # seconds a send may wait out rate limits before giving the row back
ROOM_WAIT = 30.0  # seconds to wait for a new room to show up in the sync
TZ_FIELDS = ("m.tz", "us.cloke.msc4175.tz")  # the profile's time zone, stable and unstable
TZ_TTL = 3600.0
REPLAY_MS = 60_000  # commands up to this old when the sync starts are still answered
CONCURRENT_COMMANDS = 8
#: Every message the bot sends from the outbox carries its outbox id under this key.
OUTBOX_MARK = "io.cohortbot.outbox_id"
#: How many of its own recent events in a room the bot reads to find an earlier try.
LOOKBACK_EVENTS = 50
#: Longest wait between two looks at the pending redactions (the clock may jump).
REDACT_CHECK = 60.0
#: Wait before trying again to redact something that could not be redacted.
REDACT_RETRY = 30.0
#: Redaction refusals that trying again will not change: the entry is given up.
REDACT_GIVE_UP = ("M_FORBIDDEN", "M_NOT_FOUND", "M_BAD_JSON", "M_INVALID_PARAM")
#: Said in a shared room, in reply to a command answered in the caller's direct room.
ANSWERED_IN_DM = "I answered you in a direct message."
#: Said in a new direct room to the person whose direct room someone else joined.
NO_LONGER_DIRECT = ("Someone else joined the direct room I had with you, so I no longer "
                    "treat it as private: I will write to you here from now on. Send commands "
                    "about your anonymous questions here, not there.")


class MatrixPlatform:
    name = "matrix"
    exclusive = True  # one sync loop per bot account

    def __init__(self, settings: MatrixSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        # When fleeting replies fall due: the wall clock, unless a test moves one by hand.
        self.clock: Clock = clock or WallClock()
        self.messenger = MatrixMessenger(self)
        self.directory = MatrixDirectory(self)
        self.store = Path(settings.store_path)
        self.client: AsyncClient | None = None
        self.ready = asyncio.Event()  # set after each successful sync
        self._core: Core | None = None
        self._command = "!cohort"
        self._admins: frozenset[str] = frozenset()
        self._started_ms = 0
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(CONCURRENT_COMMANDS)
        self._direct: dict[str, list[str]] = {}  # user id → the direct rooms with them
        self._partner: dict[str, str] = {}  # direct room → the one person it is direct with
        self.creators = RoomCreators()  # room version ≥ 12: creators outrank power levels
        self._dm_lock = asyncio.Lock()
        self._not_before = 0.0  # monotonic instant before which no send is attempted (429)
        self._send_lock = asyncio.Lock()
        self.requests = 0  # requests made to the homeserver, for tests and benchmarks
        self.pending = PendingRedactions(self.store / FILE_NAME)
        self._redact_lock = asyncio.Lock()
        self._redact_poke = asyncio.Event()
        self._expiry: asyncio.Task[None] | None = None
        self._identities: CrossSigningKeys | None = None  # where the cross-signing keys live
        self._identity: xs.Identity | None = None
        self._signed_device: str | None = None  # the device signed since the last login
        self._excluded: set[tuple[str, str]] = set()  # devices given no room keys, logged
        self._unsigned: str | None = None  # why the device could not be signed, if so

    def use_cross_signing_keys(self, keys: CrossSigningKeys) -> None:
        """Where the account's cross-signing keys are kept (the bot's database)."""
        self._identities = keys

    # ------------------------------------------------------------------ lifecycle

    async def start(self, core: Core) -> None:
        self._core = core
        self._command = core.policy.prefix_for(self.name)
        self._admins = frozenset(a.user.id for a in core.policy.admins
                                 if a.user.platform == self.name)
        # Commands sent shortly before (the bot restarting, or taking over from another
        # instance) are still answered; the core drops any it answered already.
        self._started_ms = int(time.time() * 1000) - REPLAY_MS
        keys = self._store_keys()
        # Owner-only modes, and the crypto store sealed with the first key (re-sealing what
        # an older key or the library's default sealed): a key that opens nothing stops here.
        await asyncio.to_thread(self._prepare_store, keys)
        self.pending.load()
        await self._open_identity(keys)
        try:
            # Logged in and cross-signed before anything else, where the homeserver can be
            # reached now: keys the bot does not hold stop start-up here.
            self.client = await self._login()
            await self._cross_sign()
        except (ClientConnectionError, TimeoutError, OSError, LoginFailed,
                xs.CrossSigningRefused) as e:
            log.warning("matrix: not signed in yet (%s); trying again", _reason(e))
        except BaseException:
            if self.client is not None:
                await self.client.close()
                self.client = None
            raise
        self._task = asyncio.create_task(self._run(), name="matrix-sync")
        self._expiry = asyncio.create_task(self._expire(), name="matrix-fleeting")

    def _store_keys(self) -> list[str]:
        key = self.settings.store_key
        keys = store_keys(key.get_secret_value()) if key is not None else []
        if not keys:  # (the config requires one when Matrix is enabled)
            raise ConfigError(f"matrix.store_key: required when matrix.enabled = true "
                              f"(make one with 'cohortbot new-key'; set it in {KEY_VARIABLE})",
                              key="matrix.store_key")
        return keys

    def _prepare_store(self, keys: list[str]) -> None:
        restrict(self.store)
        seal(self.store, keys)
        restrict(self.store)

    async def stop(self) -> None:
        for task in (self._task, self._expiry):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=10)
        if self.client is not None:
            await self.client.close()
        # Ready to start again (an instance that leads again after losing the lead).
        self.client, self._task, self._expiry = None, None, None
        self.ready.clear()

    async def health(self) -> str | None:
        if not self.ready.is_set():
            return "not syncing with the homeserver"
        return "device not cross-signed" if self._unsigned else None

    async def _run(self) -> None:
        pause = 1.0
        first = True
        while True:
            try:
                if self.client is None:
                    self.client = await self._login()
                resp = await self._sync(first)
                if isinstance(resp, SyncResponse):
                    self.creators.note_sync(resp)
                    if pause > 1.0:
                        log.info("matrix: homeserver reachable again")
                        if self._core is not None:
                            self._core.wake()
                    pause, first = 1.0, False
                    await self._after_sync()
                    self.ready.set()
                    continue
                log.warning("matrix: sync failed: %s", getattr(resp, "status_code", resp))
            except asyncio.CancelledError:
                raise
            except (ClientConnectionError, TimeoutError, OSError) as e:
                log.warning("matrix: homeserver unreachable (%s); retrying in %.0f s",
                            type(e).__name__, pause)
            except LoginFailed as e:
                log.error("matrix: %s; retrying in %.0f s", e, pause)
            except Exception:
                ref = secrets.token_hex(4)
                log.exception("matrix: unexpected error in the sync loop ref=%s", ref,
                              extra={"ref": ref})
            self.ready.clear()
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)

    async def _sync(self, first: bool) -> Any:
        client = self._client()
        self.requests += 1
        return await client.sync(timeout=0 if first else SYNC_TIMEOUT_MS, full_state=first)

    async def _after_sync(self) -> None:
        client = self._client()
        if client.should_upload_keys:
            self.requests += 1
            await client.keys_upload()
        if self._signed_device != client.device_id:
            try:
                await self._cross_sign()
            except (xs.CrossSigningRefused, ConfigError) as e:
                if self._unsigned != _reason(e):  # once, not after every sync
                    log.error("matrix: device not cross-signed: %s", _reason(e))
                self._unsigned = _reason(e)
            else:
                self._unsigned = None
        if client.should_query_keys:
            await self._query_keys()
        if client.should_claim_keys:
            self.requests += 1
            await client.keys_claim(client.get_users_for_key_claiming())
        if client.outgoing_to_device_messages:
            self.requests += 1
            await client.send_to_device_messages()

    # ------------------------------------------------------------------ cross-signing

    async def _open_identity(self, keys: list[str]) -> None:
        """The account's cross-signing keys from the database, if it has any, re-sealed with
        the first store key if another one sealed them; a key that opens none stops here."""
        if self._identities is None or self.settings.user_id is None:
            return
        stored = await self._identities.find(self.settings.user_id)
        if stored is None:
            return
        sealer = xs.Sealer(keys)
        try:
            self._identity = sealer.open(stored.sealed_keys)
        except xs.SealError:
            raise ConfigError(
                f"matrix.store_key: none of the configured keys opens the account's "
                f"cross-signing keys in the database; set the key they were sealed with in "
                f"{KEY_VARIABLE} (while rotating: new,old)", key="matrix.store_key") from None
        if not sealer.current(stored.sealed_keys):
            await self._identities.replace(SealedCrossSigning(
                user_id=stored.user_id, master_key=stored.master_key,
                sealed_keys=sealer.seal(self._identity)), self.clock.now())

    async def _cross_sign(self) -> None:
        """Give the account cross-signing keys if it has none, and sign this device with
        them. Keys on the homeserver that the bot does not hold stop it (`ConfigError`)."""
        client = self._client()
        if self._identities is None:
            self._signed_device = client.device_id  # (no database: an adapter under test)
            return
        assert client.user_id and client.device_id
        me = client.user_id
        if client.should_upload_keys:  # the device's own keys first: they are what is signed
            self.requests += 1
            await client.keys_upload()
        self.requests += 1
        answer = await xs.query(client, [me])
        published = xs.master_of(answer, me)
        if published is None:
            new = await self._new_identity(me)
            try:
                self.requests += 1
                await xs.publish(client, new, self._password())
            except xs.PasswordNeeded:
                raise ConfigError(
                    f"matrix: the homeserver wants the password of {me} to set up its "
                    f"cross-signing keys: set matrix.password, or run 'cohortbot matrix "
                    f"reset-cross-signing' once", key="matrix.password") from None
            log.info("matrix: cross-signing keys set up for %s", me)
            self.requests += 1
            answer = await xs.query(client, [me])
        elif self._identity is None or self._identity.master_public != published:
            raise ConfigError(
                f"matrix: {me} already has cross-signing keys that this bot does not hold "
                f"(set up by another client, or with another database); to replace them, run "
                f"'cohortbot matrix reset-cross-signing' once (it asks for the account's "
                f"password)", key="matrix.user_id")
        identity = self._identity
        assert identity is not None
        device = (answer.get("device_keys") or {}).get(me, {}).get(client.device_id)
        if device is None:
            return  # the device's keys are not on the homeserver yet: after the next sync
        if not xs.verify(device, identity.self_signing_public, me):
            self.requests += 1
            await xs.sign_device(client, identity, device)
            log.info("matrix: device %s signed with the account's cross-signing key",
                     client.device_id)
        log.info("matrix: device %s is cross-signed (master key %s)", client.device_id,
                 identity.master_public)
        self._signed_device = client.device_id

    async def _new_identity(self, user_id: str) -> xs.Identity:
        """The keys to publish: the stored ones, else new ones, stored first (an instance
        that races this one to it uses whichever was stored)."""
        if self._identity is not None:
            return self._identity
        assert self._identities is not None
        identity = xs.Identity.generate()
        keys = self._store_keys()
        await self._identities.add(SealedCrossSigning(
            user_id=user_id, master_key=identity.master_public,
            sealed_keys=xs.Sealer(keys).seal(identity)), self.clock.now())
        await self._open_identity(keys)
        assert self._identity is not None
        return self._identity

    def _password(self) -> str | None:
        p = self.settings.password
        return p.get_secret_value() if p is not None else None

    async def _query_keys(self) -> None:
        """The devices of the people the bot shares encrypted rooms with (nio's device list),
        and, from the same answer, which of them their owner signed: with
        `exclude_insecure_devices`, the others get no room keys."""
        client = self._client()
        users = set(client.users_for_key_query)
        if not users:
            return
        self.requests += 1
        try:
            answer = await xs.query(client, users)
        except xs.CrossSigningRefused as e:
            log.warning("matrix: %s", e)
            return
        resp = KeysQueryResponse.from_dict(answer)
        if not isinstance(resp, KeysQueryResponse):
            log.warning("matrix: the homeserver's key query answer was not understood")
            return
        await client.receive_response(resp)
        exclude = self.settings.exclude_insecure_devices
        for (user, device_id), signed in xs.signed_by_owner(answer).items():
            device = client.device_store[user].get(device_id)
            if device is None:
                continue
            if exclude and not signed:
                client.blacklist_device(device)
                if (user, device_id) not in self._excluded:
                    self._excluded.add((user, device_id))
                    log.info("matrix: no room keys for device %s of %s: its owner has not "
                             "signed it (matrix.exclude_insecure_devices)", device_id, user)
            elif client.olm is not None and client.olm.is_device_blacklisted(device):
                client.unblacklist_device(device)
                self._excluded.discard((user, device_id))

    # ------------------------------------------------------------------ login

    async def _login(self) -> AsyncClient:
        """Reuse the saved login, else log in with the configured token or password, and save
        it: the same device (and crypto keys) across restarts."""
        s = self.settings
        assert s.homeserver is not None and s.user_id is not None  # checked by the config
        config = AsyncClientConfig(
            max_limit_exceeded=0, max_timeouts=0, request_timeout=SYNC_TIMEOUT_MS / 1000 + 20,
            encryption_enabled=True, store_sync_tokens=True,
            pickle_key=self._store_keys()[0],
        )
        saved = self._load_session()
        client = AsyncClient(s.homeserver, s.user_id, store_path=str(self.store), config=config)
        try:
            if saved is not None:
                client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
            elif s.access_token is not None:
                client.access_token = s.access_token.get_secret_value()
                self.requests += 1
                who = await client.whoami()
                if not isinstance(who, WhoamiResponse) or not who.device_id:
                    raise LoginFailed(f"the access token was refused ({_code(who)})")
                client.restore_login(who.user_id, who.device_id, client.access_token)
                self._save_session(client)
            elif s.password is not None:
                self.requests += 1
                resp = await client.login(s.password.get_secret_value(),
                                          device_name=s.device_name)
                if not isinstance(resp, LoginResponse):
                    raise LoginFailed(f"login refused ({_code(resp)})")
                self._save_session(client)
            else:
                raise LoginFailed("neither a password nor an access token is configured")
        except BaseException:
            await client.close()
            raise
        restrict(self.store)  # the files nio has just made, if it made any
        client.add_event_callback(self._on_message, RoomMessageText)
        client.add_event_callback(self._on_undecrypted, MegolmEvent)
        client.add_event_callback(self._on_invite, InviteMemberEvent)
        client.add_event_callback(self._on_member, RoomMemberEvent)
        await self._load_direct_rooms(client)
        log.info("matrix: logged in as %s (device %s)", client.user_id, client.device_id)
        return client

    def _session_file(self) -> Path:
        return self.store / "session.json"

    def _load_session(self) -> dict[str, str] | None:
        return saved_login(self.settings)

    def _save_session(self, client: AsyncClient) -> None:
        path = self._session_file()
        data = {"homeserver": self.settings.homeserver, "user_id": client.user_id,
                "device_id": client.device_id, "access_token": client.access_token}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)

    def _client(self) -> AsyncClient:
        if self.client is None:
            raise DeliveryError("not logged in yet", unreachable=True)
        return self.client

    # ------------------------------------------------------------------ inbound

    async def _on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        client = self._client()
        if event.sender == client.user_id or event.server_timestamp < self._started_ms:
            return
        text = command_text(event.source, self._command)
        if text is None:
            return
        self._spawn(self._handle(room.room_id, event.event_id, event.sender, text))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            async with self._slots:
                await work

        task = asyncio.create_task(run())
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, room_id: str, event_id: str, sender: str, text: str) -> None:
        assert self._core is not None
        direct = self._is_direct(room_id, sender)
        channel = None if direct else ChannelRef(self.name, room_id)
        inv = Invocation(user=UserRef(self.name, sender), text=text, channel=channel,
                         event_id=f"matrix:{event_id}", seen_by_channel=channel is not None)
        try:
            replies = await self._core.handle(inv)
            withdraw = any(r.withdraw for r in replies)
            if withdraw:
                # Answered: the command goes at once, before the replies are sent (in a
                # direct room too: it ties its sender to an anonymous question).
                await self._withdraw(room_id, event_id, direct=direct)
            elsewhere = False
            for reply in replies:
                elsewhere |= await self._reply(reply, room_id, None if withdraw else event_id,
                                               sender, direct=direct)
            if elsewhere and not withdraw:
                # (A withdrawn command gets no notice: it would stay beside its sender.)
                await self.send_content(room_id, render(Message.of(ANSWERED_IN_DM),
                                                        notice=True, reply_to=event_id))
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("matrix: could not answer a command ref=%s", ref, extra={"ref": ref})

    async def _reply(self, reply: Reply, room_id: str, reply_to: str | None,
                     sender: str, *, direct: bool) -> bool:
        """Send one reply to a command (`reply_to`: its event, unless it was withdrawn);
        True if it went to the sender's direct room instead of the room of the command.
        Matrix has no replies only one person sees: typed in a shared room, only public
        replies and shareable confirmations stay there."""
        if not direct and (reply.direct or (reply.private and not reply.shareable)):
            target, reply_to = await self.direct_room(sender), None
        else:
            target = room_id
        message = reply.message
        if reply.fleeting:
            minutes = int(FLEETING.total_seconds() // 60)
            message = message + Message.of(
                f"\nThis message will be removed in {minutes} minutes, so that it does not "
                "stay beside your name.")
        sent = await self.send_content(target, render(message, notice=True, reply_to=reply_to))
        if reply.fleeting:
            # Sent: from here on it stays beside the reader's name until it is redacted.
            self.pending.add(Pending(room_id=target, event_id=sent,
                                     due=self.clock.now() + FLEETING))
            self._redact_poke.set()
        return target != room_id

    async def _withdraw(self, room_id: str, event_id: str, *, direct: bool) -> None:
        if not await self._may_redact(room_id):
            log.info("matrix: cannot redact in %s (power level too low)", room_id)
            return
        # No reason in a direct room: a reason stays in the redaction event.
        reason = None if direct else "sent where everyone can see"
        await self._redact(room_id, event_id, reason=reason)

    async def _may_redact(self, room_id: str) -> bool:
        """Whether the bot may redact others' events in the room: by its power level, or as
        a creator of a room of version 12 or later (the direct rooms it creates itself)."""
        client = self._client()
        room = client.rooms.get(room_id)
        if room is None:
            return False
        if room.power_levels.can_user_redact(client.user_id):
            return True
        return creator_power(room.room_version) and client.user_id in await self.creators.of(
            client, room_id)

    async def _redact(self, room_id: str, event_id: str, *, reason: str | None = None
                      ) -> bool | None:
        """True once redacted; False when the homeserver refuses it for good; None when it
        cannot be told now (unreachable, rate limited, a server error): try again later."""
        client = self._client()
        try:
            self.requests += 1
            resp = await client.room_redact(room_id, event_id, reason=reason,
                                            tx_id=f"cohortbot.redact.{event_id}")
        except (ClientConnectionError, TimeoutError, OSError) as e:
            log.info("matrix: could not redact in %s (%s)", room_id, type(e).__name__)
            return None
        if isinstance(resp, RoomRedactResponse):
            return True
        code = _code(resp)
        log.info("matrix: redaction refused in %s: %s", room_id, code)
        return False if code in REDACT_GIVE_UP else None

    # ------------------------------------------------------------------ fleeting replies

    async def redact_due(self) -> int:
        """Redact the fleeting replies due by the clock's now; returns how many are still due
        (could not be redacted yet). Called by the platform's own timer; tests call it after
        moving a simulated clock."""
        async with self._redact_lock:
            left = 0
            for entry in self.pending.due(self.clock.now()):
                done = await self._redact(entry.room_id, entry.event_id)
                if done is None:
                    left += 1
                    continue
                if not done:
                    log.warning("matrix: gave up redacting a fleeting reply in %s",
                                entry.room_id)
                self.pending.remove(entry)
            return left

    async def _expire(self) -> None:
        """The timer: redact what is due (at start too, once logged in), then sleep until
        the next entry falls due, a new one is added, or `REDACT_CHECK` has passed."""
        while True:
            await self.ready.wait()  # logged in and synced
            self._redact_poke.clear()
            try:
                left = await self.redact_due()
            except DeliveryError:
                left = 1  # logged out meanwhile
            except Exception:
                ref = secrets.token_hex(4)
                log.exception("matrix: could not redact fleeting replies ref=%s", ref,
                              extra={"ref": ref})
                left = 1
            wait = REDACT_CHECK if left == 0 else REDACT_RETRY
            due = self.pending.next_due()
            if left == 0 and due is not None:
                wait = min(wait, max((due - self.clock.now()).total_seconds(), 0.05))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._redact_poke.wait(), timeout=wait)

    async def _on_undecrypted(self, room: MatrixRoom, event: MegolmEvent) -> None:
        if event.server_timestamp < self._started_ms:
            return
        log.warning("matrix: could not decrypt an event in %s; asking for its key", room.room_id)
        client = self._client()
        try:
            self.requests += 1
            await client.request_room_key(event)
        except LocalProtocolError:
            pass  # already requested

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        """Join a room an admin invites the bot to, or a direct room (`is_direct`) someone
        in one of its cohorts opens with it; decline every other invitation."""
        client = self._client()
        if event.state_key != client.user_id or event.membership != "invite":
            return
        direct = bool(event.content.get("is_direct"))
        if not await self._may_join(event.sender, direct=direct):
            log.info("matrix: declined an invitation to %s from %s (%s)", room.room_id,
                     event.sender, "not in any cohort" if direct else "not an admin")
            self.requests += 1
            await client.room_leave(room.room_id)
            return
        self.requests += 1
        joined = await client.join(room.room_id)
        if isinstance(joined, JoinError):
            log.warning("matrix: could not join %s: %s", room.room_id, _code(joined))
            return
        log.info("matrix: joined %s on an invitation from %s%s", room.room_id, event.sender,
                 " (a direct room)" if direct else "")
        if direct:
            await self._remember_direct(event.sender, room.room_id)

    async def _may_join(self, sender: str, *, direct: bool) -> bool:
        if sender in self._admins:
            return True
        if not direct or self._core is None:
            return False
        try:
            return await self._core.knows(UserRef(self.name, sender), self.name)
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("matrix: could not look up who invited the bot ref=%s", ref,
                          extra={"ref": ref})
            return False

    async def _on_member(self, room: MatrixRoom, event: RoomMemberEvent) -> None:
        """Someone joined, left, was kicked or banned: a third person in a direct room ends
        it; in any other room, the core learns who left it or came back."""
        client = self._client()
        user = event.state_key
        if user == client.user_id or event.server_timestamp < self._started_ms:
            return
        partner = self._partner.get(room.room_id)
        if partner is not None:
            if user != partner and event.membership in ("join", "invite"):
                await self._no_longer_direct(room.room_id, partner)
            return
        if event.membership in ("leave", "ban"):
            present = False
        elif event.membership == "join" and event.prev_membership != "join":
            present = True
        else:
            return  # an invite, or a change of name or avatar
        assert self._core is not None
        try:
            await self._core.moved(UserRef(self.name, user), ChannelRef(self.name, room.room_id),
                                   self.name, present=present)
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("matrix: could not record a membership change ref=%s", ref,
                          extra={"ref": ref})

    # ------------------------------------------------------------------ direct rooms

    def _is_direct(self, room_id: str, sender: str) -> bool:
        """Whether a command from `sender` in `room_id` was sent in a direct room: one kept as
        direct with them, whose only members (joined or invited) are the bot and them."""
        if self._partner.get(room_id) != sender:
            return False
        client = self._client()
        room = client.rooms.get(room_id)
        return room is not None and set(room.users) == {client.user_id, sender}

    async def _no_longer_direct(self, room_id: str, partner: str) -> None:
        """Someone else is in the direct room with `partner`: it is a room like any other
        from now on, and `partner` is told so in a new direct room."""
        del self._partner[room_id]
        rooms = self._direct.get(partner, [])
        if room_id in rooms:
            rooms.remove(room_id)
        log.info("matrix: %s is no longer a direct room (a third person is in it)", room_id)
        await self._save_direct()

        async def tell() -> None:
            try:
                dm = await self.direct_room(partner)
                await self.send_content(dm, render(Message.of(NO_LONGER_DIRECT)))
            except Exception:
                ref = secrets.token_hex(4)
                log.exception("matrix: could not tell about a direct room ref=%s", ref,
                              extra={"ref": ref})

        self._spawn(tell())  # (not in the sync's callback: a new room waits for the sync)

    async def _load_direct_rooms(self, client: AsyncClient) -> None:
        self.requests += 1
        resp = await client.list_direct_rooms()
        if isinstance(resp, DirectRoomsResponse):
            for user_id, rooms in resp.rooms.items():
                self._direct[user_id] = list(rooms)
                for room_id in rooms:
                    self._partner[room_id] = user_id

    async def direct_room(self, user_id: str) -> str:
        """The direct room with `user_id`, created (and recorded in `m.direct`) if need be:
        the latest one whose only members (joined or invited) are the bot and them."""
        async with self._dm_lock:
            client = self._client()
            for room_id in reversed(self._direct.get(user_id, [])):
                room = client.rooms.get(room_id)
                if room is not None and set(room.users) == {client.user_id, user_id}:
                    return room_id
            self.requests += 1
            resp = await client.room_create(
                # private_chat: the member gets no power (trusted_private_chat would give
                # them the creator's), and only the bot may invite anyone else.
                is_direct=True, invite=[user_id], preset=RoomPreset.private_chat,
                power_level_override={"invite": 100},
                initial_state=[{"type": "m.room.encryption", "state_key": "",
                                "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
            )
            if not isinstance(resp, RoomCreateResponse):
                raise _delivery_error(resp, f"could not open a direct room with {user_id}")
            await self._remember_direct(user_id, resp.room_id)
            # The sync can show a new room before its invite: the room key of the first
            # message must go to the invitee's devices, so wait until the bot sees them there.
            await self._wait_for_room(resp.room_id, member=user_id)
            return str(resp.room_id)

    async def _remember_direct(self, user_id: str, room_id: str) -> None:
        rooms = self._direct.setdefault(user_id, [])
        if room_id not in rooms:
            rooms.append(room_id)
        self._partner[room_id] = user_id
        await self._save_direct()

    async def _save_direct(self) -> None:
        """`m.direct`: every direct room with each person."""
        client = self._client()
        mapping = {user: list(rooms) for user, rooms in self._direct.items() if rooms}
        path = Api._build_path(["user", client.user_id, "account_data", "m.direct"])
        self.requests += 1
        await client.send("PUT", path, json.dumps(mapping),
                          headers={"Authorization": f"Bearer {client.access_token}",
                                   "Content-Type": "application/json"})

    async def _wait_for_room(self, room_id: str, *, member: str | None = None) -> None:
        """Until the sync has shown the bot the room (nio sends only into rooms it knows),
        and `member` in it, invited or joined."""
        client = self._client()
        deadline = time.monotonic() + ROOM_WAIT

        def shown() -> bool:
            room = client.rooms.get(room_id)
            return room is not None and (member is None or member in room.users)

        while not shown():
            if time.monotonic() > deadline:
                raise DeliveryError(f"room {room_id} did not appear in the sync", retry_after=5)
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout=max(deadline -
                                                                      time.monotonic(), 0.1))
            except TimeoutError:
                continue

    # ------------------------------------------------------------------ outbound

    async def _know_devices(self, room_id: str) -> None:
        """Fetch the device keys of anyone in an encrypted room whose devices the bot does
        not know yet (someone just invited), so the room key reaches them with the message."""
        client = self._client()
        room = client.rooms.get(room_id)
        if room is None or not room.encrypted or client.olm is None:
            return
        known = {user for user, devices in client.device_store.items() if devices}
        unknown = set(room.users) - known - {client.user_id}
        if not unknown:
            return
        client.olm.users_for_key_query.update(unknown)
        await self._query_keys()

    async def find_sent(self, room_id: str, outbox_id: int) -> str | None:
        """The id of our own recent event in `room_id` that carries `outbox_id`, if any: an
        earlier try that reached the homeserver (from this device or another instance's)."""
        client = self._client()
        try:
            self.requests += 1
            resp = await client.room_messages(
                room_id, limit=LOOKBACK_EVENTS,
                message_filter={"senders": [client.user_id], "types": ["m.room.message",
                                                                      "m.room.encrypted"]})
        except (ClientConnectionError, TimeoutError, OSError) as e:
            raise DeliveryError(f"homeserver unreachable ({type(e).__name__})",
                                unreachable=True) from None
        if not isinstance(resp, RoomMessagesResponse):
            # Cannot tell: sending again could make a second copy, so try later.
            raise DeliveryError(f"history of {room_id} unavailable: {_code(resp)}",
                                retry_after=30)
        for event in resp.chunk:
            content = (getattr(event, "source", None) or {}).get("content") or {}
            if content.get(OUTBOX_MARK) == outbox_id:
                return str(event.event_id)
        return None

    async def send_content(self, room_id: str, content: dict[str, Any],
                           tx_id: str | None = None) -> str:
        """Send one event, waiting out rate limits for a while; returns its event id."""
        client = self._client()
        if room_id not in client.rooms:
            await self._wait_for_room(room_id)
        await self._know_devices(room_id)
        waited = 0.0
        while True:
            async with self._send_lock:  # after a 429, every send waits it out
                delay = self._not_before - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                    waited += delay
            try:
                self.requests += 1
                resp = await client.room_send(room_id, "m.room.message", content,
                                              tx_id=tx_id, ignore_unverified_devices=True)
            except (ClientConnectionError, TimeoutError, OSError) as e:
                raise DeliveryError(f"homeserver unreachable ({type(e).__name__})",
                                    unreachable=True) from None
            except LocalProtocolError as e:
                raise DeliveryError(str(e), retry_after=5) from None
            if isinstance(resp, RoomSendResponse):
                return str(resp.event_id)
            if _code(resp) == "M_LIMIT_EXCEEDED":
                wait = (getattr(resp, "retry_after_ms", None) or 1000) / 1000
                self._not_before = time.monotonic() + wait
                metrics.rate_limited(self.name, wait)
                if waited + wait <= RATE_LIMIT_BUDGET:
                    log.info("matrix: rate limited; sending again in %.1f s", wait)
                    continue
            raise _delivery_error(resp, f"could not send to {room_id}")


class WallClock:
    """The real time, for the adapter built without a clock of its own."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def _reason(e: BaseException) -> str:
    """One line about a failure, no secret in it."""
    if isinstance(e, (xs.CrossSigningRefused, ConfigError, LoginFailed)):
        return str(e)
    return type(e).__name__


class LoginFailed(Exception):
    pass


def _is_zone(name: str) -> bool:
    """Profiles are user text: only a real IANA zone name counts."""
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return True


def _code(resp: object) -> str:
    return str(getattr(resp, "status_code", None) or getattr(resp, "message", None) or resp)


def _delivery_error(resp: object, what: str) -> DeliveryError:
    code = _code(resp)
    if code == "M_LIMIT_EXCEEDED":
        wait = (getattr(resp, "retry_after_ms", None) or 1000) / 1000
        return DeliveryError(f"{what}: rate limited", retry_after=wait, refused=True)
    permanent = code in ("M_FORBIDDEN", "M_NOT_FOUND", "M_UNKNOWN", "M_BAD_JSON",
                         "M_TOO_LARGE")
    return DeliveryError(f"{what}: {code}", permanent=permanent)


class MatrixMessenger:
    """Delivers outbox messages: to a room, or to a member's direct room."""

    platform = "matrix"

    def __init__(self, platform: MatrixPlatform) -> None:
        self._p = platform

    async def send(self, out: Outgoing) -> str:
        room_id = await self._p.direct_room(out.target) if out.direct else out.target
        content = {**render(out.message, ping=True), OUTBOX_MARK: out.outbox_id}
        if out.attempt > 1:
            # An earlier try may have reached the homeserver unbeknown to us (a crash, a lost
            # answer), maybe from another instance, whose device the transaction id does not
            # cover: look before sending again.
            earlier = await self._p.find_sent(room_id, out.outbox_id)
            if earlier is not None:
                log.info("matrix: message %s was sent before (found in the room)", out.key)
                return earlier
        # The outbox id is the transaction id: the homeserver drops a resend from this device.
        return await self._p.send_content(room_id, content, tx_id=f"cohortbot.{out.outbox_id}")

    async def edit(self, out: Outgoing, message_id: str) -> None:
        """An `m.replace` edit of the bot's event `message_id`. It pings nobody: the
        original did already, where it had to."""
        room_id = await self._p.direct_room(out.target) if out.direct else out.target
        new = render(out.message)
        new["m.mentions"] = {}
        content = {
            **new, "body": "* " + new["body"], "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": message_id},
        }
        if "formatted_body" in new:
            content["formatted_body"] = "* " + new["formatted_body"]
        await self._p.send_content(room_id, content, tx_id=f"cohortbot.{out.outbox_id}")

    async def whisper(self, user: UserRef, tenant: str | None, place: ChannelRef | None,
                      message: Message) -> None:
        """A message in `user`'s direct room (encrypted where the room is), sent at once:
        no outbox row and no transaction id that could be traced back to a question."""
        room_id = await self._p.direct_room(user.id)
        await self._p.send_content(room_id, render(message))

    async def delete(self, out: Outgoing, message_id: str) -> None:
        """Redacts the bot's event `message_id` (a sender may always redact its own)."""
        room_id = await self._p.direct_room(out.target) if out.direct else out.target
        done = await self._p._redact(room_id, message_id)
        if done is None:
            raise DeliveryError("redaction not possible just now", retry_after=30)
        if not done:
            raise DeliveryError("redaction refused", permanent=True)


class MatrixDirectory:
    """Time zones from the profile field `m.tz`; admin rights from room power levels."""

    def __init__(self, platform: MatrixPlatform) -> None:
        self._p = platform
        self._zones: dict[str, tuple[float, str | None]] = {}

    async def timezone(self, user: UserRef, tenant: str) -> str | None:
        cached = self._zones.get(user.id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        zone: str | None = None
        try:
            client = self._p._client()
            self._p.requests += 1
            resp = await client.get_profile(user.id)
            if isinstance(resp, ProfileGetResponse):
                for field in TZ_FIELDS:
                    value = resp.other_info.get(field)
                    if isinstance(value, str) and _is_zone(value):
                        zone = value
                        break
        except (DeliveryError, ClientConnectionError, TimeoutError, OSError):
            return cached[1] if cached else None
        self._zones[user.id] = (time.monotonic() + TZ_TTL, zone)
        return zone

    async def is_admin(self, user: UserRef, place: ChannelRef | None, tenant: str) -> bool:
        # A power level rules its own room and nothing else: over no room, nobody is.
        level = self._p.settings.admin_power_level
        if place is None or place.platform != self._p.name or level <= 0:
            return False
        client = self._p.client
        room = client.rooms.get(place.id) if client is not None else None
        if client is None or room is None:
            return False
        if creator_power(room.room_version) and user.id in await self._p.creators.of(
                client, place.id):
            return True
        return bool(room.power_levels.get_user_level(user.id) >= level)

