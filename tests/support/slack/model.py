"""The state fake Slack workspaces keep: users, conversations, messages, views, tokens.

Everything here is plain data plus the rendering into the JSON shapes the Web API returns.
Each user and conversation belongs to one workspace (``team_id``), which is what its JSON
names. Locking is the caller's business (``FakeSlack`` holds one lock around all of it).
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

JSON = dict[str, Any]

# What a bot token gets unless the test says otherwise. Deliberately without
# ``chat:write.public``, so posting to a public channel the bot is not in fails.
DEFAULT_BOT_SCOPES = frozenset({
    "app_mentions:read", "channels:history", "channels:join", "channels:read", "chat:write",
    "commands", "groups:history", "groups:read", "im:history", "im:read", "im:write",
    "mpim:history", "mpim:read", "mpim:write", "team:read", "users:read",
})
DEFAULT_APP_SCOPES = frozenset({"connections:write"})

# Slack's own bot has the same id in every workspace, and every workspace sees it.
SLACKBOT = "USLACKBOT"

MAX_TEXT = 40_000
MAX_BLOCKS_MESSAGE = 50
MAX_BLOCKS_VIEW = 100
KNOWN_BLOCK_TYPES = frozenset({
    "actions", "context", "divider", "file", "header", "image", "input", "markdown",
    "rich_text", "section", "table", "video", "context_actions",
})


class SlackError(Exception):
    """A logical Web API error: HTTP 200 (unless ``status`` says otherwise), ``ok: false``."""

    def __init__(self, error: str, *, status: int = 200, extra: JSON | None = None,
                 messages: list[str] | None = None, headers: dict[str, str] | None = None
                 ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra or {}
        self.messages = messages or []
        self.headers = headers or {}

    def body(self) -> JSON:
        out: JSON = {"ok": False, "error": self.error, **self.extra}
        if self.messages:
            out["response_metadata"] = {"messages": list(self.messages)}
        return out


def invalid_arguments(*messages: str) -> SlackError:
    return SlackError("invalid_arguments", messages=[f"[ERROR] {m}" for m in messages])


@dataclass
class User:
    id: str
    name: str
    team_id: str = ""
    #: Other workspaces the same user id belongs to, as on Enterprise Grid, where one user
    #: spans the organisation's workspaces.
    also_in: frozenset[str] = frozenset()
    real_name: str = ""
    tz: str = "UTC"
    is_admin: bool = False
    is_owner: bool = False
    is_primary_owner: bool = False
    is_bot: bool = False
    is_app_user: bool = False
    deleted: bool = False
    is_restricted: bool = False
    email: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    updated: int = field(default_factory=lambda: int(time.time()))

    def tz_offset(self, at: datetime | None = None) -> int:
        at = at or datetime.now(UTC)
        offset = at.astimezone(ZoneInfo(self.tz)).utcoffset()
        return int(offset.total_seconds()) if offset is not None else 0

    def tz_label(self, at: datetime | None = None) -> str:
        at = at or datetime.now(UTC)
        return at.astimezone(ZoneInfo(self.tz)).tzname() or self.tz

    def to_api(self, team_id: str | None = None) -> JSON:
        """The ``users.info`` shape, seen from ``team_id`` (default: the user's own
        workspace; only Slackbot, which is in all of them, is seen from another)."""
        team_id = team_id or self.team_id
        real = self.real_name or self.name
        profile: JSON = {
            "real_name": real, "real_name_normalized": real,
            "display_name": self.name, "display_name_normalized": self.name,
            "first_name": real.split(" ")[0], "last_name": " ".join(real.split(" ")[1:]),
            "status_text": "", "status_emoji": "", "avatar_hash": "g" + self.id[-11:].lower(),
            "team": team_id,
        }
        if self.email and not self.is_bot:
            profile["email"] = self.email
        if self.is_bot:
            profile["bot_id"] = self.bot_id
            profile["api_app_id"] = self.app_id
            profile["always_active"] = True
        out: JSON = {
            "id": self.id, "team_id": team_id, "name": self.name, "deleted": self.deleted,
            "color": hashlib.sha1(self.id.encode()).hexdigest()[:6],
            "real_name": real, "tz": self.tz, "tz_label": self.tz_label(),
            "tz_offset": self.tz_offset(), "profile": profile,
            "is_admin": self.is_admin, "is_owner": self.is_owner,
            "is_primary_owner": self.is_primary_owner, "is_restricted": self.is_restricted,
            "is_ultra_restricted": False, "is_bot": self.is_bot, "is_app_user": self.is_app_user,
            "updated": self.updated, "is_email_confirmed": not self.is_bot,
            "who_can_share_contact_card": "EVERYONE",
        }
        if self.deleted:
            # Slack drops most fields for deactivated accounts; keep the ones adapters read.
            for key in ("is_admin", "is_owner", "is_primary_owner", "tz", "tz_label", "tz_offset"):
                out.pop(key, None)
        return out


@dataclass
class Channel:
    id: str
    name: str = ""
    team_id: str = ""
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    members: list[str] = field(default_factory=list)
    creator: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    is_archived: bool = False
    is_general: bool = False
    topic: str = ""
    purpose: str = ""
    im_user: str | None = None  # the human on the other side of a DM
    messages: list[JSON] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The scope family: channels, groups, im or mpim."""
        if self.is_im:
            return "im"
        if self.is_mpim:
            return "mpim"
        return "groups" if self.is_private else "channels"

    @property
    def event_channel_type(self) -> str:
        """``channel_type`` as it appears in message events."""
        return {"channels": "channel", "groups": "group", "im": "im", "mpim": "mpim"}[self.kind]

    def to_api(self, viewer: str | None, *, num_members: bool = False) -> JSON:
        """The ``conversations.info`` shape; ``is_member`` as ``viewer`` sees it."""
        team_id = self.team_id
        now_ms = int(time.time() * 1000)
        if self.is_im:
            return {
                "id": self.id, "created": self.created, "is_archived": self.is_archived,
                "is_im": True, "is_org_shared": False, "context_team_id": team_id,
                "updated": now_ms, "user": self.im_user, "is_user_deleted": False,
                "priority": 0, "is_open": True,
            }
        out: JSON = {
            "id": self.id, "name": self.name,
            "is_channel": not self.is_private and not self.is_mpim,
            "is_group": self.is_private and not self.is_mpim, "is_im": False,
            "is_mpim": self.is_mpim, "is_private": self.is_private or self.is_mpim,
            "created": self.created, "is_archived": self.is_archived,
            "is_general": self.is_general, "unlinked": 0, "name_normalized": self.name,
            "is_shared": False, "is_org_shared": False, "is_pending_ext_shared": False,
            "pending_shared": [], "context_team_id": team_id, "updated": now_ms,
            "parent_conversation": None, "creator": self.creator, "is_ext_shared": False,
            "shared_team_ids": [team_id], "pending_connected_team_ids": [],
            "is_member": viewer in self.members if viewer else False,
            "topic": {"value": self.topic, "creator": "", "last_set": 0},
            "purpose": {"value": self.purpose, "creator": "", "last_set": 0},
            "previous_names": [],
        }
        if num_members:
            out["num_members"] = len(self.members)
        return out


@dataclass
class Token:
    value: str
    kind: str  # "bot", "app" or "user"
    user_id: str | None
    scopes: set[str]
    revoked: bool = False
    inactive: bool = False
    team_id: str | None = None  # None: the fake's own workspace


@dataclass
class Trigger:
    id: str
    user_id: str
    issued_at: float  # time.monotonic()
    used: bool = False
    team_id: str = ""  # only this workspace's tokens may exchange it


@dataclass
class ResponseUrl:
    id: str
    channel_id: str | None
    user_id: str | None
    message_ts: str | None
    issued_at: float
    uses: int = 0


def rich_text_blocks(text: str) -> list[JSON]:
    """The block Slack synthesises for a plain-text message."""
    block_id = hashlib.sha1(text.encode()).hexdigest()[:5]
    return [{
        "type": "rich_text", "block_id": block_id,
        "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
    }]


def public_message(stored: JSON, *, include_metadata: bool = True) -> JSON:
    """A stored message as the Web API shows it (internal ``_`` keys dropped)."""
    out = {k: copy.deepcopy(v) for k, v in stored.items() if not k.startswith("_")}
    if not include_metadata:
        out.pop("metadata", None)
    return out


def inspect_message(stored: JSON, channel: str) -> JSON:
    """A stored message for test assertions: API shape plus what Slack keeps but never echoes."""
    out = public_message(stored)
    out["channel"] = channel
    out["unfurl_links"] = stored.get("_unfurl_links")
    out["unfurl_media"] = stored.get("_unfurl_media")
    out["deleted"] = stored.get("_deleted", False)
    # Blocks sent without a top-level ``text`` fallback: Slack accepts them (the SDK only
    # logs a warning), but notifications and screen readers then have nothing to show.
    out["text_missing"] = stored.get("_text_missing", False)
    return out


def parse_json_arg(value: Any, error: str, name: str) -> Any:
    """Form-encoded requests carry structured arguments as JSON strings; JSON bodies don't."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise SlackError(error, messages=[f"[ERROR] invalid JSON in `{name}`"]) from None
    return value


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return False


MAX_BLOCK_ID = 255
MAX_HEADER_TEXT = 150
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_TEXT_OBJECT = 3000
TEXT_TYPES = ("mrkdwn", "plain_text")


def _ptr(path: str) -> str:
    return f"[json-pointer:{path}]"


def _check_length(value: Any, path: str, maximum: int, errors: list[str]) -> None:
    """Slack's own wording: empty is "more than 0", too long is "less than max+1"."""
    if not isinstance(value, str):
        errors.append(f"missing required field: text {_ptr(path.rsplit('/', 1)[0])}")
    elif not value:
        errors.append(f"must be more than 0 characters {_ptr(path)}")
    elif len(value) > maximum:
        errors.append(f"must be less than {maximum + 1} characters {_ptr(path)}")


def _check_text_object(obj: Any, path: str, errors: list[str], *, maximum: int,
                       types: tuple[str, ...] = TEXT_TYPES) -> None:
    """A composition text object: ``plain_text`` (may carry ``emoji``) or ``mrkdwn`` (may
    carry ``verbatim``). Slack reports a mismatch as "failed to match all allowed schemas"
    on the object, followed by what exactly was wrong."""
    if not isinstance(obj, dict) or obj.get("type") not in types:
        errors.append(f"failed to match all allowed schemas {_ptr(path)}")
        return
    detail: list[str] = []
    if obj["type"] == "mrkdwn" and "emoji" in obj:
        detail.append(f"invalid additional property: emoji {_ptr(path)}")
    for flag in ("emoji", "verbatim"):
        if flag in obj and not isinstance(obj[flag], bool):
            detail.append(f"must be a boolean {_ptr(f'{path}/{flag}')}")
    if detail:
        errors.append(f"failed to match all allowed schemas {_ptr(path)}")
        errors.extend(detail)
    _check_length(obj.get("text"), f"{path}/text", maximum, errors)


def _check_image_element(obj: JSON, path: str, errors: list[str]) -> None:
    if not obj.get("image_url") and not isinstance(obj.get("slack_file"), dict):
        errors.append(f"must provide either `image_url` or `slack_file` {_ptr(path)}")
    if not isinstance(obj.get("alt_text"), str) or not obj["alt_text"]:
        errors.append(f"missing required field: alt_text {_ptr(path)}")


def _check_section(block: JSON, i: int, errors: list[str]) -> None:
    where = f"/blocks/{i}"
    if not (block.get("text") or block.get("fields")):
        errors.append(f"must provide either `text` or `fields` {_ptr(where)}")
    if "text" in block and block["text"] is not None:
        _check_text_object(block["text"], f"{where}/text", errors, maximum=MAX_SECTION_TEXT)
    fields = block.get("fields")
    if fields is None:
        return
    if not isinstance(fields, list):
        errors.append(f"must be an array {_ptr(f'{where}/fields')}")
        return
    if len(fields) > MAX_SECTION_FIELDS:
        errors.append(f"no more than {MAX_SECTION_FIELDS} items allowed "
                      f"{_ptr(f'{where}/fields')}")
    for j, item in enumerate(fields):
        _check_text_object(item, f"{where}/fields/{j}", errors, maximum=MAX_FIELD_TEXT)


def _check_header(block: JSON, i: int, errors: list[str]) -> None:
    text = block.get("text")
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        errors.append(f"header text must be plain_text {_ptr(f'/blocks/{i}')}")
        return
    _check_text_object(text, f"/blocks/{i}/text", errors, maximum=MAX_HEADER_TEXT,
                       types=("plain_text",))


def _check_context(block: JSON, i: int, errors: list[str]) -> None:
    where = f"/blocks/{i}"
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        errors.append(f"missing required field: elements {_ptr(where)}")
        return
    if len(elements) > MAX_CONTEXT_ELEMENTS:
        errors.append(f"no more than {MAX_CONTEXT_ELEMENTS} items allowed "
                      f"{_ptr(f'{where}/elements')}")
    for j, element in enumerate(elements):
        path = f"{where}/elements/{j}"
        kind = element.get("type") if isinstance(element, dict) else None
        if kind == "image":
            _check_image_element(element, path, errors)
        elif kind in TEXT_TYPES:
            _check_text_object(element, path, errors, maximum=MAX_TEXT_OBJECT)
        else:
            errors.append(f"failed to match all allowed schemas {_ptr(path)}")


def validate_blocks(blocks: Any, *, limit: int, surface: str) -> list[JSON]:
    """Enough of Block Kit's schema to catch the mistakes code actually makes.

    Limits follow Slack's Block Kit reference (docs.slack.dev/reference/block-kit): header
    text 1..150, section text 1..3000, at most 10 section fields of 1..2000, context
    elements 1..10 (text objects or image elements), block_id at most 255. Messages use
    the wording Slack's own ``invalid_blocks`` responses use.
    """
    if not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    errors: list[str] = []
    if len(blocks) > limit:
        errors.append(f"no more than {limit} items allowed [json-pointer:/blocks]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            errors.append(f"missing required field: type {where}")
            continue
        kind = block["type"]
        if kind not in KNOWN_BLOCK_TYPES:
            errors.append(f"unsupported type: {kind} {where}")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in seen_ids:
                errors.append(f"duplicate block_id: {block_id} {where}")
            seen_ids.add(block_id)
            if isinstance(block_id, str) and len(block_id) > MAX_BLOCK_ID:
                errors.append(f"must be less than {MAX_BLOCK_ID + 1} characters "
                              f"[json-pointer:/blocks/{i}/block_id]")
        if kind == "section":
            _check_section(block, i, errors)
        if kind == "header":
            _check_header(block, i, errors)
        if kind == "context":
            _check_context(block, i, errors)
        if kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                errors.append(f"missing required field: elements {where}")
            elif len(elements) > 25:
                errors.append(f"no more than 25 items allowed [json-pointer:/blocks/{i}/elements]")
        if kind == "input" and surface == "message":
            errors.append(f"unsupported type: input {where}")
        if kind == "input" and not isinstance(block.get("element"), dict):
            errors.append(f"missing required field: element {where}")
    if errors:
        # Slack lists the same messages twice: bare under ``errors``, prefixed under
        # ``response_metadata.messages``.
        raise SlackError("invalid_blocks", extra={"errors": list(errors)},
                         messages=[f"[ERROR] {e}" for e in errors])
    return blocks


def validate_view(view: Any, *, allowed_types: tuple[str, ...]) -> JSON:
    if not isinstance(view, dict):
        raise invalid_arguments("missing required field: view")
    kind = view.get("type")
    if kind not in allowed_types:
        raise invalid_arguments(f"invalid view type: {kind} [json-pointer:/view/type]")
    messages: list[str] = []
    if kind == "modal":
        title = view.get("title")
        if not isinstance(title, dict) or title.get("type") != "plain_text":
            messages.append("missing required field: title [json-pointer:/view/title]")
        elif len(title.get("text", "")) > 24:
            messages.append("must be less than 25 characters [json-pointer:/view/title/text]")
        blocks = view.get("blocks", [])
        if isinstance(blocks, list) and any(
                isinstance(b, dict) and b.get("type") == "input" for b in blocks
        ) and not view.get("submit"):
            messages.append("must provide a submit property when using input blocks "
                            "[json-pointer:/view]")
    if len(str(view.get("private_metadata", ""))) > 3000:
        messages.append("must be less than 3001 characters [json-pointer:/view/private_metadata]")
    if len(str(view.get("callback_id", ""))) > 255:
        messages.append("must be less than 256 characters [json-pointer:/view/callback_id]")
    if messages:
        raise invalid_arguments(*messages)
    try:
        validate_blocks(view.get("blocks", []), limit=MAX_BLOCKS_VIEW, surface=kind)
    except SlackError as e:
        raise SlackError("invalid_arguments", messages=e.messages) from None
    return view


def validate_metadata(value: Any) -> JSON | None:
    metadata = parse_json_arg(value, "invalid_metadata_format", "metadata")
    if metadata is None:
        return None
    if (not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload", {}), dict)):
        raise SlackError("invalid_metadata_format")
    if len(json.dumps(metadata)) > 8000:
        raise SlackError("metadata_too_large")
    return {"event_type": metadata["event_type"],
            "event_payload": metadata.get("event_payload", {})}
