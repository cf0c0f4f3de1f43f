"""Getting a command's replies to the person who ran it, the way Slack users expect.

- private: an ephemeral message (through the command's `response_url`, else
  chat.postEphemeral in the channel, else the direct conversation with the bot);
- fleeting (a question's code): ephemeral only, through the `response_url`, else
  chat.postEphemeral in the conversation the command came from (a channel, or the bot's
  direct conversation: ephemeral messages are not kept there either). Never a lasting
  message, such as a direct message, where it would stay beside the reader's name: when no
  ephemeral way works, it is dropped with a warning;
- direct: by direct message;
- not private: posted in the channel. If the bot is not in that channel yet, the reply still
  appears there through the `response_url`, with a private hint to invite the bot.

`Reply.withdraw` needs nothing here: a bot cannot delete a person's message, and a slash
command or a form leaves none.

Nothing here decides *what* is said: that is the core's reply, rendered by `render`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack import render
from adapters.slack.messenger import SlackMessenger
from bot.chat.message import Message, lines
from bot.service.api import Reply
from bot.service.ports import DeliveryError

log = logging.getLogger(__name__)

NOT_A_MEMBER = ("not_in_channel", "channel_not_found")


@dataclass(frozen=True, slots=True)
class Where:
    """Where a command came from, and how to answer there."""

    user: str
    channel: str | None = None  # the conversation (C…, G… or D…), if any
    response_url: str | None = None
    flag: str = ""  # "--cohort peer-a " when the caller named a cohort: buttons keep it
    dm_channel: str | None = None  # the bot's DM with the user, when the command came from it
    tenant: str = "slack"  # the workspace the request came from: whose token answers

    @property
    def in_channel(self) -> str | None:
        """The shared channel, if the command was run in one (not a DM)."""
        if self.channel and not self.channel.startswith("D"):
            return self.channel
        return None


class Replier:
    def __init__(self, messenger: SlackMessenger, session: aiohttp.ClientSession | None = None,
                 *, invite_hint: str) -> None:
        self._messenger = messenger
        self._session = session
        self._invite_hint = invite_hint

    async def deliver(self, replies: list[Reply], where: Where) -> None:
        """Send every reply; a failure to answer is logged, never raised at the caller."""
        # A fleeting reply goes only where it vanishes, whatever else it asks for.
        fleeting = [r.message for r in replies if r.fleeting]
        rest = [r for r in replies if not r.fleeting]
        private = [r.message for r in rest if r.private and not r.direct]
        direct = [r.message for r in rest if r.direct]
        public = [r.message for r in rest if not r.private and not r.direct]
        if private:
            await self.private(lines(private), where)
        if fleeting:
            await self.fleeting(lines(fleeting), where)
        if direct:
            await self.dm(lines(direct), where)
        for message in public:
            await self.public(message, where)

    async def private(self, message: Message, where: Where) -> None:
        """Only the caller sees it: ephemeral, else by direct message."""
        body = render.payload(message, prefix=where.flag)
        if where.response_url and await self._respond(where.response_url, {
                **body, "response_type": "ephemeral", "replace_original": False}):
            return
        if where.in_channel and await self._ephemeral(where.in_channel, body, where):
            return
        await self.dm(message, where)

    async def fleeting(self, message: Message, where: Where) -> bool:
        """Only the caller sees it, and it does not stay: ephemeral or nothing. True if shown.

        Never a direct message, not even as a last resort: there it would stay beside the
        reader's name (and an owner with exports could read it)."""
        body = render.payload(message, prefix=where.flag)
        if where.response_url and await self._respond(where.response_url, {
                **body, "response_type": "ephemeral", "replace_original": False}):
            return True
        if where.channel and await self._ephemeral(where.channel, body, where):
            return True
        # No user data in the line: not who, not what.
        log.warning("slack: a reply that may only be shown ephemerally could not be shown; "
                    "it was not sent any other way")
        return False

    async def _ephemeral(self, channel: str, body: dict[str, Any], where: Where) -> bool:
        try:
            client = await self._messenger.client_for(where.tenant)
            await client.chat_postEphemeral(channel=channel, user=where.user, **body)
            return True
        except (SlackApiError, TimeoutError, aiohttp.ClientError, DeliveryError) as e:
            log.warning("slack: ephemeral reply failed (%s)", _why(e))
            return False

    async def dm(self, message: Message, where: Where) -> None:
        try:
            if where.dm_channel:
                await self._messenger.post(where.dm_channel, message, prefix=where.flag,
                                           tenant=where.tenant)
            else:
                await self._messenger.send_dm(where.user, message, prefix=where.flag,
                                              tenant=where.tenant)
        except DeliveryError as e:
            log.warning("slack: could not reply by direct message (%s)", e.reason)

    async def public(self, message: Message, where: Where) -> None:
        channel = where.in_channel
        if channel is None:
            await self.dm(message, where)
            return
        try:
            await self._messenger.post(channel, message, prefix=where.flag, tenant=where.tenant)
            return
        except DeliveryError as e:
            if e.reason not in NOT_A_MEMBER:
                log.warning("slack: channel reply failed (%s)", e.reason)
                await self.private(message, where)
                return
        # Not in the channel yet: the command's response_url can still post there, and the
        # caller learns that scheduled messages need the bot in the channel.
        body = render.payload(message, prefix=where.flag)
        if where.response_url and await self._respond(where.response_url, {
                **body, "response_type": "in_channel", "replace_original": False}):
            await self.private(Message.of(self._invite_hint), where)
            return
        await self.private(message + Message.of("\n" + self._invite_hint), where)

    async def _respond(self, url: str, body: dict[str, Any]) -> bool:
        try:
            resp = await AsyncWebhookClient(url, session=self._session, timeout=10).send_dict(body)
        except (TimeoutError, aiohttp.ClientError) as e:
            log.warning("slack: response_url failed (%s)", _why(e))
            return False
        if resp.status_code != 200:
            log.warning("slack: response_url answered %s", resp.status_code)
            return False
        return True


def _why(e: BaseException) -> str:
    if isinstance(e, SlackApiError):
        return str(e.response.get("error") or "error")
    if isinstance(e, DeliveryError):
        return e.reason
    return type(e).__name__
