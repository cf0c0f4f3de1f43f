"""`cohortbot check-config --live` for Matrix: does the homeserver answer, and is the bot's
access token accepted (`whoami`)?

It never logs in (a login would make a new device): the token is the saved login's
(`session.json` in the store, see `adapters.matrix.account.saved_login`), else
`matrix.access_token`. One request each, a short timeout, answers of one line that never
hold the token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from adapters.matrix.account import saved_login
from bot.config import MatrixSettings

TIMEOUT = aiohttp.ClientTimeout(total=10)


async def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session, \
            session.get(url, headers=headers) as resp:
        try:
            body = await resp.json(content_type=None)
        except ValueError:
            body = None
        return resp.status, body


async def check_homeserver(homeserver: str) -> tuple[bool, str]:
    """(answers as a Matrix homeserver, which spec versions or why not)."""
    try:
        status, body = await _get(f"{homeserver}/_matrix/client/versions")
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return False, f"cannot reach {homeserver} ({type(e).__name__})"
    versions = body.get("versions") if isinstance(body, dict) else None
    if status != 200 or not isinstance(versions, list) or not versions:
        return False, f"{homeserver} is not a Matrix homeserver (HTTP {status} on " \
                      "/_matrix/client/versions)"
    return True, f"{homeserver}, Matrix {versions[-1]}"


async def check_account(settings: MatrixSettings) -> tuple[bool | None, str]:
    """(True: the token is this account's; False: refused or someone else's; None: never
    logged in, nothing to try), with one line saying which."""
    assert settings.homeserver is not None
    session = Path(settings.store_path) / "session.json"
    try:
        saved = saved_login(settings)
    except (OSError, ValueError, KeyError):
        return False, f"{session} cannot be read (not the bot's saved login)"
    if saved is not None:
        token, source = saved["access_token"], f"the saved login in {session}"
    elif settings.access_token is not None:
        token, source = settings.access_token.get_secret_value(), "matrix.access_token"
    else:
        return None, (f"never logged in: no saved login in {session} and no "
                      "matrix.access_token (the first `cohortbot run` logs in with "
                      "matrix.password)")
    try:
        status, body = await _get(f"{settings.homeserver}/_matrix/client/v3/account/whoami",
                                  token)
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return False, f"cannot reach {settings.homeserver} ({type(e).__name__})"
    if status != 200 or not isinstance(body, dict):
        code = body.get("errcode") if isinstance(body, dict) else None
        return False, f"the access token from {source} was refused ({code or f'HTTP {status}'})"
    user, device = body.get("user_id"), body.get("device_id")
    if user != settings.user_id:
        return False, (f"the access token from {source} belongs to {user}, not "
                       f"{settings.user_id}")
    return True, f"{user}, device {device}, token from {source}"
