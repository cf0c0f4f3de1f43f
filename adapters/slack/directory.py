"""What Slack knows about a person: their time zone and whether they administer the
workspace, from `users.info`, cached for an hour (the core asks on every command).

Lookups fail soft: an unknown person or an unreachable Slack means "no zone" and "not a
workspace admin" (admins from the config are the core's business and need no lookup).
With several workspaces, a person is looked up with the token of the workspace they were
last seen in (`workspaces`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.workspaces import OneWorkspace, Router
from bot.domain.refs import ChannelRef, UserRef
from bot.service.ports import DeliveryError

log = logging.getLogger(__name__)

TTL = 3600.0
MISS_TTL = 60.0  # a failed lookup is retried after a minute, not on every command


class SlackDirectory:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._router: Router | None = None
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def bind(self, client: AsyncWebClient | Router) -> None:
        """The one bot token's client, or a router that picks each person's workspace."""
        self._router = OneWorkspace(client) if isinstance(client, AsyncWebClient) else client

    def forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    async def _user(self, user: UserRef) -> dict[str, Any] | None:
        if user.platform != "slack" or self._router is None:
            return None
        hit = self._cache.get(user.id)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        lock = self._locks.setdefault(user.id, asyncio.Lock())
        async with lock:  # one lookup per person at a time; the others use its answer
            hit = self._cache.get(user.id)
            if hit is not None and hit[0] > self._clock():
                return hit[1]
            return await self._fetch(user.id)

    async def _fetch(self, user_id: str) -> dict[str, Any] | None:
        assert self._router is not None
        try:
            client = await self._router.client_for(user_id)
            resp = await client.users_info(user=user_id)
        except (SlackApiError, TimeoutError, aiohttp.ClientError, DeliveryError) as e:
            reason = (e.response.get("error") if isinstance(e, SlackApiError)
                      else e.reason if isinstance(e, DeliveryError) else type(e).__name__)
            log.warning("slack: users.info failed (%s)", reason)
            self._cache[user_id] = (self._clock() + MISS_TTL, None)
            return None
        info = resp.get("user")
        info = info if isinstance(info, dict) else None
        self._cache[user_id] = (self._clock() + TTL, info)
        return info

    async def timezone(self, user: UserRef) -> str | None:
        info = await self._user(user)
        tz = info.get("tz") if info else None
        return tz if isinstance(tz, str) and tz else None

    async def is_admin(self, user: UserRef, channel: ChannelRef | None) -> bool:
        info = await self._user(user)
        if not info or info.get("deleted") or info.get("is_bot"):
            return False
        return bool(info.get("is_admin") or info.get("is_owner")
                    or info.get("is_primary_owner"))
