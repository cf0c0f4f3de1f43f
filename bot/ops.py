"""`/healthz` and `/metrics` for operators, on their own port (`[ops]` in the config).

`/healthz` answers 200 only when the bot can do its work: the database answers, and every
enabled platform is connected and was not found down by the last send. Otherwise 503, with
the reason per component. `/metrics` is the Prometheus text format of `bot.metrics`, the
outbox gauges read from the database at each scrape.

Neither page ever shows user content or ids: only component names, fixed words and numbers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from bot import metrics
from bot.bootstrap import App
from bot.config import OpsSettings
from bot.db.uow import SqlUnitOfWork, storage_unavailable
from bot.service.ports import Platform

log = logging.getLogger(__name__)

CHECK_SECONDS = 2.0  # a check that takes longer counts as failed


class OpsServer:
    def __init__(self, settings: OpsSettings, app: App, platforms: Sequence[Platform], *,
                 leading: Callable[[], bool] = lambda: True) -> None:
        self._settings = settings
        self._app = app
        self._platforms = list(platforms)
        self._leading = leading
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    async def start(self) -> None:
        web_app = web.Application()
        web_app.add_routes([web.get("/healthz", self._healthz),
                            web.get("/metrics", self._metrics)])
        self._runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.host, self._settings.port)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self._settings.port
        log.info("ops: /healthz and /metrics on %s:%s", self._settings.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def checks(self) -> dict[str, str]:
        """Each component and "ok", or why it is not."""
        out = {"database": await self._database()}
        down = set(self._app.dispatcher.unreachable())
        for platform in self._platforms:
            if platform.exclusive and not self._leading():
                out[platform.name] = "ok"  # (standing by: another instance runs it)
                continue
            try:
                problem = await asyncio.wait_for(platform.health(), CHECK_SECONDS)
            except Exception as e:  # noqa: BLE001 - a check that fails is an answer
                problem = f"check failed ({type(e).__name__})"
            if problem is None and platform.name in down:
                problem = "unreachable on the last send"
            out[platform.name] = problem or "ok"
        return out

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(CHECK_SECONDS), self._app.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except TimeoutError:
            return "no answer"
        except Exception as e:  # noqa: BLE001 - any failure is the answer, reported as a word
            return "unreachable" if storage_unavailable(e) else "error"
        return "ok"

    async def _healthz(self, request: web.Request) -> web.Response:
        checks = await self.checks()
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": checks}
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(CHECK_SECONDS), self._uow() as uow:
                depth, oldest = await uow.outbox_backlog(self._app.clock.now())
            metrics.OUTBOX_DEPTH.set(depth)
            lag = (self._app.clock.now() - oldest).total_seconds() if oldest else 0.0
            metrics.OUTBOX_LAG.set(max(lag, 0.0))
        except Exception as e:  # noqa: BLE001 - the counters are still worth serving
            log.warning("ops: outbox figures unavailable (%s)", type(e).__name__)
        return web.Response(body=generate_latest(metrics.REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _uow(self) -> SqlUnitOfWork:
        return self._app.uow()
