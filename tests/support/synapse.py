"""A real Synapse homeserver for tests.

Synapse runs from its own virtualenv (default `<repo>/.ci/synapse-venv`, or
`$COHORTBOT_SYNAPSE_VENV`), which is created and filled on first use. Each `SynapseServer`
gets a hand-written config in its own data directory: one plain-HTTP client listener on
127.0.0.1, SQLite, no federation listener and an empty federation whitelist, so nothing ever
leaves the machine.

    server = SynapseServer(tmp_path, rate_limits="relaxed")
    server.start()
    alice = server.register_user()
    ...
    server.restart()  # same port, same data
    server.stop()

Every started server is also stopped at interpreter exit, and on Linux the homeserver is
killed by the kernel if the process that started it dies first.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from tests.support.children import die_with_parent
from tests.support.installs import clear, tail

log = logging.getLogger(__name__)

SYNAPSE_VERSION = "1.163.2"
SYNAPSE_REQUIREMENT = f"matrix-synapse=={SYNAPSE_VERSION}"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".ci" / "synapse-venv"
VENV_ENV_VAR = "COHORTBOT_SYNAPSE_VENV"

_MARKER = ".cohortbot-synapse-installed"
_LOCK = ".install.lock"
_INSTALL_LOG = "install.log"
_INSTALL_TIMEOUT = 900.0

RateLimits = Literal["relaxed", "default"]

# Every client-facing limiter Synapse has, opened wide. Unknown keys would be ignored by
# Synapse, so the names are checked against synapse/config/ratelimiting.py of the pin.
_WIDE = {"per_second": 10_000, "burst_count": 100_000}
RELAXED_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _WIDE,
    "rc_registration": _WIDE,
    "rc_registration_token_validity": _WIDE,
    "rc_login": {"address": _WIDE, "account": _WIDE, "failed_attempts": _WIDE},
    "rc_admin_redaction": _WIDE,
    "rc_joins": {"local": _WIDE, "remote": _WIDE},
    "rc_joins_per_room": _WIDE,
    "rc_key_requests": _WIDE,
    "rc_3pid_validation": _WIDE,
    "rc_invites": {"per_room": _WIDE, "per_user": _WIDE, "per_issuer": _WIDE},
    "rc_third_party_invite": _WIDE,
    "rc_media_create": _WIDE,
    "rc_presence": {"per_user": _WIDE},
    "rc_delayed_event_mgmt": _WIDE,
    "rc_room_creation": _WIDE,
    "rc_reports": _WIDE,
    "rc_user_directory": _WIDE,
    "rc_profile": _WIDE,
}


class SynapseHarnessError(RuntimeError):
    """Synapse could not be installed, started, stopped or talked to."""


@dataclass(frozen=True)
class RegisteredUser:
    user_id: str
    password: str
    access_token: str
    device_id: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


@dataclass(frozen=True)
class SynapseInstall:
    venv_dir: Path
    python: Path
    version: str
    installed_now: bool
    seconds: float


# --------------------------------------------------------------------------- install


def synapse_venv_dir() -> Path:
    """The virtualenv Synapse runs from: `$COHORTBOT_SYNAPSE_VENV` or `.ci/synapse-venv`."""
    override = os.environ.get(VENV_ENV_VAR)
    return Path(override).expanduser().resolve() if override else DEFAULT_VENV


def _venv_python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def _installed(venv_dir: Path, requirement: str) -> bool:
    marker = venv_dir / _MARKER
    try:
        recorded = marker.read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return recorded == requirement and _venv_python(venv_dir).exists()


def _clear_venv_dir(venv_dir: Path) -> None:
    """Empty a half-made or outdated venv, keeping the lock file we are holding."""
    clear(venv_dir, keep=_LOCK,
          ours=(venv_dir / "pyvenv.cfg").exists() or (venv_dir / _INSTALL_LOG).exists(),
          refusal=SynapseHarnessError(
              f"{venv_dir} is not empty and is not a virtualenv; refusing to clear it "
              f"(point {VENV_ENV_VAR} somewhere else)"))


def ensure_synapse_installed(
    venv_dir: Path | None = None, requirement: str = SYNAPSE_REQUIREMENT
) -> SynapseInstall:
    """Create the Synapse virtualenv unless a finished install of `requirement` is there.

    Safe when several processes race: the work happens under an exclusive `flock`, and the
    marker that says "done" is written only after pip succeeded.
    """
    venv_dir = venv_dir or synapse_venv_dir()
    version = requirement.split("==", 1)[-1]
    if _installed(venv_dir, requirement):
        return SynapseInstall(venv_dir, _venv_python(venv_dir), version, False, 0.0)

    venv_dir.mkdir(parents=True, exist_ok=True)
    with open(venv_dir / _LOCK, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _installed(venv_dir, requirement):  # another process finished meanwhile
                return SynapseInstall(venv_dir, _venv_python(venv_dir), version, False, 0.0)
            started = time.monotonic()
            _clear_venv_dir(venv_dir)
            install_log = venv_dir / _INSTALL_LOG
            steps = [
                [sys.executable, "-m", "venv", str(venv_dir)],
                [
                    str(_venv_python(venv_dir)),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    requirement,
                ],
                [str(_venv_python(venv_dir)), "-c", "import synapse.app.homeserver"],
            ]
            log.warning("installing %s into %s", requirement, venv_dir)
            for cmd in steps:
                with open(install_log, "ab") as out:
                    out.write(("+ " + " ".join(cmd) + "\n").encode())
                    out.flush()
                    try:
                        proc = subprocess.run(
                            cmd,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            timeout=_INSTALL_TIMEOUT,
                            check=False,
                        )
                    except subprocess.TimeoutExpired:
                        raise SynapseHarnessError(
                            f"installing Synapse timed out after {_INSTALL_TIMEOUT:.0f}s: "
                            f"{' '.join(cmd)}\n{tail(install_log)}"
                        ) from None
                if proc.returncode != 0:
                    raise SynapseHarnessError(
                        f"installing Synapse failed (exit {proc.returncode}): "
                        f"{' '.join(cmd)}\n--- {install_log} ---\n{tail(install_log)}"
                    )
            marker = venv_dir / _MARKER
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(requirement + "\n", encoding="utf-8")
            tmp.replace(marker)
            seconds = time.monotonic() - started
            log.warning("installed %s in %.1fs", requirement, seconds)
            return SynapseInstall(venv_dir, _venv_python(venv_dir), version, True, seconds)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (Synapse cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LIVE: set[SynapseServer] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop(timeout=5.0)


atexit.register(_stop_all_at_exit)



# --------------------------------------------------------------------------- server


class SynapseServer:
    """One Synapse homeserver with its data in `data_dir`.

    `rate_limits="relaxed"` opens every client rate limiter wide so tests never see 429;
    `"default"` leaves Synapse's own limits in place.
    """

    def __init__(
        self,
        data_dir: Path | str,
        rate_limits: RateLimits = "relaxed",
        *,
        server_name: str = "localhost",
        venv_dir: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        if rate_limits not in ("relaxed", "default"):
            raise ValueError(f"rate_limits must be 'relaxed' or 'default', not {rate_limits!r}")
        self.data_dir = Path(data_dir).resolve()
        self.rate_limits: RateLimits = rate_limits
        self.server_name = server_name
        self.venv_dir = venv_dir
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self.registration_shared_secret = secrets.token_hex(32)
        self._macaroon_secret = secrets.token_hex(32)
        self._form_secret = secrets.token_hex(32)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdio: IO[bytes] | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.install: SynapseInstall | None = None
        self.last_start_seconds: float | None = None

    # -- paths and addresses

    @property
    def config_path(self) -> Path:
        return self.data_dir / "homeserver.yaml"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "homeserver.log"

    @property
    def stdio_path(self) -> Path:
        return self.data_dir / "stdio.log"

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise SynapseHarnessError("the server has not been started yet")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def __repr__(self) -> str:
        return (
            f"SynapseServer({str(self.data_dir)!r}, rate_limits={self.rate_limits!r}, "
            f"port={self.port}, running={self.running})"
        )

    # -- config

    def _write_signing_key(self) -> Path:
        # The key file holds "<alg> <version> <unpadded base64 of the 32-byte ed25519 seed>";
        # any 32 random bytes are a valid seed, so no tool (and no network) is needed.
        path = self.data_dir / f"{self.server_name}.signing.key"
        if not path.exists():
            seed = base64.b64encode(os.urandom(32)).decode("ascii").rstrip("=")
            path.write_text(f"ed25519 a_{secrets.token_hex(2)} {seed}\n", encoding="ascii")
        return path

    def _write_log_config(self) -> Path:
        path = self.data_dir / "log.config"
        config = {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return path

    def homeserver_config(self) -> dict[str, Any]:
        """The homeserver config as a dict (written out as JSON, which is valid YAML)."""
        assert self.port is not None
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "pid_file": str(self.data_dir / "homeserver.pid"),
            "public_baseurl": f"{self.base_url}/",
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {
                "name": "sqlite3",
                "args": {"database": str(self.data_dir / "homeserver.db")},
            },
            "log_config": str(self._write_log_config()),
            "media_store_path": str(self.data_dir / "media_store"),
            "signing_key_path": str(self._write_signing_key()),
            "registration_shared_secret": self.registration_shared_secret,
            "macaroon_secret_key": self._macaroon_secret,
            "form_secret": self._form_secret,
            "enable_registration": False,
            # bcrypt's minimum cost: registering a user takes milliseconds instead of ~0.3s.
            "bcrypt_rounds": 4,
            "report_stats": False,
            "enable_metrics": False,
            "url_preview_enabled": False,
            # Nothing leaves the machine: no notary servers, no federation destinations.
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "allow_public_rooms_over_federation": False,
        }
        if self.rate_limits == "relaxed":
            config.update(RELAXED_RATE_LIMITS)
        return config

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.homeserver_config(), indent=2)
        self.config_path.write_text(
            "# Written by tests/support/synapse.py (JSON is valid YAML).\n" + text + "\n",
            encoding="utf-8",
        )

    # -- lifecycle

    def start(self) -> None:
        """Install Synapse if needed, start it and wait until it answers (bounded)."""
        if self.running:
            return
        self.install = ensure_synapse_installed(self.venv_dir)
        first_start = self.port is None
        attempts = 3 if first_start else 1
        for attempt in range(1, attempts + 1):
            if first_start:
                self.port = free_port()
            try:
                self._start_once()
                return
            except SynapseHarnessError:
                port_taken = "Address already in use" in tail(self.log_path, 200) + tail(
                    self.stdio_path, 200
                )
                if not (port_taken and attempt < attempts):
                    raise
                log.warning("port %s was taken before Synapse bound it; retrying", self.port)

    def _start_once(self) -> None:
        assert self.install is not None
        self._write_config()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        }
        env["PYTHONUNBUFFERED"] = "1"
        self._stdio = open(self.stdio_path, "ab")  # noqa: SIM115 - closed in stop()
        self._stdio.write(f"--- starting on port {self.port}\n".encode())
        self._stdio.flush()
        main_thread = threading.current_thread() is threading.main_thread()
        parent = os.getpid()
        started = time.monotonic()
        self._proc = subprocess.Popen(
            [str(self.install.python), "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.data_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._stdio,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() gets everything
            # PDEATHSIG fires when the starting *thread* ends, so only from the main thread.
            preexec_fn=(lambda: die_with_parent(parent)) if main_thread else None,
        )
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop(timeout=5.0)
            raise
        self.last_start_seconds = time.monotonic() - started

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout
        last_error = "no answer yet"
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise SynapseHarnessError(
                    f"Synapse exited with code {code} while starting on port {self.port}.\n"
                    + self._diagnostics()
                )
            try:
                status, _ = self.request("GET", "/_matrix/client/versions", timeout=2.0)
                if status == 200:
                    return
                last_error = f"HTTP {status}"
            except (OSError, urllib.error.URLError) as exc:
                last_error = repr(exc)
            if time.monotonic() > deadline:
                raise SynapseHarnessError(
                    f"Synapse did not answer /_matrix/client/versions on {self.base_url} "
                    f"within {self.startup_timeout:.0f}s (last: {last_error}).\n"
                    + self._diagnostics()
                )
            time.sleep(0.05)

    def _diagnostics(self) -> str:
        return (
            f"--- {self.log_path} (tail) ---\n{tail(self.log_path)}\n"
            f"--- {self.stdio_path} (tail) ---\n{tail(self.stdio_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait up to `timeout`, then SIGKILL it."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                self._signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log.warning("Synapse (pid %s) ignored SIGTERM; killing it", proc.pid)
            # Always sweep the group: nothing Synapse started may outlive it.
            self._signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5.0)
            self._proc = None
        if self._stdio is not None:
            self._stdio.close()
            self._stdio = None
        with _LIVE_LOCK:
            _LIVE.discard(self)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # start_new_session: the group id is the pid

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        if self.port is None:
            raise SynapseHarnessError("restart() before start()")
        self.stop()
        self.start()

    def __enter__(self) -> SynapseServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        access_token: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, Any]]:
        """One HTTP request to this server; returns (status, JSON body). Never proxied."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if access_token is not None:
            req.add_header("Authorization", f"Bearer {access_token}")
        try:
            with self._opener.open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {"raw": raw.decode("utf-8", "replace")}
        return status, payload if isinstance(payload, dict) else {"value": payload}

    def register_user(
        self, localpart: str | None = None, password: str | None = None, admin: bool = False
    ) -> RegisteredUser:
        """Create a user with the shared-secret admin API and return its login."""
        localpart = localpart or f"u{secrets.token_hex(6)}"
        password = password or secrets.token_urlsafe(16)
        status, nonce_body = self.request("GET", "/_synapse/admin/v1/register")
        if status != 200 or "nonce" not in nonce_body:
            raise SynapseHarnessError(f"registration nonce: HTTP {status} {nonce_body}")
        nonce = nonce_body["nonce"]
        mac = hmac.new(self.registration_shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join(
                [
                    nonce.encode(),
                    localpart.encode(),
                    password.encode(),
                    b"admin" if admin else b"notadmin",
                ]
            )
        )
        status, body = self.request(
            "POST",
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        if status != 200:
            raise SynapseHarnessError(f"registering {localpart!r}: HTTP {status} {body}")
        return RegisteredUser(
            user_id=body["user_id"],
            password=password,
            access_token=body["access_token"],
            device_id=body["device_id"],
        )


@contextlib.contextmanager
def running_synapse(
    data_dir: Path | str, rate_limits: RateLimits = "relaxed", **kwargs: Any
) -> Iterator[SynapseServer]:
    """`with running_synapse(tmp) as server:` starts a server and always stops it."""
    server = SynapseServer(data_dir, rate_limits, **kwargs)
    try:
        server.start()
        yield server
    finally:
        server.stop()
