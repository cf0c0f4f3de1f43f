"""Operator tasks on the bot's Matrix account, run from the command line
(`cohortbot matrix …`), never while chatting."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, WhoamiResponse

from adapters.matrix import cross_signing as xs
from adapters.matrix.store import store_keys
from bot.config import MatrixSettings
from bot.service.ports import CrossSigningKeys, SealedCrossSigning


class AccountError(Exception):
    """One line for the operator, no secret in it."""


def saved_login(settings: MatrixSettings) -> dict[str, str] | None:
    """The bot's saved login (`session.json` in the store), if it is for this account."""
    path = Path(settings.store_path) / "session.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if data.get("user_id") != settings.user_id or data.get("homeserver") != \
            settings.homeserver:
        return None  # another account or server
    return {k: str(data[k]) for k in ("user_id", "device_id", "access_token")}


async def reset_cross_signing(settings: MatrixSettings, keys: CrossSigningKeys,
                              password: str, now: datetime) -> str:
    """Give the account new cross-signing keys (replacing any it has: this takes its
    password), keep them in the database, and sign the bot's device with them. Returns a
    one-line report."""
    assert settings.homeserver and settings.user_id and settings.store_key
    client = AsyncClient(settings.homeserver, settings.user_id,
                         config=AsyncClientConfig(encryption_enabled=False))
    try:
        device = await _log_in(client, settings)
        identity = xs.Identity.generate()
        try:
            await xs.publish(client, identity, password)
        except xs.CrossSigningRefused as e:
            raise AccountError(str(e)) from None
        sealer = xs.Sealer(store_keys(settings.store_key.get_secret_value()))
        await keys.replace(SealedCrossSigning(
            user_id=settings.user_id, master_key=identity.master_public,
            sealed_keys=sealer.seal(identity)), now)
        answer = await xs.query(client, [settings.user_id])
        device_keys = (answer.get("device_keys") or {}).get(settings.user_id, {}).get(device)
        if device_keys is None:
            return (f"new cross-signing keys for {settings.user_id}; the bot signs its "
                    f"device with them when it starts")
        await xs.sign_device(client, identity, device_keys)
        return f"new cross-signing keys for {settings.user_id}; device {device} signed"
    except (OSError, TimeoutError) as e:
        raise AccountError(f"the homeserver cannot be reached ({type(e).__name__})") from None
    finally:
        await client.close()


async def _log_in(client: AsyncClient, settings: MatrixSettings) -> str:
    """Use the bot's own login (never a new one: no device appears); its device id."""
    saved = saved_login(settings)
    if saved is not None:
        client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
        return saved["device_id"]
    if settings.access_token is None:
        raise AccountError("the bot has not logged in yet: start it once (cohortbot run), "
                           "then run this again")
    client.access_token = settings.access_token.get_secret_value()
    who = await client.whoami()
    if not isinstance(who, WhoamiResponse) or not who.device_id:
        raise AccountError("the homeserver refused matrix.access_token")
    client.restore_login(who.user_id, who.device_id, client.access_token)
    return str(who.device_id)
