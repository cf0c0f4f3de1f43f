"""Which bot token speaks for the bot where: one workspace, or many installed through OAuth.

- `OneWorkspace`: the configured bot token, everywhere (the default).
- `ManyWorkspaces`: each workspace's own installation, from the `SlackInstallations` port.
  Every message, lookup and reply carries its tenant (`adapters.slack.tenants`), which names
  its workspace, so the token is that workspace's installation's: a person seen in two
  workspaces is reached through each one's own. A workspace that has no installation (it
  uninstalled the app) is a permanent `DeliveryError` (`not_installed`).
- `BoltInstallationStore`: Bolt's installation store interface over the same port, so the
  OAuth flow saves installs and Bolt's authorization finds each request's bot token.

Tokens are secrets: nothing here logs one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.tenants import SINGLE, Key, key_of, tenant_of
from bot.service.ports import DeliveryError, SlackInstallation, SlackInstallations

log = logging.getLogger(__name__)

#: How long a workspace's client (and so its token) is reused before the store is asked
#: again: an install or uninstall handled by another instance is seen within this time.
CLIENT_TTL = 60.0
NOT_INSTALLED = "not_installed"


class Router(Protocol):
    async def client_for(self, tenant: str | None) -> AsyncWebClient:
        """The client whose token speaks in `tenant` (a workspace). Raises DeliveryError
        when no token does."""
        ...

    def tenant(self, context: Any) -> str:
        """The tenant a Bolt request belongs to."""
        ...


class OneWorkspace:
    """One bot token for every place: one workspace, one tenant."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def client_for(self, tenant: str | None) -> AsyncWebClient:
        return self.client

    def tenant(self, context: Any) -> str:
        return SINGLE


class ManyWorkspaces:
    """Each workspace's bot token, found by the tenant that names the workspace."""

    def __init__(self, store: SlackInstallations, make_client: Callable[[str], AsyncWebClient],
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._make_client = make_client
        self._clock = clock
        self._clients: dict[Key, tuple[float, AsyncWebClient]] = {}

    def sibling(self, make_client: Callable[[str], AsyncWebClient]) -> ManyWorkspaces:
        """The same installations, with clients made another way (e.g. quicker timeouts)."""
        return ManyWorkspaces(self.store, make_client, clock=self._clock)

    def tenant(self, context: Any) -> str:
        """The workspace a request came from (on Enterprise Grid, with its organisation).
        A request that names none (Bolt's authorization lets none through) gets the bare
        platform: no cohort is there, and no token speaks for it."""
        enterprise, team = getattr(context, "enterprise_id", None), getattr(
            context, "team_id", None)
        return tenant_of(enterprise, team) if enterprise or team else SINGLE

    def forget(self, key: Key) -> None:
        """The workspace uninstalled the app (or its token was revoked)."""
        self._clients.pop(key, None)
        for cached in [k for k in self._clients if k[0] == key[0] and key[1] is None]:
            self._clients.pop(cached, None)  # an organisation-wide install went

    async def client_for(self, tenant: str | None) -> AsyncWebClient:
        key = key_of(tenant)
        if key is None:
            raise DeliveryError(NOT_INSTALLED, permanent=True)
        hit = self._clients.get(key)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        installation = await self.store.find(enterprise_id=key[0], team_id=key[1])
        if installation is None and key[0] is not None and key[1] is not None:
            # A workspace of an organisation where the app was installed org-wide.
            installation = await self.store.find(enterprise_id=key[0], team_id=None)
        if installation is None:
            raise DeliveryError(NOT_INSTALLED, permanent=True)
        if hit is not None and hit[1].token == installation.bot_token:
            client = hit[1]
        else:
            client = self._make_client(installation.bot_token)
        self._clients[key] = (self._clock() + CLIENT_TTL, client)
        return client


class BoltInstallationStore(AsyncInstallationStore):
    """Bolt's view of the `SlackInstallations` port (bot installs only: no user tokens)."""

    def __init__(self, store: SlackInstallations, *,
                 on_delete: Callable[[Key], None] | None = None) -> None:
        self.store = store
        self._on_delete = on_delete or (lambda key: None)

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        if not installation.bot_token:
            raise ValueError("an installation without a bot token (user scopes only)")
        team_id = None if installation.is_enterprise_install else installation.team_id
        scopes = installation.bot_scopes or []
        await self.store.save(SlackInstallation(
            enterprise_id=installation.enterprise_id, team_id=team_id,
            bot_token=installation.bot_token, bot_user_id=installation.bot_user_id or "",
            bot_id=installation.bot_id or "", installer_user_id=installation.user_id or "",
            scopes=tuple(scopes if isinstance(scopes, list) else str(scopes).split(",")),
            installed_at=datetime.fromtimestamp(installation.installed_at, UTC)))
        self._on_delete((installation.enterprise_id, team_id))  # drop a cached old token
        log.info("slack: installed in workspace %s", installation.team_id
                 or installation.enterprise_id)

    async def async_save_bot(self, bot: Bot) -> None:
        raise NotImplementedError("bot tokens are saved with their installation")

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        found = await self._find(enterprise_id, team_id, is_enterprise_install)
        return _bot(found) if found is not None else None

    async def async_find_installation(self, *, enterprise_id: str | None,
                                      team_id: str | None, user_id: str | None = None,
                                      is_enterprise_install: bool | None = False
                                      ) -> Installation | None:
        found = await self._find(enterprise_id, team_id, is_enterprise_install)
        if found is None or (user_id is not None and user_id != found.installer_user_id):
            return None
        return Installation(
            user_id=found.installer_user_id, enterprise_id=found.enterprise_id,
            team_id=found.team_id, bot_token=found.bot_token, bot_id=found.bot_id,
            bot_user_id=found.bot_user_id, bot_scopes=list(found.scopes),
            is_enterprise_install=found.team_id is None and found.enterprise_id is not None,
            installed_at=found.installed_at.timestamp())

    async def async_delete_bot(self, *, enterprise_id: str | None,
                               team_id: str | None) -> None:
        await self._delete(enterprise_id, team_id)

    async def async_delete_installation(self, *, enterprise_id: str | None,
                                        team_id: str | None, user_id: str | None = None
                                        ) -> None:
        # Only the bot is installed: a user's own token (none is ever asked for) has nothing
        # to remove, and the bot stays.
        if user_id is None:
            await self._delete(enterprise_id, team_id)

    async def async_delete_all(self, *, enterprise_id: str | None,
                               team_id: str | None) -> None:
        await self._delete(enterprise_id, team_id)

    async def _find(self, enterprise_id: str | None, team_id: str | None,
                    is_enterprise_install: bool | None) -> SlackInstallation | None:
        if is_enterprise_install:
            return await self.store.find(enterprise_id=enterprise_id, team_id=None)
        found = await self.store.find(enterprise_id=enterprise_id, team_id=team_id)
        if found is None and enterprise_id is not None:
            # A workspace of an organisation where the app was installed org-wide.
            found = await self.store.find(enterprise_id=enterprise_id, team_id=None)
        return found

    async def _delete(self, enterprise_id: str | None, team_id: str | None) -> None:
        found = await self.store.delete(enterprise_id=enterprise_id, team_id=team_id)
        if not found and enterprise_id is not None and team_id is not None:
            found = await self.store.delete(enterprise_id=enterprise_id, team_id=None)
            team_id = None if found else team_id
        self._on_delete((enterprise_id, team_id))
        log.debug("slack: installation of workspace %s %s", team_id or enterprise_id,
                 "deleted" if found else "was already gone")


def _bot(found: SlackInstallation) -> Bot:
    return Bot(enterprise_id=found.enterprise_id, team_id=found.team_id,
               bot_token=found.bot_token, bot_id=found.bot_id, bot_user_id=found.bot_user_id,
               bot_scopes=list(found.scopes),
               is_enterprise_install=found.team_id is None and found.enterprise_id is not None,
               installed_at=found.installed_at.timestamp())


def install_key(context: Any) -> Key:
    """The (enterprise, team) a Bolt request's installation is keyed by."""
    if getattr(context, "is_enterprise_install", False):
        return (context.enterprise_id, None)
    return (context.enterprise_id, context.team_id)
