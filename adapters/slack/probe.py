"""`cohortbot check-config --live` for Slack: is the bot token accepted (`auth.test`), and,
for Socket Mode, the app-level token (`apps.connections.open`, as the bot does at start)?

One call, no retry, a short timeout; the answer is one line that never holds the token.
"""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.platform import SLACK_API

TIMEOUT = 10


async def check_bot_token(token: str, base_url: str | None) -> tuple[bool, str]:
    """(accepted, what Slack said: the bot and workspace, or why not)."""
    client = AsyncWebClient(token=token, base_url=base_url or SLACK_API, timeout=TIMEOUT)
    try:
        resp = await client.auth_test()
    except SlackApiError as e:
        error = e.response.get("error") if isinstance(e.response.data, dict) else None
        return False, f"Slack refused the bot token ({error or e.response.status_code})"
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return False, f"cannot reach Slack at {base_url or SLACK_API} ({type(e).__name__})"
    return True, (f"bot {resp.get('user') or resp.get('user_id')} in workspace "
                  f"{resp.get('team')} ({resp.get('team_id')})")


async def check_app_token(token: str, base_url: str | None) -> tuple[bool, str]:
    """(accepted, why not): Socket Mode's app-level token asks Slack for a connection URL,
    which is left unused (it expires)."""
    client = AsyncWebClient(token=token, base_url=base_url or SLACK_API, timeout=TIMEOUT)
    try:
        await client.apps_connections_open(app_token=token)
    except SlackApiError as e:
        error = e.response.get("error") if isinstance(e.response.data, dict) else None
        return False, f"Slack refused the app-level token ({error or e.response.status_code})"
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        return False, f"cannot reach Slack at {base_url or SLACK_API} ({type(e).__name__})"
    return True, "Socket Mode accepts the app-level token"
