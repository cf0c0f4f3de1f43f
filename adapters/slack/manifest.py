"""The Slack app manifest that `cohortbot slack-manifest` prints (YAML).

Paste it into "Create New App → From an app manifest". It asks for the fewest bot scopes the
adapter uses; docs/slack.md says what each one is for. In HTTP mode every request URL is
`<url>/slack/events`; in Socket Mode there is no URL and `socket_mode_enabled` is on. With
OAuth installs (`slack.client_id` set) the manifest also lists `<url>/slack/oauth_redirect`,
where Slack sends an installer back.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"

#: The bot scopes, each with the reason it is needed (docs/slack.md repeats these).
BOT_SCOPES: dict[str, str] = {
    "commands": "the /cohort slash command",
    "chat:write": "post reminders, announcements, questions and replies",
    "im:write": "open a direct conversation for check-ins and reminders by DM",
    "im:history": "receive commands sent to the bot in its direct conversation, and check "
                  "it for an earlier copy before resending a message whose post timed out",
    "users:read": "read a member's time zone and whether they administer the workspace",
    "channels:history": "check a public channel for an earlier copy before resending a "
                        "message whose post timed out (never posts twice)",
    "groups:history": "the same check in a private channel the bot was invited to",
    "channels:read": "hear who leaves or joins a public cohort channel (member_left_channel, "
                     "member_joined_channel)",
    "groups:read": "the same in a private channel the bot was invited to",
}
BOT_EVENTS: dict[str, str] = {
    "app_home_opened": "show the App Home: your next session, your role, your actions",
    "message.im": "commands sent to the bot in a direct message",
    "member_left_channel": "a member left or was removed from the cohort's channel: their "
                           "membership waits until they are back",
    "member_joined_channel": "a member is back in the cohort's channel",
    "app_uninstalled": "log it; with OAuth installs, delete the workspace's installation",
    "tokens_revoked": "log it; with OAuth installs, delete the workspace's installation",
}


def check_public_url(url: str) -> str:
    """The public base URL Slack calls, without a trailing slash; ValueError (a one-line
    reason) unless it is an absolute https:// URL with a host and no query or fragment.
    Slack accepts only HTTPS request and redirect URLs."""
    text = url.strip()
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError(f"{url!r} is not a URL (e.g. https://bot.example.org)") from None
    if parts.scheme.lower() != "https":
        if parts.scheme.lower() == "http":
            raise ValueError(f"{url!r} is not HTTPS: Slack calls only https:// URLs")
        raise ValueError(f"{url!r} is not an https:// URL (e.g. https://bot.example.org)")
    if not parts.hostname or any(c.isspace() for c in text):
        raise ValueError(f"{url!r} has no valid host (e.g. https://bot.example.org)")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} must have no query (?…) or fragment (#…)")
    return text.rstrip("/")


def manifest(*, mode: str, url: str | None, command: str,
             oauth: bool = False) -> dict[str, Any]:
    """`oauth`: installs through OAuth (`slack.client_id` set); needs `url` in either mode,
    for the redirect URL."""
    if mode not in ("socket", "http"):
        raise ValueError(f"mode must be 'socket' or 'http', not {mode!r}")
    if mode == "http" and not url:
        raise ValueError("http mode needs the public URL Slack sends requests to")
    if oauth and not url:
        raise ValueError("OAuth installs need the public URL Slack sends installers back to")
    base = check_public_url(url) if url else None
    endpoint = base + EVENTS_PATH if mode == "http" and base else None
    slash: dict[str, Any] = {
        "command": f"/{command}",
        "description": "Your peer-mentoring cohort: sessions, roles, actions, questions",
        "usage_hint": "help | next | ask | checkin | action add <text>",
        "should_escape": True,
    }
    events: dict[str, Any] = {"bot_events": list(BOT_EVENTS)}
    interactivity: dict[str, Any] = {"is_enabled": True}
    if endpoint:
        slash["url"] = endpoint
        events["request_url"] = endpoint
        interactivity["request_url"] = endpoint
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": "cohortbot",
            "description": "Keeps peer-mentoring cohorts running: reminders, rotations, "
                           "check-ins and anonymous questions.",
            "background_color": "#2e3b4e",
        },
        "features": {
            "app_home": {"home_tab_enabled": True, "messages_tab_enabled": True,
                         "messages_tab_read_only_enabled": False},
            "bot_user": {"display_name": "cohortbot", "always_online": True},
            "slash_commands": [slash],
        },
        "oauth_config": {
            **({"redirect_urls": [f"{base}{REDIRECT_PATH}"]} if oauth and base else {}),
            "scopes": {"bot": list(BOT_SCOPES)},
        },
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": mode == "socket",
            "token_rotation_enabled": False,
        },
    }


def render_manifest(*, mode: str, url: str | None, command: str, oauth: bool = False) -> str:
    return to_yaml(manifest(mode=mode, url=url, command=command, oauth=oauth))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(str(value))


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts, lists and scalars (all a manifest needs)."""
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
            else:
                out.append(f"{pad}{key}: {_scalar(item) if item != [] else '[]'}\n")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                body = to_yaml(item, indent + 2)
                out.append(f"{pad}- {body[indent + 2:]}")
            else:
                out.append(f"{pad}- {_scalar(item)}\n")
    else:
        out.append(f"{pad}{_scalar(value)}\n")
    return "".join(out)
