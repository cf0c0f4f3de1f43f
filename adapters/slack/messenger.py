"""The outbox's `Messenger` for Slack: one chat.postMessage per outbox message, never two.

- Every post carries the outbox id in its message metadata. Slack has no idempotency key, so
  when a post's outcome is unknown (a timeout, a dropped connection) the next attempt first
  looks in the conversation's recent history for that metadata and reports the earlier
  message instead of posting again.
- Posts are paced per channel (`pacing.Pacer`); slack_sdk's rate-limit and server-error retry
  handlers deal with what gets through anyway, and a 429 that outlasts them becomes a
  `DeliveryError` with Slack's `Retry-After`.
- Errors that retrying cannot fix (not in the channel, archived, revoked token, missing scope…)
  are permanent: the outbox row is marked failed, a log line says why, and the configured Slack
  admins get a direct message saying what to do (when the token still works).
- Unfurling is always off: a link in an anonymous question must not fetch anything.
- Which token sends is the router's business (`workspaces`): the one bot token, or the
  installation of the workspace the target belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import render
from adapters.slack.pacing import Pacer
from adapters.slack.workspaces import NOT_INSTALLED, OneWorkspace, Router
from bot import metrics
from bot.chat.message import Mention, Message
from bot.domain.refs import ChannelRef, UserRef
from bot.service.ports import DeliveryError, Outgoing

log = logging.getLogger(__name__)

PLATFORM = "slack"
METADATA_TYPE = "cohortbot_outbox"
#: How far back (seconds) an unknown outcome is looked for in the conversation's history.
LOOKBACK = 15 * 60
ALERT_EVERY = 3600.0
#: Failures after which Slack may or may not have posted the message.
UNKNOWN_OUTCOME = ("timeout", "connection_lost")  # one admin alert per place and error per hour

#: Errors no retry can fix, and what an admin should do about each.
PERMANENT: dict[str, str] = {
    "not_in_channel": "I am not a member of that channel: invite me there (/invite @cohortbot).",
    "channel_not_found": "That channel does not exist or is private and I am not in it: "
                         "invite me, or link the cohort to another channel.",
    "is_archived": "That channel is archived: link the cohort to another channel.",
    "missing_scope": "The app lacks a permission it needs: reinstall it from the current "
                     "manifest (cohortbot slack-manifest).",
    "restricted_action": "A workspace policy stops me from posting there.",
    "restricted_action_read_only_channel": "That channel is read-only for apps.",
    "restricted_action_thread_only_channel": "That channel only allows replies in threads.",
    "restricted_action_non_threadable_channel": "That channel does not allow app posts.",
    "ekm_access_denied": "The workspace's key management denied access.",
    "user_not_found": "That person is not in this workspace any more.",
    "user_disabled": "That person's account is deactivated.",
    "cannot_dm_bot": "That account is a bot.",
    "msg_too_long": "The message was too long for Slack.",
    "no_text": "The message was empty.",
    "invalid_blocks": "Slack refused the message layout.",
    "invalid_blocks_format": "Slack refused the message layout.",
    "invalid_metadata_format": "Slack refused the message metadata.",
    "too_many_attachments": "Slack refused the message attachments.",
    "channel_is_archived": "That channel is archived: link the cohort to another channel.",
    "cant_update_message": "Slack would not let me edit my own message there.",
    "cant_delete_message": "Slack would not let me remove my own message there.",
    "edit_window_closed": "Slack's workspace settings no longer allow editing that message.",
    NOT_INSTALLED: "The app is not installed in that place's workspace (any more): install "
                   "it there again, then run a command there.",
}
#: The token itself no longer works: nothing can be sent, not even an alert.
DEAD_TOKEN = frozenset({"token_revoked", "invalid_auth", "account_inactive", "not_authed",
                        "token_expired", "no_permission", "org_login_required",
                        "team_access_not_granted", "not_allowed_token_type"})


def _error_of(e: SlackApiError) -> tuple[str, int, float | None]:
    response = e.response
    data = response.data if isinstance(response.data, dict) else {}
    status = int(getattr(response, "status_code", 0) or 0)
    error = str(data.get("error") or (f"http_{status}" if status else "unknown_error"))
    retry_after: float | None = None
    headers = getattr(response, "headers", None) or {}
    for key, value in dict(headers).items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                retry_after = float(raw)
            except (TypeError, ValueError):
                retry_after = None
    return error, status, retry_after


def _delivery_error(e: SlackApiError | TimeoutError | aiohttp.ClientError) -> DeliveryError:
    """What a failed Web API call means for the message it was for."""
    if isinstance(e, SlackApiError):
        error, status, retry_after = _error_of(e)
        if status == 429 or error == "ratelimited":  # surely not taken: wait, then again
            return DeliveryError("ratelimited", retry_after=retry_after or 1.0, refused=True)
        if error in PERMANENT or error in DEAD_TOKEN:
            return DeliveryError(error, permanent=True)
        if status >= 500:  # Slack is in trouble (the SDK has retried already)
            return DeliveryError(f"http_{status}", unreachable=True)
        return DeliveryError(error)
    if isinstance(e, TimeoutError):
        return DeliveryError("timeout", unreachable=True)
    if isinstance(e, aiohttp.ClientConnectorError):
        return DeliveryError("unreachable", unreachable=True)
    if isinstance(e, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                      aiohttp.ClientPayloadError)):
        return DeliveryError("connection_lost", unreachable=True)
    return DeliveryError("client_error")


class SlackMessenger:
    """Delivers outbox messages to Slack. Bound to a client once the platform starts."""

    platform = PLATFORM

    def __init__(self, pacer: Pacer | None = None) -> None:
        self.pacer = pacer or Pacer()
        self._router: Router | None = None
        self._admins: Callable[[], frozenset[tuple[str, str]]] = frozenset
        self._dm: dict[tuple[str | None, str], str] = {}  # (tenant, user) → conversation
        self._dm_locks: dict[tuple[str | None, str], asyncio.Lock] = {}
        self._unknown: dict[int, tuple[str, float]] = {}  # outbox id → (channel, first try)
        self._not_posted: set[int] = set()  # outbox ids whose last try surely posted nothing
        self._alerted: dict[tuple[str, str], float] = {}
        self._dead_tokens: set[str] = set()  # in memory only, never logged
        #: Looks up the name Slack shows for a person (for quiet mentions).
        self.names: Callable[[UserRef, str | None], Awaitable[str | None]] | None = None

    def bind(self, client: AsyncWebClient | Router,
             admins: Callable[[], frozenset[tuple[str, str]]]) -> None:
        """`client`: the one bot token's client, or a router that picks the workspace's.
        `admins`: the (tenant, Slack user id) of each configured admin, to alert about
        messages that cannot be delivered in their own workspace."""
        self._router = OneWorkspace(client) if isinstance(client, AsyncWebClient) else client
        self._admins = admins
        self._dead_tokens.clear()

    async def client_for(self, tenant: str | None) -> AsyncWebClient:
        if self._router is None:
            raise DeliveryError("slack is not connected yet", unreachable=True)
        return await self._router.client_for(tenant)

    # ------------------------------------------------------------------ outbox

    async def send(self, out: Outgoing) -> str:
        place = _place(out)
        client: AsyncWebClient | None = None
        try:
            client = await self.client_for(out.tenant)
            channel = await self._channel(out, client)
        except DeliveryError as e:
            await self._failed(e, out, place, client)
            raise
        earlier = self._unknown.get(out.outbox_id)
        if earlier is None and out.attempt > 1 and out.outbox_id not in self._not_posted:
            # An earlier try whose fate this process does not know (it may have crashed
            # right after Slack took the message): look before posting again.
            earlier = (channel, time.time() - LOOKBACK)
        if earlier is not None:
            ts = await self._find_posted(channel, out.outbox_id, earlier[1], client)
            if ts is not None:
                self._unknown.pop(out.outbox_id, None)
                log.info("slack: message %s was posted before (found by its metadata)",
                         out.key)
                return ts
        try:
            ts = await self.post(channel, await self._named(out), outbox_id=out.outbox_id,
                                 client=client)
        except DeliveryError as e:
            if e.reason in UNKNOWN_OUTCOME or e.reason.startswith("http_5"):
                self._unknown.setdefault(out.outbox_id, (channel, time.time()))
            else:
                self._not_posted.add(out.outbox_id)
            await self._failed(e, out, place, client)
            raise
        self._unknown.pop(out.outbox_id, None)
        self._not_posted.discard(out.outbox_id)
        return ts

    async def _named(self, out: Outgoing) -> Message:
        """The message with its quiet mentions as names, where Slack knows them."""
        quiet = {p.user for p in out.message.parts if isinstance(p, Mention) and p.quiet}
        if not quiet or self.names is None:
            return out.message
        names = {}
        for user in quiet:
            name = await self.names(user, out.tenant)
            if name:
                names[user.id] = name
        return render.named(out.message, names)

    async def edit(self, out: Outgoing, message_id: str) -> None:
        """chat.update of a message the bot posted (`message_id` is its ts)."""
        args = render.payload(out.message)
        await self._change(out, "chat_update", ts=message_id, text=args["text"],
                           blocks=args.get("blocks", []))

    async def delete(self, out: Outgoing, message_id: str) -> None:
        """chat.delete of a message the bot posted; one gone already counts as removed."""
        try:
            await self._change(out, "chat_delete", ts=message_id)
        except DeliveryError as e:
            if e.reason != "message_not_found":
                raise

    async def whisper(self, user: UserRef, tenant: str | None, place: ChannelRef | None,
                      message: Message) -> None:
        """An ephemeral message in `place` (the cohort's channel): it stays in no history,
        so nothing in Slack ties the reader to it. Never a DM, which would stay."""
        if place is None:
            raise DeliveryError("no_channel", permanent=True)
        client = await self.client_for(tenant)
        async with self.pacer.slot(place.id):
            try:
                await client.chat_postEphemeral(channel=place.id, user=user.id,
                                                **render.payload(message))
            except (SlackApiError, TimeoutError, aiohttp.ClientError) as e:
                raise _delivery_error(e) from None

    async def _change(self, out: Outgoing, method: str, **args: Any) -> None:
        place = _place(out)
        client: AsyncWebClient | None = None
        try:
            client = await self.client_for(out.tenant)
            channel = await self._channel(out, client)
            await self._call(client, method, channel, **args)
        except DeliveryError as e:
            if e.reason != "message_not_found":
                await self._failed(e, out, place, client)
            raise

    async def _channel(self, out: Outgoing, client: AsyncWebClient) -> str:
        """Where `out` goes: its channel, or the direct message opened with its person."""
        if out.direct:
            return await self.dm_channel(out.target, tenant=out.tenant, client=client)
        return out.target

    async def _failed(self, e: DeliveryError, out: Outgoing, place: str,
                      client: AsyncWebClient | None) -> None:
        if not e.permanent:
            return
        if e.reason in DEAD_TOKEN:
            if client is not None and client.token:
                self._dead_tokens.add(client.token)
            log.error("slack: the bot token no longer works (%s); message %s cannot be "
                      "delivered. Reinstall the app or set a new slack.bot_token.",
                      e.reason, out.key)
            return
        log.error("slack: message %s to %s failed for good: %s", out.key, place, e.reason)
        where = "a direct message to a member" if out.direct else f"<#{out.target}>"
        what = render.escape(out.key.split(":", 1)[0])
        if client is None:
            return  # no workspace to tell it in
        await self.alert("dm" if out.direct else out.target, e.reason, (
            f"I could not deliver a message ({what}) to {where}: "
            f"{render.escape(PERMANENT.get(e.reason, e.reason))} "
            "It is marked as failed and will not be retried."), tenant=out.tenant, client=client)

    # ------------------------------------------------------------------ posting

    async def post(self, channel: str, message: Message | str, *, outbox_id: int | None = None,
                   tenant: str | None = None, client: AsyncWebClient | None = None,
                   prefix: str = "") -> str:
        """Post to a conversation of `tenant`'s workspace, paced; returns the ts. Raises
        DeliveryError.

        A `str` is mrkdwn the adapter wrote itself (never user text)."""
        client = client or await self.client_for(tenant)
        args: dict[str, Any] = (
            render.payload(message, prefix=prefix) if isinstance(message, Message)
            else {"text": message, "unfurl_links": False, "unfurl_media": False})
        if outbox_id is not None:
            args["metadata"] = {"event_type": METADATA_TYPE,
                                "event_payload": {"outbox_id": outbox_id}}
        resp = await self._call(client, "chat_postMessage", channel, **args)
        return str(resp.get("ts") or "")

    async def _call(self, client: AsyncWebClient, method: str, channel: str,
                    **args: Any) -> Any:
        """One Web API call about `channel`, paced per channel; a 429 holds the channel for
        as long as Slack asks. Failures come out as `DeliveryError`."""
        async with self.pacer.slot(channel):
            try:
                return await getattr(client, method)(channel=channel, **args)
            except (SlackApiError, TimeoutError, aiohttp.ClientError) as e:
                failure = _delivery_error(e)
                if failure.refused and failure.retry_after:
                    self.pacer.hold(channel, failure.retry_after)
                    metrics.rate_limited("slack", failure.retry_after)
                raise failure from None

    async def dm_channel(self, user_id: str, *, tenant: str | None,
                         client: AsyncWebClient | None = None) -> str:
        """The bot's direct conversation with `user_id` in `tenant`'s workspace (opened
        once, then cached): each workspace's bot has its own with the same person."""
        key = (tenant, user_id)
        cached = self._dm.get(key)
        if cached is not None:
            return cached
        lock = self._dm_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._dm:
                return self._dm[key]
            try:
                client = client or await self.client_for(tenant)
                resp = await client.conversations_open(users=user_id)
            except (SlackApiError, TimeoutError, aiohttp.ClientError) as e:
                raise _delivery_error(e) from None
            channel = str((resp.get("channel") or {}).get("id") or "")
            if not channel:
                raise DeliveryError("no_channel")
            self._dm[key] = channel
            return channel

    async def send_dm(self, user_id: str, message: Message | str, *, tenant: str | None,
                      prefix: str = "", client: AsyncWebClient | None = None) -> str:
        client = client or await self.client_for(tenant)
        return await self.post(await self.dm_channel(user_id, tenant=tenant, client=client),
                               message, prefix=prefix, client=client)

    async def _find_posted(self, channel: str, outbox_id: int, since: float,
                           client: AsyncWebClient) -> str | None:
        """The ts of our earlier message for `outbox_id`, if Slack has it."""
        try:
            resp = await client.conversations_history(
                channel=channel, oldest=f"{since - 60:.6f}", limit=100,
                include_all_metadata=True)
        except (SlackApiError, TimeoutError, aiohttp.ClientError) as e:
            failure = _delivery_error(e)
            if failure.unreachable or failure.refused:
                raise failure from None
            # Cannot tell: post again would risk a duplicate, so try later.
            raise DeliveryError("history_unavailable", retry_after=30.0) from None
        for msg in resp.get("messages") or []:
            meta = msg.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == METADATA_TYPE and payload.get("outbox_id") == outbox_id:
                return str(msg.get("ts"))
        return None

    # ------------------------------------------------------------------ alerts

    async def alert(self, place: str, error: str, mrkdwn: str, *, tenant: str | None,
                    client: AsyncWebClient) -> None:
        """Tell the configured Slack admins of the workspace `client` speaks for (`tenant`),
        at most once an hour per place and error. Another workspace's admins hear nothing:
        the place means nothing to them, and it is not theirs to know of."""
        if self._router is None or client.token in self._dead_tokens:
            return
        now = time.monotonic()
        key = (place, error)
        if now - self._alerted.get(key, -ALERT_EVERY) < ALERT_EVERY:
            return
        self._alerted[key] = now
        for admin_tenant, admin in sorted(self._admins()):
            if admin_tenant != tenant:
                continue
            try:
                await self.send_dm(admin, mrkdwn, tenant=tenant, client=client)
            except DeliveryError as e:
                log.warning("slack: could not alert an admin: %s", e.reason)


def _place(out: Outgoing) -> str:
    """Where `out` goes, for a log line (no content)."""
    return "a direct message" if out.direct else f"channel {out.target}"
