"""Slack as a `Platform`: builds the Bolt app and serves it over HTTP or Socket Mode.

`start` returns at once: the HTTP server binds (retrying with back-off if the port is taken)
or the Socket Mode connection opens in a background task that retries with back-off while
Slack cannot be reached. `stop` closes the connection, lets acknowledged work finish (a few
seconds at most) and closes the HTTP session.

Every Web API client points at `slack.api_base_url` when it is set. The token sits on the
client (Bolt ignores an app-level token when a client is given). Bolt's request verification
(signature and the 5-minute timestamp window) stays on in HTTP mode.

With `slack.bot_token` set, that token serves everything (one workspace). Without it and with
`client_id` / `client_secret`, the app is installed through OAuth: `/slack/install` and
`/slack/oauth_redirect` are served over HTTP (in Socket Mode too, for those two paths only),
installs are kept through the `SlackInstallations` port the composition root hands over,
Bolt authorizes each request with its workspace's token, and `workspaces.ManyWorkspaces`
picks the token for outbox messages. Uninstalling, or revoking the bot token, deletes the
workspace's installation.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.oauth.state_store.stateless import StatelessOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.directory import SlackDirectory
from adapters.slack.listeners import Background, Gate, Listeners
from adapters.slack.manifest import BOT_SCOPES, EVENTS_PATH, INSTALL_PATH, REDIRECT_PATH
from adapters.slack.messenger import SlackMessenger
from adapters.slack.replies import Replier
from adapters.slack.workspaces import (
    BoltInstallationStore,
    ManyWorkspaces,
    OneWorkspace,
    Router,
    install_key,
)
from bot import metrics
from bot.config import SlackSettings
from bot.service.api import Core
from bot.service.ports import SlackInstallations

log = logging.getLogger(__name__)

SLACK_API = "https://slack.com/api/"
HEALTH_PATH = "/healthz"
STATE_SECONDS = 600  # how long an OAuth `state` (one install attempt) stays valid
FIRST_PAUSE = 1.0
MAX_PAUSE = 300.0
DRAIN_SECONDS = 5.0
TIMEOUT = 15.0  # seconds for a Web API call
QUICK_TIMEOUT = 5.0
#: The SDKs log request and response bodies at DEBUG: user ids next to what people wrote.
SDK_LOGGERS = ("slack_bolt", "slack_sdk", "adapters.slack.sdk")


#: Calls that post something. Slack sometimes carries one out and still answers 500, so
#: after a 5xx they are not sent again blind: the outbox's next attempt looks for the
#: message (by its metadata) before it posts.
POSTING_METHODS = frozenset({"chat.postMessage", "chat.postEphemeral", "chat.scheduleMessage"})


def retry_handlers(*, rate_limit_retries: int = 2) -> list[AsyncRetryHandler]:
    """slack_sdk's handlers: 429 (sleeps Retry-After), 500/503 except for posts, and failed
    connects (nothing was sent, so a retry cannot duplicate anything)."""
    from aiohttp import ClientConnectorError

    return [
        _CountedRateLimitRetryHandler(max_retry_count=rate_limit_retries),
        _ServerErrorRetryHandler(max_retry_count=2),
        AsyncConnectionErrorRetryHandler(max_retry_count=2, error_types=[ClientConnectorError]),
    ]


class _ServerErrorRetryHandler(AsyncServerErrorRetryHandler):
    """slack_sdk's 500/503 handler, for every call but those that post."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:
        if request.url.rsplit("/", 1)[-1] in POSTING_METHODS:
            return False
        return await super()._can_retry_async(state=state, request=request, response=response,
                                              error=error)


class _CountedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (it sleeps `Retry-After`), with the wait counted."""

    async def prepare_for_next_attempt_async(self, **kwargs: Any) -> None:
        started = time.monotonic()
        try:
            await super().prepare_for_next_attempt_async(**kwargs)
        finally:
            metrics.rate_limited("slack", time.monotonic() - started)


class SlackPlatform:
    name = "slack"
    exclusive = False  # any instance may answer Slack's requests

    def __init__(self, settings: SlackSettings, *,
                 installations: SlackInstallations | None = None) -> None:
        self.settings = settings
        self.installations = installations
        self.workspaces: ManyWorkspaces | None = None
        self.messenger = SlackMessenger()
        self.directory = SlackDirectory()
        self.messenger.names = self.directory.name
        self.background = Background()
        self.app: AsyncApp | None = None
        self.listeners: Listeners | None = None
        self._session: aiohttp.ClientSession | None = None
        self._quick_session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._connector: asyncio.Task[None] | None = None
        self._oauth_server: asyncio.Task[None] | None = None
        self._bolt_store: BoltInstallationStore
        self._core: Core | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ building

    @property
    def api_url(self) -> str:
        return self.settings.api_base_url or SLACK_API

    def _secret(self, name: str) -> str | None:
        value = getattr(self.settings, name)
        return value.get_secret_value() if value is not None else None

    def web_client(self, token: str | None, *, rate_limit_retries: int = 2,
                   session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
        # With a session of its own, slack_sdk ignores `timeout`: the session's applies.
        return AsyncWebClient(
            token=token, base_url=self.api_url, session=session or self._session,
            logger=logging.getLogger("adapters.slack.sdk"),
            retry_handlers=retry_handlers(rate_limit_retries=rate_limit_retries))

    def use_installations(self, installations: SlackInstallations) -> None:
        """Where OAuth installs are kept (the composition root's database)."""
        if self.installations is None:
            self.installations = installations

    @property
    def oauth(self) -> bool:
        """Installed through OAuth (no single bot token)."""
        return self._secret("bot_token") is None and self.settings.oauth

    def build_app(self, core: Core) -> AsyncApp:
        """The Bolt app with every listener, its clients aimed at `api_base_url`."""
        for name in SDK_LOGGERS:
            logging.getLogger(name).setLevel(max(logging.WARNING,
                                                 logging.getLogger(name).level))
        token = self._secret("bot_token")
        client = self.web_client(token)
        admins = lambda: frozenset(  # noqa: E731 - read at each alert: the policy may change
            (a.tenant, a.user.id) for a in core.policy.admins if a.user.platform == "slack")
        options: dict[str, Any] = {}
        clients: Router
        if self.oauth:
            assert self.installations is not None
            workspaces = ManyWorkspaces(self.installations, self.web_client)
            self.workspaces = clients = workspaces
            self.messenger.bind(workspaces, admins)
            self.directory.bind(workspaces.sibling(lambda t: self.web_client(
                t, rate_limit_retries=1, session=self._quick_session)))
            options = self._oauth_options(client, workspaces)
        else:
            clients = OneWorkspace(client)
            self.messenger.bind(client, admins)
            self.directory.bind(self.web_client(token, rate_limit_retries=1,
                                                session=self._quick_session))
        app = AsyncApp(
            client=client, signing_secret=self._secret("signing_secret") or "",
            process_before_response=True, request_verification_enabled=True,
            logger=logging.getLogger("adapters.slack.sdk"), name="cohortbot", **options,
        )
        hint = (f"I am not a member of this channel yet, so I cannot post reminders here: "
                f"invite me with /invite @{core.policy.command_word}bot (or the app's name).")
        replier = Replier(self.messenger, self._session, invite_hint=hint)
        self.listeners = Listeners(core, replier, clients, self.background,
                                   revoked=self._revoked if self.oauth else None)
        self.listeners.register(app)
        return app

    def _oauth_options(self, client: AsyncWebClient, workspaces: ManyWorkspaces
                       ) -> dict[str, Any]:
        """Bolt's OAuth flow and per-workspace authorization over the installation port."""
        client_id, client_secret = self._secret("client_id"), self._secret("client_secret")
        assert client_id is not None and client_secret is not None
        store = BoltInstallationStore(workspaces.store, on_delete=workspaces.forget)
        self._bolt_store = store
        # Signed, self-contained states: any instance can check them, none stores them. The
        # state cookie Bolt sets ties each one to the browser that began the install.
        state_secret = self._secret("state_secret") or secrets.token_urlsafe(32)
        settings = AsyncOAuthSettings(
            client_id=client_id, client_secret=client_secret, scopes=list(BOT_SCOPES),
            user_scopes=[], install_path=INSTALL_PATH, redirect_uri_path=REDIRECT_PATH,
            installation_store=store, installation_store_bot_only=True,
            state_store=StatelessOAuthStateStore(expiration_seconds=STATE_SECONDS,
                                                 signing_secret=state_secret),
            state_expiration_seconds=STATE_SECONDS,
            logger=logging.getLogger("adapters.slack.sdk"))
        # Bot-only lookups, and auth.test once per token rather than on every request.
        authorize = AsyncInstallationStoreAuthorize(
            installation_store=store, client_id=client_id, client_secret=client_secret,
            bot_only=True, cache_enabled=True, client=client,
            logger=logging.getLogger("adapters.slack.sdk"))
        return {"oauth_settings": settings, "installation_store": store,
                "installation_store_bot_only": True, "authorize": authorize}

    async def _revoked(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """`app_uninstalled`, or `tokens_revoked`: the workspace's installation goes."""
        enterprise_id, team_id = install_key(context)
        where = team_id or enterprise_id
        kind = event.get("type")
        if kind == "tokens_revoked" and not (event.get("tokens") or {}).get("bot"):
            log.info("slack: user tokens were revoked in workspace %s; the bot stays", where)
            return
        await self._bolt_store.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)
        log.warning("slack: %s in workspace %s: its installation is deleted, and nothing is "
                    "sent there until the app is installed again", kind, where)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, core: Core) -> None:
        self._core = core
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        # Profile lookups run inside a command: they give up sooner.
        self._quick_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=QUICK_TIMEOUT))
        if self._secret("bot_token") is None and self.installations is None:
            log.error("slack: OAuth installs need a place to keep them, and none was given; "
                      "set slack.bot_token or run the bot with `cohortbot run`. Slack is not "
                      "started.")
            return
        if self._secret("bot_token") is not None and self.settings.oauth:
            log.warning("slack: slack.bot_token is set, so it serves one workspace and "
                        "slack.client_id / client_secret are not used")
        self.app = self.build_app(core)
        loop = asyncio.get_running_loop()
        if self.settings.mode == "http":
            self._connector = loop.create_task(self._serve_http())
        else:
            if self.oauth:  # the install pages still need HTTP
                self._oauth_server = loop.create_task(self._serve_http())
            self._connector = loop.create_task(self._connect_socket())

    async def stop(self) -> None:
        for task in (self._connector, self._oauth_server):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._connector = self._oauth_server = None
        if self._socket is not None:
            try:
                await _close(self._socket)
            except Exception as e:  # noqa: BLE001 - closing is best effort, logged
                log.warning("slack: closing the socket failed (%s)", type(e).__name__)
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.background.drain(DRAIN_SECONDS)
        for session in (self._session, self._quick_session):
            if session is not None:
                await session.close()
        self._session = self._quick_session = None
        log.info("slack: stopped")

    async def health(self) -> str | None:
        if self.app is None:
            return "not started (see the log)"
        if self.settings.mode == "http":
            return None if self._runner is not None and self.port else "not listening"
        if self._socket is None or not await self._socket.client.is_connected():
            return "socket mode not connected"
        return None

    async def _serve_http(self) -> None:
        web_app = web.Application()
        routes = [web.get(HEALTH_PATH, self._health)]
        if self.settings.mode == "http":
            routes.append(web.post(EVENTS_PATH, self._events))
        if self.oauth:
            routes += [web.get(INSTALL_PATH, self._install), web.get(REDIRECT_PATH, self._install)]
        web_app.add_routes(routes)
        runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        pause = FIRST_PAUSE
        while True:
            try:
                site = web.TCPSite(runner, self.settings.http_host, self.settings.http_port)
                await site.start()
                break
            except OSError as e:
                log.error("slack: cannot listen on %s:%s (%s); retrying in %.0f s",
                          self.settings.http_host, self.settings.http_port, e.strerror, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.settings.http_port
        log.info("slack: listening for HTTP requests on %s:%s%s", self.settings.http_host,
                 self.port, EVENTS_PATH if self.settings.mode == "http" else INSTALL_PATH)

    async def _events(self, request: web.Request) -> web.Response:
        assert self.app is not None
        gate = self.background.gate
        gate.enter()
        try:
            bolt_request = await to_bolt_request(request)
            response = await self.app.async_dispatch(bolt_request)
            return await to_aiohttp_response(response)
        finally:
            gate.leave()

    async def _install(self, request: web.Request) -> web.Response:
        """`/slack/install` (the install page, a new state) and `/slack/oauth_redirect`
        (Slack sends the installer back with a code: exchange it, keep the install)."""
        assert self.app is not None and self.app.oauth_flow is not None
        flow = self.app.oauth_flow
        bolt_request = await to_bolt_request(request)
        if request.path == INSTALL_PATH:
            response = await flow.handle_installation(bolt_request)
        else:
            response = await flow.handle_callback(bolt_request)
        return await to_aiohttp_response(response)

    async def _health(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"ok": True, "platform": "slack", "mode": self.settings.mode,
                                "pending": self.background.pending}
        return web.json_response(body)

    async def _connect_socket(self) -> None:
        assert self.app is not None
        app_token = self._secret("app_token")
        if app_token is None:
            log.error("slack: socket mode needs slack.app_token; Slack is not started")
            return
        pause = FIRST_PAUSE
        while True:
            handler: Any = _GatedSocketModeHandler(
                self.background.gate,
                self.app, app_token, logger=logging.getLogger("adapters.slack.sdk"),
                web_client=self.web_client(None))
            try:
                await handler.connect_async()
            except asyncio.CancelledError:
                await _close(handler)
                raise
            except Exception as e:  # noqa: BLE001 - any failure to connect is retried, logged
                await _close(handler)
                log.warning("slack: socket mode connection failed (%s); retrying in %.0f s",
                            _reason(e), pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)
                continue
            self._socket = handler
            log.info("slack: connected in socket mode")
            return


def _reason(e: BaseException) -> str:
    response = getattr(e, "response", None)
    if response is not None:
        try:
            return str(response.get("error") or type(e).__name__)
        except (AttributeError, TypeError):
            return type(e).__name__
    return type(e).__name__


async def _close(handler: Any) -> None:
    """Close a Socket Mode handler (its client and websocket session)."""
    await handler.close_async()


class _GatedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, counting envelopes in flight for the ack-first gate."""

    def __init__(self, gate: Gate, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = gate

    async def handle(self, client: Any, req: Any) -> None:
        self._gate.enter()
        try:
            await super().handle(client, req)
        finally:
            self._gate.leave()
