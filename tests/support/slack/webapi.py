"""A stateful fake of the Slack Web API, response_url endpoints and Socket Mode, on loopback.

Point the real clients at it::

    async with FakeSlack() as slack:
        seed_workspace(slack)
        client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)

or, to serve another process, ``slack = FakeSlack().start_in_thread()`` … ``slack.stop_thread()``.

Requests are answered the way Slack answers them: ``POST``/``GET /api/<method>`` with the
arguments in the query string, a form body or a JSON body; the token in ``Authorization:
Bearer`` or (not for JSON bodies) a ``token`` argument; logical errors as HTTP 200 with
``{"ok": false, "error": ...}``; rate limits as HTTP 429 with an integer ``Retry-After``.
All state sits behind one lock, so the accessors are safe to call from any thread.

The fake can hold several workspaces (``add_team``). Every user and conversation belongs to
one, and a token sees only its own workspace's: another workspace's user is
``user_not_found``, its conversations ``channel_not_found``, as on Slack.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import math
import random
import secrets
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from .model import (
    DEFAULT_APP_SCOPES,
    DEFAULT_BOT_SCOPES,
    JSON,
    MAX_BLOCKS_MESSAGE,
    MAX_TEXT,
    SLACKBOT,
    Channel,
    ResponseUrl,
    SlackError,
    Token,
    Trigger,
    User,
    inspect_message,
    invalid_arguments,
    parse_json_arg,
    public_message,
    rich_text_blocks,
    truthy,
    validate_blocks,
    validate_metadata,
    validate_view,
)
from .signing import SlackRequestBuilder
from .socket_mode import SocketDelivery, SocketModeHub

T = TypeVar("T")

_HTML_ERROR = ("<html><head><title>{status}</title></head><body><h1>{status}</h1>"
               "<p>Slack is having trouble right now.</p></body></html>")


@dataclass
class Call:
    """One request to ``/api/<method>`` as the fake saw and answered it."""

    method: str
    http_method: str
    params: JSON
    token: str | None
    content_type: str
    time: float  # wall clock when received
    elapsed: float  # seconds until answered, latency and hangs included
    status: int
    ok: bool
    error: str | None
    response: JSON | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ResponseUrlPost:
    """One POST to a ``response_url`` handed out with a command or interaction."""

    id: str
    url: str
    body: JSON
    channel_id: str | None
    user_id: str | None
    time: float
    status: int
    error: str | None = None


@dataclass
class _Fault:
    kind: str  # "fail", "ratelimit" or "hang"
    remaining: int
    status: int = 500
    error: str | None = None
    retry_after: int = 1
    seconds: float = 0.0
    process: bool = True


@dataclass
class _Bucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Spend one token; 0.0 on success, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class _Ctx:
    method: str
    params: JSON
    token: Token | None
    json_body: bool
    warnings: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def str_param(self, name: str) -> str | None:
        value = self.params.get(name)
        if value is None or value == "":
            return None
        return str(value)

    @property
    def actor(self) -> str:
        assert self.token is not None and self.token.user_id is not None
        return self.token.user_id


_ScopeRule = str | Callable[["FakeSlack", _Ctx], str | None] | None


@dataclass(frozen=True)
class _Method:
    handler: str
    token_kinds: tuple[str, ...] = ("bot", "user")
    scope: _ScopeRule = None


def _conv_scope(suffix: str) -> Callable[[FakeSlack, _Ctx], str | None]:
    def rule(fake: FakeSlack, ctx: _Ctx) -> str | None:
        ref = ctx.str_param("channel")
        ch = fake._lookup_channel(fake._team_of(ctx), ref) if ref else None
        return f"{ch.kind}:{suffix}" if ch else None
    return rule


def _open_scope(fake: FakeSlack, ctx: _Ctx) -> str | None:
    users = [u for u in str(ctx.params.get("users") or "").split(",") if u.strip()]
    return "mpim:write" if len(users) > 1 else "im:write"


METHODS: dict[str, _Method] = {
    "api.test": _Method("api_test", token_kinds=()),
    "auth.test": _Method("auth_test"),
    "team.info": _Method("team_info", scope="team:read"),
    "users.info": _Method("users_info", scope="users:read"),
    "users.list": _Method("users_list", scope="users:read"),
    "conversations.info": _Method("conversations_info", scope=_conv_scope("read")),
    "conversations.members": _Method("conversations_members", scope=_conv_scope("read")),
    "conversations.open": _Method("conversations_open", scope=_open_scope),
    "conversations.join": _Method("conversations_join", scope="channels:join"),
    "conversations.history": _Method("conversations_history", scope=_conv_scope("history")),
    "conversations.replies": _Method("conversations_replies", scope=_conv_scope("history")),
    "chat.postMessage": _Method("chat_post_message", scope="chat:write"),
    "chat.postEphemeral": _Method("chat_post_ephemeral", scope="chat:write"),
    "chat.update": _Method("chat_update", scope="chat:write"),
    "chat.delete": _Method("chat_delete", scope="chat:write"),
    "views.open": _Method("views_open"),
    "views.push": _Method("views_push"),
    "views.update": _Method("views_update"),
    "views.publish": _Method("views_publish"),
    "apps.connections.open": _Method("apps_connections_open", token_kinds=("app",),
                                     scope="connections:write"),
    "oauth.v2.access": _Method("oauth_v2_access", token_kinds=()),
}


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"next_offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        kind, _, value = base64.b64decode(cursor.encode()).decode().partition(":")
        if kind != "next_offset":
            raise ValueError(kind)
        return int(value)
    except ValueError:
        raise SlackError("invalid_cursor") from None


def _limit(ctx: _Ctx, default: int, maximum: int) -> int:
    raw = ctx.params.get("limit")
    if raw in (None, "", 0, "0"):
        return default
    try:
        return max(1, min(int(raw), maximum))
    except (TypeError, ValueError):
        raise invalid_arguments("limit must be an integer") from None


def _ts_float(value: Any, error: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SlackError(error) from None


class FakeSlack:
    """The fake platform: its own workspace (``team_id``) and any others added with
    ``add_team``, one app, its tokens, and the endpoints Slack serves."""

    def __init__(
        self,
        *,
        team_id: str = "T0COHORT1",
        team_name: str = "Cohort Test",
        team_domain: str = "cohort-test",
        app_id: str = "A0COHORT1",
        signing_secret: str = "8f742231b10e8888abcd99yyyzzz85a5",
        verification_token: str = "verificationtokenfake",
        latency: float | tuple[float, float] = (0.02, 0.06),
        seed: int = 0,
        post_rate: float | None = 1.0,
        post_burst: int = 3,
        trigger_ttl: float = 3.0,
        response_url_ttl: float = 30 * 60,
        response_url_uses: int = 5,
        host: str = "127.0.0.1",
    ) -> None:
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.app_id = app_id
        self.signing_secret = signing_secret
        self.verification_token = verification_token
        self.trigger_ttl = trigger_ttl
        self.response_url_ttl = response_url_ttl
        self.response_url_uses = response_url_uses
        self.host = host

        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._latency: tuple[float, float] = (0.0, 0.0)
        self.set_latency(latency)
        self._post_rate = post_rate
        self._post_burst = post_burst
        self._post_buckets: dict[str, _Bucket] = {}
        self._method_limits: dict[str, tuple[float, float]] = {}
        self._method_buckets: dict[tuple[str, str], _Bucket] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._hanging = 0
        self._ids = itertools.count(1)
        self._last_ts = 0.0

        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.tokens: dict[str, Token] = {}
        self.views: dict[str, JSON] = {}
        self._modal_stacks: dict[str, list[str]] = {}
        self._home_views: dict[str, str] = {}
        self._triggers: dict[str, Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._tickets: set[str] = set()
        self._calls: list[Call] = []
        self._ephemerals: list[JSON] = []
        self._response_posts: list[ResponseUrlPost] = []
        self._post_order: list[tuple[str, str]] = []  # (channel, ts) of app-posted messages
        # OAuth: the app's credentials, other workspaces, and codes waiting to be exchanged.
        self.oauth_client: tuple[str, str] | None = None
        self.teams: dict[str, tuple[str, str]] = {team_id: (team_name, team_domain)}
        self._oauth_codes: dict[str, JSON] = {}

        self.add_user(SLACKBOT, "slackbot", real_name="Slackbot", tz="America/Los_Angeles")

        self.socket = SocketModeHub(self)
        self._app = web.Application()
        self._app.add_routes([
            web.route("*", "/api/{method}", self._handle_api),
            web.post("/response/{id}", self._handle_response_url),
            web.get("/link/", self.socket.handle),
            web.get("/link", self.socket.handle),
        ])
        self._app.on_shutdown.append(self._on_shutdown)
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeSlack:
        """Serve on ``host``, port 0 (an ephemeral port), in the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self._app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self, timeout: float = 10.0) -> FakeSlack:
        """Serve from a background thread with its own event loop (for other processes)."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as e:
                failure.append(e)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-slack", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError("fake Slack did not start")
        if failure:
            raise failure[0]
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.socket.close_all()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeSlack is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What to pass as ``base_url`` to slack_sdk clients."""
        return f"{self.url}/api/"

    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the fake's loop, awaiting it from whichever loop the caller is on."""
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("FakeSlack is not running")
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """From plain (non-async) code in another thread: run ``coro`` on the fake's loop."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("FakeSlack is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def requests(self, team_id: str | None = None) -> SlackRequestBuilder:
        """A builder for signed Slack → app requests whose handles this fake honours (from
        another workspace added with `add_team`, if `team_id` is given)."""
        return SlackRequestBuilder.for_fake(self, team_id=team_id)

    def web_client(self, token: str | None = "xoxb-test", **kwargs: Any) -> Any:
        """An ``AsyncWebClient`` aimed at this fake (create it inside a running loop)."""
        from slack_sdk.web.async_client import AsyncWebClient

        return AsyncWebClient(token=token, base_url=self.api_url, **kwargs)

    # ------------------------------------------------------------------ ids and clocks

    def new_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}0{next(self._ids):08X}"

    def _new_ts(self) -> str:
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    # ------------------------------------------------------------------ workspace setup

    def _team(self, team_id: str | None) -> str:
        """``team_id``, or the fake's own workspace for None. A workspace the fake does not
        know is a mistake in the test's setup, so it fails loudly."""
        team = team_id or self.team_id
        if team not in self.teams:
            raise ValueError(f"unknown workspace {team!r}: add it with add_team first")
        return team

    def _check_members(self, team: str, members: list[str] | tuple[str, ...]) -> None:
        """Conversations hold only their own workspace's people (the fake has no Slack
        Connect). Members not added yet are taken on trust."""
        for uid in members:
            user = self.users.get(uid)
            if user is not None and user.team_id != team and team not in user.also_in \
                    and uid != SLACKBOT:
                raise ValueError(f"{uid} is in workspace {user.team_id}, not {team}")

    def add_user(self, user_id: str | None, name: str, *, real_name: str = "", tz: str = "UTC",
                 is_admin: bool = False, is_owner: bool = False, is_bot: bool = False,
                 deleted: bool = False, email: str | None = None,
                 team_id: str | None = None, also_in: tuple[str, ...] = ()) -> str:
        """A person (or bot user) in workspace ``team_id`` (None: the fake's own), and with
        the same id in the workspaces ``also_in`` (an Enterprise Grid organisation's)."""
        with self._lock:
            team = self._team(team_id)
            others = frozenset(self._team(t) for t in also_in)
            _, domain = self.teams[team]
            uid = user_id or self.new_id("U")
            self.users[uid] = User(
                id=uid, name=name, team_id=team, real_name=real_name or name.title(), tz=tz,
                is_admin=is_admin or is_owner, is_owner=is_owner, is_bot=is_bot,
                deleted=deleted, email=email if email is not None else (
                    None if is_bot else f"{name}@{domain}.example"), also_in=others,
            )
            return uid

    def add_bot(self, *, user_id: str = "U0BOT0001", bot_id: str = "B0BOT0001",
                name: str = "cohortbot", token: str = "xoxb-test",
                scopes: set[str] | frozenset[str] = DEFAULT_BOT_SCOPES,
                team_id: str | None = None) -> str:
        """The app's bot user in workspace ``team_id`` (None: the fake's own), and its bot
        token, which answers for that workspace."""
        with self._lock:
            self.add_user(user_id, name, real_name=name, is_bot=True, team_id=team_id)
            user = self.users[user_id]
            user.bot_id, user.app_id, user.is_app_user = bot_id, self.app_id, False
            self.tokens[token] = Token(token, "bot", user_id, set(scopes), team_id=team_id)
            return user_id

    def add_token(self, token: str, *, kind: str, user_id: str | None = None,
                  scopes: set[str] | frozenset[str] | None = None,
                  team_id: str | None = None) -> None:
        """A token that answers for workspace ``team_id`` (None: the fake's own)."""
        with self._lock:
            self._team(team_id)
            if scopes is None:
                scopes = DEFAULT_APP_SCOPES if kind == "app" else DEFAULT_BOT_SCOPES
            self.tokens[token] = Token(token, kind, user_id, set(scopes), team_id=team_id)

    def add_app_token(self, token: str = "xapp-test") -> None:
        self.add_token(token, kind="app")

    # ------------------------------------------------------------------ OAuth installs

    def add_team(self, team_id: str, name: str, domain: str) -> None:
        """Another workspace. Its users, bot and channels (``team_id=`` to `add_user`,
        `add_bot`, `add_channel`) are seen only with its own tokens, as on Slack. An id
        names one user or channel across all workspaces, as Slack's ids do."""
        with self._lock:
            self.teams[team_id] = (name, domain)

    def set_oauth_client(self, client_id: str, client_secret: str) -> None:
        """The app's OAuth credentials, which `oauth.v2.access` checks."""
        with self._lock:
            self.oauth_client = (client_id, client_secret)

    def authorize(self, *, team_id: str, installer: str, bot_user_id: str, bot_id: str,
                  bot_name: str = "cohortbot",
                  scopes: set[str] | frozenset[str] = DEFAULT_BOT_SCOPES) -> str:
        """What Slack does when `installer` clicks *Allow* on the authorize page: the bot
        user joins the workspace, and a one-time code for `oauth.v2.access` is returned.
        The bot token is created when the code is exchanged."""
        with self._lock:
            self._team(team_id)
            if bot_user_id not in self.users:
                self.add_user(bot_user_id, bot_name, real_name=bot_name, is_bot=True,
                              team_id=team_id)
                user = self.users[bot_user_id]
                user.bot_id, user.app_id, user.is_app_user = bot_id, self.app_id, False
            code = f"{next(self._ids)}.{secrets.token_hex(12)}"
            self._oauth_codes[code] = {"team_id": team_id, "installer": installer,
                                       "bot_user_id": bot_user_id, "scopes": set(scopes)}
            return code

    def bot_tokens(self, team_id: str) -> list[str]:
        """The bot tokens issued for a workspace (the fake's own: those with no team)."""
        with self._lock:
            return [t.value for t in self.tokens.values() if t.kind == "bot"
                    and (t.team_id or self.team_id) == team_id]

    def bot_user_of(self, team_id: str | None = None) -> str | None:
        """The app's bot user in workspace ``team_id`` (None: the fake's own), if the app
        has a bot token there."""
        with self._lock:
            team = team_id or self.team_id
            for tok in self.tokens.values():
                if tok.kind == "bot" and tok.user_id and (tok.team_id or self.team_id) == team:
                    return tok.user_id
        return None

    @property
    def bot_user_id(self) -> str:
        """The app's bot user in the fake's own workspace."""
        bot = self.bot_user_of()
        if bot is None:
            raise LookupError("no bot user")
        return bot

    def add_channel(self, name: str, *, channel_id: str | None = None, private: bool = False,
                    members: list[str] | tuple[str, ...] = (), creator: str = "",
                    is_general: bool = False, team_id: str | None = None) -> str:
        """A channel in workspace ``team_id`` (None: the fake's own)."""
        with self._lock:
            team = self._team(team_id)
            self._check_members(team, members)
            cid = channel_id or self.new_id("C")
            self.channels[cid] = Channel(
                id=cid, name=name, team_id=team, is_private=private,
                members=list(dict.fromkeys(members)),
                creator=creator or (members[0] if members else ""), is_general=is_general,
            )
            return cid

    def join(self, channel_id: str, user_id: str) -> None:
        with self._lock:
            ch = self.channels[channel_id]
            self._check_members(ch.team_id, [user_id])
            if user_id not in ch.members:
                ch.members.append(user_id)

    def leave(self, channel_id: str, user_id: str) -> None:
        with self._lock:
            members = self.channels[channel_id].members
            if user_id in members:
                members.remove(user_id)

    def archive_channel(self, channel_id: str) -> None:
        with self._lock:
            self.channels[channel_id].is_archived = True

    def deactivate_user(self, user_id: str) -> None:
        with self._lock:
            self.users[user_id].deleted = True
            for tok in self.tokens.values():
                if tok.user_id == user_id:
                    tok.inactive = True

    def revoke_token(self, token: str) -> None:
        """Later calls with ``token`` get ``token_revoked`` (the app was uninstalled)."""
        with self._lock:
            self.tokens[token].revoked = True

    def deactivate_token(self, token: str) -> None:
        """Later calls with ``token`` get ``account_inactive``."""
        with self._lock:
            self.tokens[token].inactive = True

    def set_scopes(self, token: str, scopes: set[str] | frozenset[str]) -> None:
        with self._lock:
            self.tokens[token].scopes = set(scopes)

    def add_user_message(self, channel_id: str, user_id: str, text: str, *,
                         thread_ts: str | None = None) -> JSON:
        """A message a human posted (as Slack would store it); returns its inspect form."""
        with self._lock:
            ch = self.channels[channel_id]
            poster = self.users.get(user_id)
            ts = self._new_ts()
            msg: JSON = {
                "type": "message", "user": user_id, "text": text, "ts": ts,
                "team": poster.team_id if poster else ch.team_id,
                "client_msg_id": secrets.token_hex(16),
                "blocks": rich_text_blocks(text),
            }
            if thread_ts:
                self._attach_reply(ch, msg, thread_ts)
            ch.messages.append(msg)
            return inspect_message(msg, ch.id)

    # ------------------------------------------------------------------ fault injection

    def fail_next(self, method: str, status: int = 500, count: int = 1, *,
                  error: str | None = None, applied: bool = False) -> None:
        """The next ``count`` calls to ``method`` ("*" for any) answer HTTP ``status``.

        Without ``error`` the body is an HTML error page, as Slack's edge sends; with it, a
        JSON ``{"ok": false, "error": error}``. Nothing is applied, unless ``applied``: then
        the call takes effect and the error is answered all the same (as Slack now and then
        does with a post).
        """
        self._add_fault(method, _Fault("fail", count, status=status, error=error,
                                       process=applied))

    def ratelimit_next(self, method: str, retry_after: int = 1, count: int = 1) -> None:
        """The next ``count`` calls answer 429 with ``Retry-After: retry_after``."""
        self._add_fault(method, _Fault("ratelimit", count, status=429, retry_after=retry_after))

    def hang_next(self, method: str, seconds: float, count: int = 1, *,
                  process: bool = True) -> None:
        """The next ``count`` calls stall ``seconds`` before being answered.

        With ``process`` the call then takes effect as usual (the ambiguous case of a client
        that timed out on a request Slack did carry out); without, it answers 504 and is
        not applied.
        """
        self._add_fault(method, _Fault("hang", count, seconds=seconds, process=process))

    def hanging(self) -> int:
        """How many calls are stalled by `hang_next` right now."""
        with self._lock:
            return self._hanging

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, method: str, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.setdefault(method, []).append(fault)

    def _take_fault(self, method: str) -> _Fault | None:
        with self._lock:
            for key in (method, "*"):
                queue = self._faults.get(key)
                if queue:
                    fault = queue[0]
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        queue.pop(0)
                    return fault
        return None

    def set_latency(self, low: float | tuple[float, float], high: float | None = None) -> None:
        """Every API answer is delayed uniformly in [low, high] seconds (seeded RNG)."""
        if isinstance(low, tuple):
            low, high = low
        with self._lock:
            self._latency = (float(low), float(high if high is not None else low))

    def set_post_rate_limit(self, rate: float | None, burst: int | None = None) -> None:
        """chat.postMessage per channel: ``rate`` messages/second, bursts of ``burst``."""
        with self._lock:
            self._post_rate = rate
            if burst is not None:
                self._post_burst = burst
            self._post_buckets.clear()

    def set_method_limit(self, method: str, per_minute: float | None,
                         burst: int | None = None) -> None:
        """A Web API tier limit for ``method``, per token (``None`` removes it)."""
        with self._lock:
            if per_minute is None:
                self._method_limits.pop(method, None)
            else:
                self._method_limits[method] = (per_minute / 60.0, float(burst or 1))
            self._method_buckets = {k: v for k, v in self._method_buckets.items()
                                    if k[0] != method}

    def _latency_now(self) -> float:
        with self._lock:
            low, high = self._latency
            return self._rng.uniform(low, high) if high > 0 else 0.0

    # ------------------------------------------------------------------ issued handles

    def issue_trigger(self, user_id: str, *, team_id: str | None = None) -> str:
        """A ``trigger_id`` as Slack puts in commands and interactions (expires, single use),
        good for workspace ``team_id`` (None: the user's own, else the fake's)."""
        with self._lock:
            team = self._team(team_id or self._home_team(user_id))
            tid = (f"{self._rng.randrange(10**9, 10**10)}.{self._rng.randrange(10**9, 10**10)}."
                   f"{secrets.token_hex(16)}")
            self._triggers[tid] = Trigger(tid, user_id, time.monotonic(), team_id=team)
            return tid

    def issue_response_url(self, channel_id: str | None, user_id: str | None,
                           message_ts: str | None = None, *, team_id: str | None = None) -> str:
        with self._lock:
            team = team_id or self._home_team(user_id)
            rid = f"{team}/{next(self._ids)}/{secrets.token_hex(12)}".replace("/", "-")
            self._response_urls[rid] = ResponseUrl(rid, channel_id, user_id, message_ts,
                                                   time.monotonic())
            return f"{self.url}/response/{rid}"

    def issue_socket_url(self) -> str:
        with self._lock:
            ticket = secrets.token_hex(16)
            self._tickets.add(ticket)
            return f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    def ticket_valid(self, ticket: str | None) -> bool:
        with self._lock:
            return ticket is not None and ticket in self._tickets

    # ------------------------------------------------------------------ accessors

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def messages(self, channel_id: str, *, thread_ts: str | None = None,
                 include_deleted: bool = False) -> list[JSON]:
        """Everything in a conversation, oldest first, replies included."""
        with self._lock:
            ch = self.channels[channel_id]
            out = []
            for m in ch.messages:
                if m.get("_deleted") and not include_deleted:
                    continue
                if thread_ts is not None and m.get("thread_ts") != thread_ts:
                    continue
                out.append(inspect_message(m, ch.id))
            return out

    def posts(self, channel_id: str | None = None, *, include_deleted: bool = False
              ) -> list[JSON]:
        """Messages the app posted (any conversation), in the order they were accepted."""
        with self._lock:
            out = []
            for cid, ts in self._post_order:
                if channel_id is not None and cid != channel_id:
                    continue
                msg = self._find_message(self.channels[cid], ts)
                if msg is None or (msg.get("_deleted") and not include_deleted):
                    continue
                out.append(inspect_message(msg, cid))
            return out

    def ephemerals(self, *, user: str | None = None, channel: str | None = None) -> list[JSON]:
        with self._lock:
            return [copy.deepcopy(e) for e in self._ephemerals
                    if (user is None or e["user"] == user)
                    and (channel is None or e["channel"] == channel)]

    def response_url_posts(self) -> list[ResponseUrlPost]:
        with self._lock:
            return list(self._response_posts)

    def open_dm(self, user_id: str, *, team_id: str | None = None) -> str:
        """The bot's DM with ``user_id``, opened from the person's side (the app's Messages
        tab) if it does not exist yet: with the bot of workspace ``team_id`` (None: the
        person's own workspace)."""
        with self._lock:
            team = team_id or self.users[user_id].team_id
            bot = self.bot_user_of(team)
            if bot is None:
                raise LookupError(f"no bot user in workspace {team}")
            ch, _ = self._open_im(team, bot, user_id)
            return ch.id

    def dm_channel(self, user_id: str) -> str | None:
        """The bot's DM with ``user_id``, if one was opened."""
        with self._lock:
            for ch in self.channels.values():
                if ch.is_im and ch.im_user == user_id:
                    return ch.id
        return None

    def user(self, user_id: str) -> JSON:
        with self._lock:
            return self.users[user_id].to_api()

    def channel(self, channel_id: str) -> JSON:
        """A conversation as its workspace's bot user sees it, members included."""
        with self._lock:
            ch = self.channels[channel_id]
            out = ch.to_api(self.bot_user_of(ch.team_id), num_members=True)
            out["members"] = list(ch.members)
            return out

    def view(self, view_id: str) -> JSON:
        with self._lock:
            return public_message(self.views[view_id])

    def modal_stack(self, user_id: str) -> list[JSON]:
        """The modals open for ``user_id``, root first."""
        with self._lock:
            return [public_message(self.views[v]) for v in self._modal_stacks.get(user_id, [])]

    def home_view(self, user_id: str) -> JSON | None:
        with self._lock:
            vid = self._home_views.get(user_id)
            return public_message(self.views[vid]) if vid else None

    def close_modal(self, user_id: str, *, clear: bool = False) -> None:
        """The user closes the top modal (or all of them)."""
        with self._lock:
            stack = self._modal_stacks.get(user_id, [])
            if clear:
                stack.clear()
            elif stack:
                stack.pop()

    def apply_view_response(self, user_id: str, response: JSON | None) -> None:
        """What Slack does with a view_submission ack body (``response_action``)."""
        with self._lock:
            stack = self._modal_stacks.setdefault(user_id, [])
            action = (response or {}).get("response_action")
            if action == "errors":
                return
            if action == "clear":
                stack.clear()
            elif action == "update" and stack:
                view = validate_view(response.get("view") if response else None,
                                     allowed_types=("modal",))
                self._replace_view(stack[-1], view)
            elif action == "push":
                view = validate_view(response.get("view") if response else None,
                                     allowed_types=("modal",))
                if len(stack) >= 3:
                    raise SlackError("push_limit_reached")
                stack.append(self._create_view(self._home_team(user_id), view, user_id,
                                               stack))
            elif stack:
                stack.pop()

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0,
                       interval: float = 0.01, what: str = "condition") -> T:
        """Poll ``predicate`` (bounded) until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(interval)

    def wait_for_sync(self, predicate: Callable[[], T], timeout: float = 5.0,
                      interval: float = 0.01, what: str = "condition") -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    # ------------------------------------------------------------------ socket mode

    async def socket_wait_connected(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` Socket Mode connections have been opened in total."""
        await self.wait_for(lambda: len(self.socket.connections()) >= count, timeout,
                            what=f"{count} socket mode connection(s)")

    async def socket_send(self, type: str, payload: JSON, *, retry_attempt: int = 0,
                          retry_reason: str = "", accepts_response_payload: bool | None = None,
                          envelope_id: str | None = None, wait_ack: bool = True,
                          timeout: float = 5.0) -> SocketDelivery:
        """Send an envelope to the newest open connection; by default wait for the ack."""
        return await self._on_loop(self.socket.send(
            type, payload, retry_attempt=retry_attempt, retry_reason=retry_reason,
            accepts_response_payload=accepts_response_payload, envelope_id=envelope_id,
            wait_ack=wait_ack, timeout=timeout))

    async def socket_redeliver(self, delivery: SocketDelivery, *, retry_reason: str = "timeout",
                               same_envelope_id: bool = False, wait_ack: bool = True,
                               timeout: float = 5.0) -> SocketDelivery:
        """Send the same payload again (same ``event_id``), ``retry_attempt`` one higher."""
        return await self.socket_send(
            delivery.type, delivery.payload, retry_attempt=delivery.retry_attempt + 1,
            retry_reason=retry_reason,
            accepts_response_payload=delivery.envelope.get("accepts_response_payload"),
            envelope_id=delivery.envelope_id if same_envelope_id else None,
            wait_ack=wait_ack, timeout=timeout)

    async def socket_wait_ack(self, delivery: SocketDelivery, timeout: float = 5.0
                              ) -> SocketDelivery:
        return await self._on_loop(self.socket.wait_ack(delivery, timeout))

    async def socket_disconnect(self, reason: str = "refresh_requested", *,
                                close: bool = False) -> None:
        """Send ``{"type": "disconnect"}`` to every open connection (then close, if asked)."""
        await self._on_loop(self.socket.disconnect(reason, close=close))

    async def socket_close(self, code: int = 1011) -> None:
        """Drop every open connection without a disconnect message."""
        await self._on_loop(self.socket.close_all(code=code))

    @property
    def socket_acks(self) -> list[JSON]:
        return self.socket.acks()

    def socket_deliveries(self) -> list[SocketDelivery]:
        return self.socket.deliveries()

    # ------------------------------------------------------------------ HTTP: Web API

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        received = time.time()
        method = request.match_info["method"]
        try:
            params, raw_token, json_body, warnings = await self._parse_request(request)
        except SlackError as e:
            return self._finish(request, method, {}, None, "", received, started,
                                e.status, e.body(), e.headers)
        content_type = request.headers.get("Content-Type", "")

        fault = self._take_fault(method) if method in METHODS else None
        delay = self._latency_now()
        if delay:
            await asyncio.sleep(delay)
        if fault is not None:
            if fault.kind == "hang":
                with self._lock:
                    self._hanging += 1
                try:
                    await asyncio.sleep(fault.seconds)
                finally:
                    with self._lock:
                        self._hanging -= 1
                if not fault.process:
                    return self._finish_text(request, method, params, raw_token, content_type,
                                             received, started, 504)
            elif fault.kind == "ratelimit":
                return self._finish(request, method, params, raw_token, content_type, received,
                                    started, 429, {"ok": False, "error": "ratelimited"},
                                    {"Retry-After": str(fault.retry_after)})
            else:  # "fail"
                if fault.process:  # carried out, and answered with an error all the same
                    with self._lock:
                        self._dispatch(method, params, raw_token, json_body, warnings)
                if fault.error is None:
                    return self._finish_text(request, method, params, raw_token, content_type,
                                             received, started, fault.status)
                return self._finish(request, method, params, raw_token, content_type, received,
                                    started, fault.status, {"ok": False, "error": fault.error})

        with self._lock:
            status, body, headers = self._dispatch(method, params, raw_token, json_body,
                                                   warnings)
        return self._finish(request, method, params, raw_token, content_type, received,
                            started, status, body, headers)

    async def _parse_request(self, request: web.Request
                             ) -> tuple[JSON, str | None, bool, list[str]]:
        params: JSON = {k: v for k, v in request.query.items()}
        warnings: list[str] = []
        json_body = False
        header_token = None
        basic: tuple[str, str] | None = None
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            header_token = auth[7:].strip() or None
        elif auth.lower().startswith("basic "):
            try:
                pair = base64.b64decode(auth[6:].strip()).decode()
            except ValueError:
                raise SlackError("invalid_auth") from None
            client_id, _, client_secret = pair.partition(":")
            basic = (client_id, client_secret)
        if request.method == "POST" and request.body_exists:
            ctype = request.content_type
            raw_ctype = request.headers.get("Content-Type", "")
            if not raw_ctype:
                raise SlackError("missing_post_type")
            if ctype == "application/json":
                json_body = True
                text = await request.text()
                try:
                    data = json.loads(text) if text.strip() else {}
                except ValueError:
                    raise SlackError("invalid_json") from None
                if not isinstance(data, dict):
                    raise SlackError("invalid_json")
                if "charset" not in raw_ctype.lower():
                    warnings.append("missing_charset")
                data.pop("token", None)  # JSON bodies must carry the token in the header
                params.update(data)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key in form:
                    value = form[key]
                    if isinstance(value, str):
                        params[key] = value
            elif ctype != "text/plain":
                raise SlackError("invalid_post_type")
        if basic is not None:  # oauth.v2.access: the app's credentials as HTTP basic auth
            params.setdefault("client_id", basic[0])
            params.setdefault("client_secret", basic[1])
        token = header_token
        body_token = params.pop("token", None)
        if token is None and body_token:
            token = str(body_token)
        return params, token, json_body, warnings

    def _finish(self, request: web.Request, method: str, params: JSON, token: str | None,
                content_type: str, received: float, started: float, status: int, body: JSON,
                headers: dict[str, str] | None = None) -> web.Response:
        headers = dict(headers or {})
        headers.setdefault("X-Slack-Req-Id", secrets.token_hex(16))
        self._record(Call(method, request.method, params, token, content_type, received,
                          time.monotonic() - started, status, bool(body.get("ok")),
                          body.get("error"), body, headers))
        return web.json_response(body, status=status, headers=headers)

    def _finish_text(self, request: web.Request, method: str, params: JSON, token: str | None,
                     content_type: str, received: float, started: float, status: int
                     ) -> web.Response:
        self._record(Call(method, request.method, params, token, content_type, received,
                          time.monotonic() - started, status, False, None, None))
        return web.Response(status=status, text=_HTML_ERROR.format(status=status),
                            content_type="text/html")

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def _dispatch(self, method: str, params: JSON, raw_token: str | None, json_body: bool,
                  warnings: list[str]) -> tuple[int, JSON, dict[str, str]]:
        spec = METHODS.get(method)
        if spec is None:
            return 200, {"ok": False, "error": "unknown_method", "req_method": method}, {}
        ctx = _Ctx(method, params, None, json_body, list(warnings))
        try:
            if spec.token_kinds:
                ctx.token = self._authenticate(raw_token, spec, ctx)
            body = getattr(self, "_m_" + spec.handler)(ctx)
        except SlackError as e:
            body = e.body()
            if ctx.warnings and e.status == 200:
                body["warning"] = ",".join(ctx.warnings)
                body.setdefault("response_metadata", {})["warnings"] = ctx.warnings
            return e.status, body, {**ctx.headers, **e.headers}
        body = {"ok": True, **body}
        if ctx.warnings:
            body["warning"] = ",".join(ctx.warnings)
            body.setdefault("response_metadata", {})["warnings"] = ctx.warnings
        return 200, body, ctx.headers

    def _authenticate(self, raw: str | None, spec: _Method, ctx: _Ctx) -> Token:
        if not raw:
            raise SlackError("not_authed")
        token = self.tokens.get(raw)
        if token is None:
            raise SlackError("invalid_auth")
        if token.revoked:
            raise SlackError("token_revoked")
        if token.inactive:
            raise SlackError("account_inactive")
        if token.kind not in spec.token_kinds:
            raise SlackError("not_allowed_token_type")
        ctx.token = token
        ctx.headers["X-OAuth-Scopes"] = ",".join(sorted(token.scopes))
        needed = spec.scope(self, ctx) if callable(spec.scope) else spec.scope
        if needed:
            ctx.headers["X-Accepted-OAuth-Scopes"] = needed
            if needed not in token.scopes:
                raise SlackError("missing_scope", extra={
                    "needed": needed, "provided": ",".join(sorted(token.scopes))})
        limit = self._method_limits.get(ctx.method)
        if limit is not None:
            key = (ctx.method, token.value)
            bucket = self._method_buckets.get(key)
            now = time.monotonic()
            if bucket is None:
                bucket = self._method_buckets[key] = _Bucket(limit[0], limit[1], limit[1], now)
            wait = bucket.take(now)
            if wait:
                raise SlackError("ratelimited", status=429,
                                 headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return token

    # ------------------------------------------------------------------ lookups

    def _team_of(self, ctx: _Ctx) -> str:
        """The workspace a call is made in: its token's."""
        return (ctx.token.team_id if ctx.token else None) or self.team_id

    def _home_team(self, user_id: str | None) -> str:
        """The workspace of a known user, else the fake's own."""
        user = self.users.get(user_id or "")
        return user.team_id if user is not None else self.team_id

    def _lookup_channel(self, team: str, ref: str) -> Channel | None:
        """A conversation of workspace ``team`` by id or name; others' do not exist."""
        ch = self.channels.get(ref)
        if ch is not None:
            return ch if ch.team_id == team else None
        name = ref.lstrip("#")
        for ch in self.channels.values():
            if ch.team_id == team and ch.name and ch.name == name and not ch.is_im:
                return ch
        return None

    def _visible_channel(self, ctx: _Ctx, ref: str | None) -> Channel:
        """A conversation the caller may know exists: its own workspace's, private ones
        only to members."""
        if not ref:
            raise SlackError("channel_not_found")
        ch = self._lookup_channel(self._team_of(ctx), ref)
        if ch is None:
            raise SlackError("channel_not_found")
        if (ch.is_private or ch.is_im or ch.is_mpim) and ctx.actor not in ch.members:
            raise SlackError("channel_not_found")
        return ch

    def _team_user(self, team: str, user_id: str | None) -> User | None:
        """A user workspace ``team`` knows: its own, and Slackbot."""
        user = self.users.get(user_id or "")
        if user is None or (user.team_id != team and team not in user.also_in
                            and user.id != SLACKBOT):
            return None
        return user

    def _user_or_error(self, ctx: _Ctx, user_id: str | None) -> User:
        user = self._team_user(self._team_of(ctx), user_id)
        if user is None:
            raise SlackError("user_not_found")
        return user

    def _open_im(self, team: str, bot_user: str, user_id: str) -> tuple[Channel, bool]:
        for ch in self.channels.values():
            if ch.is_im and ch.im_user == user_id and bot_user in ch.members:
                return ch, False
        cid = self.new_id("D")
        ch = Channel(id=cid, team_id=team, is_im=True, members=[bot_user, user_id],
                     im_user=user_id, creator=bot_user)
        self.channels[cid] = ch
        return ch, True

    @staticmethod
    def _find_message(ch: Channel, ts: str) -> JSON | None:
        for m in ch.messages:
            if m["ts"] == ts:
                return m
        return None

    def _attach_reply(self, ch: Channel, msg: JSON, thread_ts: str) -> None:
        msg["thread_ts"] = thread_ts
        parent = self._find_message(ch, thread_ts)
        if parent is None:
            return
        msg["parent_user_id"] = parent.get("user")
        parent["thread_ts"] = thread_ts
        parent["reply_count"] = parent.get("reply_count", 0) + 1
        users = parent.setdefault("reply_users", [])
        if msg.get("user") not in users:
            users.append(msg.get("user"))
        parent["reply_users_count"] = len(users)
        parent["latest_reply"] = msg["ts"]
        parent["is_locked"] = False
        parent["subscribed"] = False

    def _bot_message(self, ctx: _Ctx, text: str, blocks: list[JSON] | None,
                     attachments: Any, metadata: JSON | None) -> JSON:
        bot = self.users[ctx.actor]
        msg: JSON = {
            "user": bot.id, "type": "message", "ts": "", "bot_id": bot.bot_id,
            "app_id": bot.app_id, "text": text, "team": bot.team_id,
            "bot_profile": {
                "id": bot.bot_id, "app_id": bot.app_id, "name": bot.name, "deleted": False,
                "team_id": bot.team_id, "updated": bot.updated,
                "icons": {"image_36": "", "image_48": "", "image_72": ""},
            },
        }
        if blocks:
            msg["blocks"] = blocks
        elif text and not attachments:
            msg["blocks"] = rich_text_blocks(text)
        msg["_text_missing"] = bool(blocks) and not text.strip()
        if attachments:
            msg["attachments"] = attachments
        if metadata is not None:
            msg["metadata"] = metadata
        return msg

    def _message_content(self, ctx: _Ctx, *, require: bool = True
                         ) -> tuple[str, list[JSON] | None, Any, JSON | None]:
        text = ctx.params.get("text")
        text = "" if text is None else str(text)
        blocks = parse_json_arg(ctx.params.get("blocks"), "invalid_blocks_format", "blocks")
        if blocks is not None:
            validate_blocks(blocks, limit=MAX_BLOCKS_MESSAGE, surface="message")
        attachments = parse_json_arg(ctx.params.get("attachments"), "invalid_attachments",
                                     "attachments")
        if attachments is not None and not isinstance(attachments, list):
            raise SlackError("invalid_attachments")
        if attachments is not None and len(attachments) > 100:
            raise SlackError("too_many_attachments")
        metadata = validate_metadata(ctx.params.get("metadata"))
        if require and not text and not blocks and not attachments:
            raise SlackError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        return text, blocks or None, attachments or None, metadata

    def _check_post_limit(self, channel_id: str) -> None:
        if self._post_rate is None:
            return
        now = time.monotonic()
        bucket = self._post_buckets.get(channel_id)
        if bucket is None:
            bucket = self._post_buckets[channel_id] = _Bucket(
                self._post_rate, float(self._post_burst), float(self._post_burst), now)
        wait = bucket.take(now)
        if wait:
            raise SlackError("ratelimited", status=429,
                             headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def _postable_channel(self, ctx: _Ctx, ref: str | None) -> Channel:
        if not ref:
            raise SlackError("channel_not_found")
        team = self._team_of(ctx)
        user = self._team_user(team, ref) if ref[:1] in ("U", "W") else None
        if user is not None:
            if user.is_bot:
                raise SlackError("cannot_dm_bot")
            ch, _ = self._open_im(team, ctx.actor, ref)
            return ch
        ch = self._visible_channel(ctx, ref)
        if ch.is_archived:
            raise SlackError("is_archived")
        if ctx.actor not in ch.members:
            assert ctx.token is not None
            if ch.is_private or "chat:write.public" not in ctx.token.scopes:
                raise SlackError("not_in_channel")
        return ch

    # ------------------------------------------------------------------ methods

    def _m_api_test(self, ctx: _Ctx) -> JSON:
        if ctx.params.get("error"):
            raise SlackError(str(ctx.params["error"]), extra={"args": dict(ctx.params)})
        return {"args": dict(ctx.params)} if ctx.params else {}

    def _m_auth_test(self, ctx: _Ctx) -> JSON:
        assert ctx.token is not None
        user = self.users.get(ctx.actor)
        team_id = ctx.token.team_id or self.team_id
        team_name, team_domain = self.teams.get(team_id, (self.team_name, self.team_domain))
        out: JSON = {
            "url": f"https://{team_domain}.slack.com/", "team": team_name,
            "user": user.name if user else "", "team_id": team_id, "user_id": ctx.actor,
        }
        if ctx.token.kind == "bot" and user is not None:
            out["bot_id"] = user.bot_id
        out["is_enterprise_install"] = False
        return out

    def _m_oauth_v2_access(self, ctx: _Ctx) -> JSON:
        client_id, client_secret = ctx.str_param("client_id"), ctx.str_param("client_secret")
        if client_id is None:
            raise SlackError("invalid_client_id")
        if self.oauth_client is None or client_id != self.oauth_client[0]:
            raise SlackError("invalid_client_id")
        if client_secret != self.oauth_client[1]:
            raise SlackError("bad_client_secret")
        grant = self._oauth_codes.pop(ctx.str_param("code") or "", None)
        if grant is None:
            raise SlackError("invalid_code")
        team_id = grant["team_id"]
        token = f"xoxb-{team_id.lower()}-{secrets.token_hex(8)}"
        self.tokens[token] = Token(token, "bot", grant["bot_user_id"], set(grant["scopes"]),
                                   team_id=team_id)
        team_name, _ = self.teams.get(team_id, (self.team_name, self.team_domain))
        return {
            "access_token": token, "token_type": "bot", "scope": ",".join(sorted(grant["scopes"])),
            "bot_user_id": grant["bot_user_id"], "app_id": self.app_id,
            "team": {"id": team_id, "name": team_name}, "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": grant["installer"]},
        }

    def _m_team_info(self, ctx: _Ctx) -> JSON:
        team_id = self._team_of(ctx)
        name, domain = self.teams.get(team_id, (self.team_name, self.team_domain))
        return {"team": {
            "id": team_id, "name": name, "url": f"https://{domain}.slack.com/",
            "domain": domain, "email_domain": "",
            "icon": {"image_default": True}, "is_verified": False,
        }}

    def _m_users_info(self, ctx: _Ctx) -> JSON:
        user = self._user_or_error(ctx, ctx.str_param("user"))
        out = user.to_api(self._team_of(ctx))
        if truthy(ctx.params.get("include_locale")):
            out["locale"] = "en-US"
        return {"user": out}

    def _m_users_list(self, ctx: _Ctx) -> JSON:
        team = self._team_of(ctx)
        offset = _decode_cursor(ctx.str_param("cursor"))
        limit = _limit(ctx, default=1000, maximum=1000)
        users = [u for u in self.users.values() if self._team_user(team, u.id) is not None]
        page = users[offset:offset + limit]
        nxt = _encode_cursor(offset + limit) if offset + limit < len(users) else ""
        return {"members": [u.to_api(team) for u in page], "cache_ts": int(time.time()),
                "response_metadata": {"next_cursor": nxt}}

    def _m_conversations_info(self, ctx: _Ctx) -> JSON:
        ch = self._visible_channel(ctx, ctx.str_param("channel"))
        return {"channel": ch.to_api(ctx.actor,
                                     num_members=truthy(ctx.params.get("include_num_members")))}

    def _m_conversations_members(self, ctx: _Ctx) -> JSON:
        ch = self._visible_channel(ctx, ctx.str_param("channel"))
        offset = _decode_cursor(ctx.str_param("cursor"))
        limit = _limit(ctx, default=100, maximum=1000)
        members = [m for m in ch.members if not self.users.get(m, User(m, m)).deleted]
        page = members[offset:offset + limit]
        nxt = _encode_cursor(offset + limit) if offset + limit < len(members) else ""
        return {"members": page, "response_metadata": {"next_cursor": nxt}}

    def _m_conversations_open(self, ctx: _Ctx) -> JSON:
        channel_ref = ctx.str_param("channel")
        if channel_ref:
            ch = self._visible_channel(ctx, channel_ref)
            if not (ch.is_im or ch.is_mpim):
                raise SlackError("method_not_supported_for_channel_type")
            return {"no_op": True, "already_open": True,
                    "channel": ch.to_api(ctx.actor)
                    if truthy(ctx.params.get("return_im")) else {"id": ch.id}}
        users = [u.strip() for u in str(ctx.params.get("users") or "").split(",") if u.strip()]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 8:
            raise SlackError("too_many_users")
        for uid in users:
            user = self._user_or_error(ctx, uid)
            if user.deleted:
                raise SlackError("user_disabled")
            if user.is_bot and len(users) == 1:
                raise SlackError("cannot_dm_bot")
        team = self._team_of(ctx)
        if len(users) == 1:
            ch, created = self._open_im(team, ctx.actor, users[0])
        else:
            members = [ctx.actor, *users]
            found = [c for c in self.channels.values()
                     if c.is_mpim and sorted(c.members) == sorted(members)]
            created = not found
            if found:
                ch = found[0]
            else:
                names = "--".join(self.users[m].name for m in members)
                cid = self.new_id("G")
                ch = self.channels[cid] = Channel(id=cid, name=f"mpdm-{names}-1", team_id=team,
                                                  is_mpim=True, members=members,
                                                  creator=ctx.actor)
        out: JSON = {}
        if not created:
            out.update(no_op=True, already_open=True)
        out["channel"] = (ch.to_api(ctx.actor)
                          if truthy(ctx.params.get("return_im")) else {"id": ch.id})
        return out

    def _m_conversations_join(self, ctx: _Ctx) -> JSON:
        ref = ctx.str_param("channel")
        ch = self._lookup_channel(self._team_of(ctx), ref) if ref else None
        if ch is None:
            raise SlackError("channel_not_found")
        if ch.is_im or ch.is_mpim or ch.is_private:
            if ctx.actor not in ch.members:
                raise SlackError("channel_not_found")
            raise SlackError("method_not_supported_for_channel_type")
        if ch.is_archived:
            raise SlackError("is_archived")
        if ctx.actor in ch.members:
            ctx.warnings.append("already_in_channel")
        else:
            ch.members.append(ctx.actor)
        return {"channel": ch.to_api(ctx.actor)}

    def _readable_channel(self, ctx: _Ctx) -> Channel:
        ch = self._visible_channel(ctx, ctx.str_param("channel"))
        if ctx.actor not in ch.members:
            raise SlackError("not_in_channel")
        return ch

    def _m_conversations_history(self, ctx: _Ctx) -> JSON:
        ch = self._readable_channel(ctx)
        with_meta = truthy(ctx.params.get("include_all_metadata"))
        inclusive = truthy(ctx.params.get("inclusive"))
        oldest = _ts_float(ctx.params.get("oldest") or 0, "invalid_ts_oldest")
        latest_raw = ctx.params.get("latest")
        latest = _ts_float(latest_raw, "invalid_ts_latest") if latest_raw else math.inf
        limit = _limit(ctx, default=100, maximum=999)
        offset = _decode_cursor(ctx.str_param("cursor"))

        def in_range(ts: float) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        top = [m for m in ch.messages if not m.get("_deleted")
               and (m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast")
               and in_range(float(m["ts"]))]
        top.sort(key=lambda m: float(m["ts"]), reverse=True)
        page = top[offset:offset + limit]
        has_more = offset + limit < len(top)
        out: JSON = {"messages": [public_message(m, include_metadata=with_meta) for m in page],
                     "has_more": has_more, "pin_count": 0, "channel_actions_ts": None,
                     "channel_actions_count": 0}
        if has_more:
            out["response_metadata"] = {"next_cursor": _encode_cursor(offset + limit)}
        return out

    def _m_conversations_replies(self, ctx: _Ctx) -> JSON:
        ch = self._readable_channel(ctx)
        ts = ctx.str_param("ts")
        parent = self._find_message(ch, ts) if ts else None
        if parent is None or parent.get("_deleted"):
            raise SlackError("thread_not_found")
        with_meta = truthy(ctx.params.get("include_all_metadata"))
        thread = [parent] + [m for m in ch.messages if m.get("thread_ts") == ts
                             and m["ts"] != ts and not m.get("_deleted")]
        limit = _limit(ctx, default=1000, maximum=1000)
        offset = _decode_cursor(ctx.str_param("cursor"))
        page = thread[offset:offset + limit]
        has_more = offset + limit < len(thread)
        out: JSON = {"messages": [public_message(m, include_metadata=with_meta) for m in page],
                     "has_more": has_more}
        if has_more:
            out["response_metadata"] = {"next_cursor": _encode_cursor(offset + limit)}
        return out

    def _m_chat_post_message(self, ctx: _Ctx) -> JSON:
        ch = self._postable_channel(ctx, ctx.str_param("channel"))
        text, blocks, attachments, metadata = self._message_content(ctx)
        self._check_post_limit(ch.id)
        msg = self._bot_message(ctx, text, blocks, attachments, metadata)
        msg["ts"] = self._new_ts()
        thread_ts = ctx.str_param("thread_ts")
        if thread_ts:
            self._attach_reply(ch, msg, thread_ts)
            if truthy(ctx.params.get("reply_broadcast")):
                msg["subtype"] = "thread_broadcast"
        unfurl_links = ctx.params.get("unfurl_links")
        unfurl_media = ctx.params.get("unfurl_media")
        msg["_unfurl_links"] = None if unfurl_links is None else truthy(unfurl_links)
        msg["_unfurl_media"] = None if unfurl_media is None else truthy(unfurl_media)
        ch.messages.append(msg)
        self._post_order.append((ch.id, msg["ts"]))
        return {"channel": ch.id, "ts": msg["ts"], "message": public_message(msg)}

    def _m_chat_post_ephemeral(self, ctx: _Ctx) -> JSON:
        ch = self._postable_channel(ctx, ctx.str_param("channel"))
        user = self._user_or_error(ctx, ctx.str_param("user"))
        if user.id not in ch.members:
            raise SlackError("user_not_in_channel")
        text, blocks, attachments, _ = self._message_content(ctx)
        ts = self._new_ts()
        self._ephemerals.append({
            "channel": ch.id, "user": user.id, "text": text, "blocks": blocks,
            "attachments": attachments, "thread_ts": ctx.str_param("thread_ts"),
            "message_ts": ts, "via": "chat.postEphemeral",
            "text_missing": bool(blocks) and not text.strip(),
        })
        return {"message_ts": ts}

    def _own_message(self, ctx: _Ctx, denied: str) -> tuple[Channel, JSON]:
        ch = self._visible_channel(ctx, ctx.str_param("channel"))
        ts = ctx.str_param("ts")
        msg = self._find_message(ch, ts) if ts else None
        if msg is None or msg.get("_deleted"):
            raise SlackError("message_not_found")
        if msg.get("user") != ctx.actor:
            raise SlackError(denied)
        return ch, msg

    def _m_chat_update(self, ctx: _Ctx) -> JSON:
        ch, msg = self._own_message(ctx, "cant_update_message")
        text, blocks, attachments, metadata = self._message_content(ctx, require=False)
        if "text" not in ctx.params and blocks is None and attachments is None:
            raise SlackError("no_text")
        if "text" in ctx.params:
            msg["text"] = text
            if blocks is None:
                msg.pop("blocks", None)
                if text:
                    msg["blocks"] = rich_text_blocks(text)
                msg["edited"] = {"user": ctx.actor, "ts": self._new_ts()}
        if blocks is not None:
            msg["blocks"] = blocks
            msg["_text_missing"] = not text.strip()
        elif "text" in ctx.params:
            msg["_text_missing"] = False
        if attachments is not None:
            msg["attachments"] = attachments
        if metadata is not None:
            msg["metadata"] = metadata
        out = public_message(msg)
        return {"channel": ch.id, "ts": msg["ts"], "text": msg["text"], "message": out}

    def _m_chat_delete(self, ctx: _Ctx) -> JSON:
        ch, msg = self._own_message(ctx, "cant_delete_message")
        msg["_deleted"] = True
        return {"channel": ch.id, "ts": msg["ts"]}

    # views

    def _take_trigger(self, ctx: _Ctx) -> Trigger:
        tid = ctx.str_param("trigger_id") or ctx.str_param("interactivity_pointer")
        if not tid:
            raise invalid_arguments("missing required field: trigger_id")
        trig = self._triggers.get(tid)
        if trig is None or trig.team_id != self._team_of(ctx):
            raise SlackError("invalid_trigger_id")
        if trig.used:
            raise SlackError("exchanged_trigger_id")
        if time.monotonic() - trig.issued_at > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        trig.used = True
        return trig

    def _view_arg(self, ctx: _Ctx, allowed: tuple[str, ...]) -> JSON:
        view = parse_json_arg(ctx.params.get("view"), "invalid_arguments", "view")
        return validate_view(view, allowed_types=allowed)

    def _new_hash(self) -> str:
        return f"{int(time.time())}.{secrets.token_urlsafe(6)}"

    def _create_view(self, team: str, definition: JSON, user_id: str, stack: list[str]) -> str:
        """A view in workspace ``team``, shown to ``user_id``."""
        vid = self.new_id("V")
        bot = self.users.get(self.bot_user_of(team) or "")
        external = definition.get("external_id", "")
        if external and any(v.get("external_id") == external and v["_team"] == team
                            for v in self.views.values()):
            raise SlackError("duplicate_external_id")
        view: JSON = {
            "id": vid, "team_id": team, "type": definition["type"],
            "title": definition.get("title"), "submit": definition.get("submit"),
            "close": definition.get("close"), "blocks": copy.deepcopy(definition.get("blocks",
                                                                                     [])),
            "private_metadata": definition.get("private_metadata", ""),
            "callback_id": definition.get("callback_id", ""), "state": {"values": {}},
            "hash": self._new_hash(), "clear_on_close": bool(definition.get("clear_on_close")),
            "notify_on_close": bool(definition.get("notify_on_close")),
            "external_id": external,
            "root_view_id": stack[0] if stack else vid,
            "previous_view_id": stack[-1] if stack else None,
            "app_id": self.app_id, "app_installed_team_id": team,
            "bot_id": bot.bot_id if bot else None, "_user": user_id, "_team": team,
        }
        self.views[vid] = view
        return vid

    def _replace_view(self, vid: str, definition: JSON) -> JSON:
        view = self.views[vid]
        for key in ("title", "submit", "close"):
            view[key] = definition.get(key)
        view["type"] = definition["type"]
        view["blocks"] = copy.deepcopy(definition.get("blocks", []))
        view["private_metadata"] = definition.get("private_metadata", "")
        view["callback_id"] = definition.get("callback_id", "")
        view["clear_on_close"] = bool(definition.get("clear_on_close"))
        view["notify_on_close"] = bool(definition.get("notify_on_close"))
        if definition.get("external_id"):
            view["external_id"] = definition["external_id"]
        view["hash"] = self._new_hash()
        return view

    @staticmethod
    def _view_out(view: JSON) -> JSON:
        return {"view": public_message(view)}

    def _m_views_open(self, ctx: _Ctx) -> JSON:
        definition = self._view_arg(ctx, ("modal",))
        trig = self._take_trigger(ctx)
        stack: list[str] = []
        vid = self._create_view(trig.team_id, definition, trig.user_id, stack)
        self._modal_stacks[trig.user_id] = [vid]
        return self._view_out(self.views[vid])

    def _m_views_push(self, ctx: _Ctx) -> JSON:
        definition = self._view_arg(ctx, ("modal",))
        trig = self._take_trigger(ctx)
        stack = self._modal_stacks.get(trig.user_id, [])
        if not stack:
            raise SlackError("not_found")
        if len(stack) >= 3:
            raise SlackError("push_limit_reached")
        vid = self._create_view(trig.team_id, definition, trig.user_id, stack)
        stack.append(vid)
        return self._view_out(self.views[vid])

    def _m_views_update(self, ctx: _Ctx) -> JSON:
        definition = self._view_arg(ctx, ("modal", "home"))
        team = self._team_of(ctx)
        vid = ctx.str_param("view_id")
        external = ctx.str_param("external_id")
        view = None
        if vid:
            view = self.views.get(vid)
        elif external:
            view = next((v for v in self.views.values()
                         if v.get("external_id") == external and v["_team"] == team), None)
        else:
            raise invalid_arguments("missing required field: view_id or external_id")
        if view is None or view["_team"] != team:
            raise SlackError("not_found")
        expected = ctx.str_param("hash")
        if expected and expected != view["hash"]:
            raise SlackError("hash_conflict")
        return self._view_out(self._replace_view(view["id"], definition))

    def _m_views_publish(self, ctx: _Ctx) -> JSON:
        definition = self._view_arg(ctx, ("home",))
        user_id = ctx.str_param("user_id")
        if not user_id:
            raise invalid_arguments("missing required field: user_id")
        self._user_or_error(ctx, user_id)
        vid = self._home_views.get(user_id)
        if vid is None:
            vid = self._create_view(self._team_of(ctx), definition, user_id, [])
            self._home_views[user_id] = vid
            return self._view_out(self.views[vid])
        expected = ctx.str_param("hash")
        if expected and expected != self.views[vid]["hash"]:
            raise SlackError("hash_conflict")
        return self._view_out(self._replace_view(vid, definition))

    def _m_apps_connections_open(self, ctx: _Ctx) -> JSON:
        return {"url": self.issue_socket_url()}

    # ------------------------------------------------------------------ HTTP: response_url

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["id"]
        text = await request.text()
        try:
            if request.content_type == "application/x-www-form-urlencoded":
                form = await request.post()
                raw = form.get("payload")
                body = json.loads(raw) if isinstance(raw, str) else dict(form)
            else:
                body = json.loads(text)
        except ValueError:
            body = {"_raw": text}
        delay = self._latency_now()
        if delay:
            await asyncio.sleep(delay)
        with self._lock:
            status, error = self._apply_response_url(rid, body)
            handle = self._response_urls.get(rid)
            self._response_posts.append(ResponseUrlPost(
                rid, str(request.url), body if isinstance(body, dict) else {"_raw": body},
                handle.channel_id if handle else None, handle.user_id if handle else None,
                time.time(), status, error))
        if error:
            return web.json_response({"ok": False, "error": error}, status=status)
        return web.json_response({"ok": True})

    def _apply_response_url(self, rid: str, body: Any) -> tuple[int, str | None]:
        handle = self._response_urls.get(rid)
        if handle is None or time.monotonic() - handle.issued_at > self.response_url_ttl:
            return 404, "expired_url"
        if handle.uses >= self.response_url_uses:
            return 404, "used_url"
        if not isinstance(body, dict):
            return 400, "invalid_payload"
        handle.uses += 1
        channel = self.channels.get(handle.channel_id or "")
        original = (self._find_message(channel, handle.message_ts)
                    if channel is not None and handle.message_ts else None)
        if truthy(body.get("delete_original")):
            if original is None:
                return 404, "message_not_found"
            original["_deleted"] = True
            return 200, None
        if not body.get("text") and not body.get("blocks") and not body.get("attachments"):
            return 400, "no_text"
        if truthy(body.get("replace_original")) and original is not None:
            text = str(body.get("text") or "")
            original["text"] = text
            original["blocks"] = body.get("blocks") or rich_text_blocks(text)
            original["_text_missing"] = bool(body.get("blocks")) and not text.strip()
            return 200, None
        self._deliver_reply(handle.channel_id, handle.user_id, body, via="response_url")
        return 200, None

    def deliver_reply(self, channel_id: str | None, user_id: str | None, body: JSON, *,
                      via: str) -> None:
        """A reply to a command or interaction: in the channel, or only to the user."""
        with self._lock:
            self._deliver_reply(channel_id, user_id, body, via=via)

    def _deliver_reply(self, channel_id: str | None, user_id: str | None, body: JSON, *,
                       via: str) -> None:
        text = str(body.get("text") or "")
        blocks = body.get("blocks")
        channel = self.channels.get(channel_id or "")
        if body.get("response_type") == "in_channel" and channel is not None:
            # Posted by the app's bot user in the channel's own workspace.
            ctx = _Ctx(via, {}, self._bot_token(channel.team_id), False)
            msg = self._bot_message(ctx, text, blocks, body.get("attachments"),
                                    body.get("metadata"))
            msg["ts"] = self._new_ts()
            if body.get("thread_ts"):
                self._attach_reply(channel, msg, str(body["thread_ts"]))
            channel.messages.append(msg)
            self._post_order.append((channel.id, msg["ts"]))
            return
        self._ephemerals.append({
            "channel": channel_id, "user": user_id, "text": text, "blocks": blocks,
            "attachments": body.get("attachments"), "thread_ts": body.get("thread_ts"),
            "message_ts": self._new_ts(), "via": via,
            "text_missing": bool(blocks) and not text.strip(),
        })

    def _bot_token(self, team: str) -> Token | None:
        for tok in self.tokens.values():
            if tok.kind == "bot" and (tok.team_id or self.team_id) == team:
                return tok
        return None


__all__ = ["Call", "FakeSlack", "ResponseUrlPost", "SocketDelivery"]
