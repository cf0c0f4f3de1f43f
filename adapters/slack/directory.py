"""What Slack knows about a person: their time zone and whether they administer the
workspace, from `users.info`, cached for an hour (the core asks on every command).

A person is looked up in a tenant, i.e. one workspace, with that workspace's token: the same
user id in two workspaces is two people. A workspace admin or owner is an admin only of their
own workspace: someone from another workspace (a Slack Connect guest, whatever their rights at
home) is none here.

Lookups fail soft: an unknown person or an unreachable Slack means "no zone" and "not a
workspace admin" (admins from the config are the core's business and need no lookup).
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

from adapters.slack.tenants import Key, key_of
from adapters.slack.workspaces import OneWorkspace, Router
from bot.domain.refs import ChannelRef, UserRef
from bot.service.ports import DeliveryError

log = logging.getLogger(__name__)

TTL = 3600.0
MISS_TTL = 60.0  # a failed lookup is retried after a minute, not on every command
_Errors = (SlackApiError, TimeoutError, aiohttp.ClientError, DeliveryError)


class SlackDirectory:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._router: Router | None = None
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any] | None]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._home: dict[str, Key] = {}  # tenant → its workspace, when the tenant is no key

    def bind(self, client: AsyncWebClient | Router) -> None:
        """The one bot token's client, or a router that picks each workspace's token."""
        self._router = OneWorkspace(client) if isinstance(client, AsyncWebClient) else client

    async def _user(self, user: UserRef, tenant: str) -> dict[str, Any] | None:
        if user.platform != "slack" or self._router is None:
            return None
        key = (tenant, user.id)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one lookup per person at a time; the others use its answer
            hit = self._cache.get(key)
            if hit is not None and hit[0] > self._clock():
                return hit[1]
            return await self._fetch(key)

    async def _fetch(self, key: tuple[str, str]) -> dict[str, Any] | None:
        assert self._router is not None
        try:
            client = await self._router.client_for(key[0])
            resp = await client.users_info(user=key[1])
        except _Errors as e:
            log.warning("slack: users.info failed (%s)", _reason(e))
            self._cache[key] = (self._clock() + MISS_TTL, None)
            return None
        info = resp.get("user")
        info = info if isinstance(info, dict) else None
        self._cache[key] = (self._clock() + TTL, info)
        return info

    async def _workspace(self, tenant: str) -> Key | None:
        """The (enterprise, team) of a tenant: named by it, or (one bot token) the token's."""
        key = key_of(tenant)
        if key is not None or self._router is None:
            return key
        if tenant not in self._home:
            try:
                resp = await (await self._router.client_for(tenant)).auth_test()
            except _Errors as e:
                log.warning("slack: auth.test failed (%s)", _reason(e))
                return None
            self._home[tenant] = (resp.get("enterprise_id") or None, resp.get("team_id"))
        return self._home[tenant]

    async def timezone(self, user: UserRef, tenant: str) -> str | None:
        info = await self._user(user, tenant)
        tz = info.get("tz") if info else None
        return tz if isinstance(tz, str) and tz else None

    async def name(self, user: UserRef, tenant: str | None) -> str | None:
        """The name Slack shows for `user` (display name, else full name), if known."""
        info = await self._user(user, tenant or "slack")
        profile = info.get("profile") if info else None
        for found in ((profile or {}).get("display_name"), (profile or {}).get("real_name"),
                      (info or {}).get("real_name"), (info or {}).get("name")):
            if isinstance(found, str) and found.strip():
                return found.strip()
        return None

    async def is_admin(self, user: UserRef, place: ChannelRef | None, tenant: str) -> bool:
        # A workspace's admins rule every place of it; the place itself does not matter.
        info = await self._user(user, tenant)
        if not info or info.get("deleted") or info.get("is_bot"):
            return False
        if not (info.get("is_admin") or info.get("is_owner") or info.get("is_primary_owner")):
            return False
        return _of_workspace(info, await self._workspace(tenant))


def _of_workspace(info: dict[str, Any], workspace: Key | None) -> bool:
    """Whether the person's own workspace is this one (their admin rights are for it)."""
    if workspace is None:
        return False
    enterprise, team = workspace
    if team is not None and info.get("team_id") == team:
        return True
    grid = info.get("enterprise_user")
    return (enterprise is not None and isinstance(grid, dict)
            and grid.get("enterprise_id") == enterprise
            and bool(grid.get("is_admin") or grid.get("is_owner")))


def _reason(e: Exception) -> str:
    if isinstance(e, SlackApiError):
        return str(e.response.get("error"))
    return e.reason if isinstance(e, DeliveryError) else type(e).__name__
