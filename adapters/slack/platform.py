"""Slack as a `Platform`: builds the Bolt app and serves it over HTTP or Socket Mode.

`start` returns at once: the HTTP server binds (retrying with back-off if the port is taken)
or the Socket Mode connection opens in a background task that retries with back-off while
Slack cannot be reached. `stop` closes the connection, lets acknowledged work finish (a few
seconds at most) and closes the HTTP session.

Every Web API client points at `slack.api_base_url` when it is set. The token sits on the
client (Bolt ignores an app-level token when a client is given). Bolt's request verification
(signature and the 5-minute timestamp window) stays on in HTTP mode.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.directory import SlackDirectory
from adapters.slack.listeners import Background, Gate, Listeners
from adapters.slack.messenger import SlackMessenger
from adapters.slack.replies import Replier
from bot.config import SlackSettings
from bot.service.api import Core

log = logging.getLogger(__name__)

SLACK_API = "https://slack.com/api/"
EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
FIRST_PAUSE = 1.0
MAX_PAUSE = 300.0
DRAIN_SECONDS = 5.0
TIMEOUT = 15.0  # seconds for a Web API call
QUICK_TIMEOUT = 5.0
#: The SDKs log request and response bodies at DEBUG: user ids next to what people wrote.
SDK_LOGGERS = ("slack_bolt", "slack_sdk", "adapters.slack.sdk")


def retry_handlers(*, rate_limit_retries: int = 2) -> list[AsyncRetryHandler]:
    """slack_sdk's handlers: 429 (sleeps Retry-After), 500/503, and failed connects (nothing
    was sent, so a retry cannot duplicate anything)."""
    from aiohttp import ClientConnectorError

    return [
        AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        AsyncServerErrorRetryHandler(max_retry_count=2),
        AsyncConnectionErrorRetryHandler(max_retry_count=2, error_types=[ClientConnectorError]),
    ]


class SlackPlatform:
    name = "slack"

    def __init__(self, settings: SlackSettings) -> None:
        self.settings = settings
        self.messenger = SlackMessenger()
        self.directory = SlackDirectory()
        self.background = Background()
        self.app: AsyncApp | None = None
        self.listeners: Listeners | None = None
        self._session: aiohttp.ClientSession | None = None
        self._quick_session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._connector: asyncio.Task[None] | None = None
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

    def build_app(self, core: Core) -> AsyncApp:
        """The Bolt app with every listener, its clients aimed at `api_base_url`."""
        for name in SDK_LOGGERS:
            logging.getLogger(name).setLevel(max(logging.WARNING,
                                                 logging.getLogger(name).level))
        token = self._secret("bot_token")
        client = self.web_client(token)
        self.messenger.bind(client, lambda: frozenset(
            a.id for a in core.policy.admins if a.platform == "slack"))
        self.directory.bind(self.web_client(token, rate_limit_retries=1,
                                            session=self._quick_session))
        app = AsyncApp(
            client=client, signing_secret=self._secret("signing_secret") or "",
            process_before_response=True, request_verification_enabled=True,
            logger=logging.getLogger("adapters.slack.sdk"), name="cohortbot",
        )
        hint = (f"I am not a member of this channel yet, so I cannot post reminders here: "
                f"invite me with /invite @{core.policy.command_word}bot (or the app's name).")
        replier = Replier(self.messenger, self._session, invite_hint=hint)
        self.listeners = Listeners(core, replier, client, self.background)
        self.listeners.register(app)
        return app

    # ------------------------------------------------------------------ lifecycle

    async def start(self, core: Core) -> None:
        self._core = core
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        # Profile lookups run inside a command: they give up sooner.
        self._quick_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=QUICK_TIMEOUT))
        if self._secret("bot_token") is None:
            log.error("slack: OAuth installs without a bot token are not supported yet; set "
                      "slack.bot_token. Slack is not started.")
            return
        self.app = self.build_app(core)
        if self.settings.mode == "http":
            self._connector = asyncio.get_running_loop().create_task(self._serve_http())
        else:
            self._connector = asyncio.get_running_loop().create_task(self._connect_socket())

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
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

    async def _serve_http(self) -> None:
        web_app = web.Application()
        web_app.add_routes([web.post(EVENTS_PATH, self._events),
                            web.get(HEALTH_PATH, self._health)])
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
                 self.port, EVENTS_PATH)

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
