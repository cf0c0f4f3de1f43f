"""The Bolt listeners: acknowledge at once, do the work after, never lose an error.

Slack wants an answer within 3 seconds. Every listener acks first (modal steps ack with their
next view, which is pure and instant) and hands the rest — the core, the Web API — to a
background task. A task that fails is logged with a short reference, and the person who
clicked or typed is told that something went wrong, with that reference and nothing else.

What a listener does is convert: a slash command, a button, a modal or a direct message
becomes command text for `core.handle`, and the replies go back through `Replier`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import inbound, render, views
from adapters.slack.replies import Replier, Where
from adapters.slack.workspaces import Router
from bot.chat.message import Message, lines
from bot.domain.refs import UserRef
from bot.service.api import Core, Invocation
from bot.service.ports import DeliveryError

log = logging.getLogger(__name__)

JSON = dict[str, Any]
OOPS = "Something went wrong on our side (ref {ref}). Nothing was changed; please try again."


class Gate:
    """Acknowledgements go first. While requests are being acknowledged, work that earlier
    requests started waits until none has been in flight for `quiet` seconds (at most `limit`
    seconds): under a burst every request is answered quickly, and the work follows at once.
    One timer and one event for everyone, so a burst costs the same whatever is waiting."""

    def __init__(self, *, quiet: float = 0.03, limit: float = 0.5) -> None:
        self.quiet = quiet
        self.limit = limit
        self._busy = 0
        self._open = asyncio.Event()
        self._open.set()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self) -> None:
        self._busy += 1
        self._open.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def leave(self) -> None:
        self._busy = max(self._busy - 1, 0)
        if not self._busy:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(self.quiet, self._calm)

    def _calm(self) -> None:
        self._timer = None
        if not self._busy:
            self._open.set()

    async def wait(self) -> None:
        if self._open.is_set():
            return
        try:
            async with asyncio.timeout(self.limit):
                await self._open.wait()
        except TimeoutError:
            return


class Background:
    """Tasks started after an ack. Failures are logged with a reference, and reported."""

    def __init__(self, gate: Gate | None = None) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.gate = gate or Gate()

    def spawn(self, work: Coroutine[Any, Any, None], *, what: str,
              tell: Callable[[str], Awaitable[None]] | None = None) -> None:
        task = asyncio.get_running_loop().create_task(self._run(work, what, tell))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, work: Coroutine[Any, Any, None], what: str,
                   tell: Callable[[str], Awaitable[None]] | None) -> None:
        try:
            await self.gate.wait()
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            ref = secrets.token_hex(4)
            # No payload in the line: it could hold a person's id next to what they wrote.
            log.exception("slack: %s failed after it was acknowledged (ref %s)", what, ref)
            if tell is not None:
                try:
                    await tell(OOPS.format(ref=ref))
                except Exception as e:  # noqa: BLE001 - telling is best effort, logged
                    log.warning("slack: could not report error ref %s (%s)", ref,
                                type(e).__name__)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def join(self) -> None:
        """Wait until no acknowledged work is left (work may start more work)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def drain(self, timeout: float) -> None:
        """Let running work finish (bounded), then cancel what is left."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)


class Listeners:
    def __init__(self, core: Core, replier: Replier, clients: Router,
                 background: Background,
                 revoked: Callable[[JSON, AsyncBoltContext], Awaitable[None]] | None = None
                 ) -> None:
        """`clients`: which token reaches a person. `revoked`: what to do when a workspace
        uninstalls the app or revokes its tokens (OAuth installs only)."""
        self.core = core
        self.replier = replier
        self.clients = clients
        self.tasks = background
        self.revoked = revoked
        self.word = core.policy.command_word
        self.prefix = core.policy.prefix_for(inbound.PLATFORM)

    def register(self, app: AsyncApp) -> None:
        app.command(f"/{self.word}")(self.on_command)
        app.view(views.ASK)(self.on_ask)
        app.view(views.ASK_PREVIEW)(self.on_ask_send)
        app.view(views.ACTION_ADD)(self.on_action_add)
        app.view(views.CHECKIN)(self.on_checkin)
        app.view_closed(re.compile(".*"))(self.on_ack_only)
        app.action(re.compile(f"^{render.COMMAND_ACTION}-"))(self.on_button)
        app.action(re.compile(f"^{views.HOME_ACTION}-"))(self.on_home_button)
        app.action(re.compile(".*"))(self.on_ack_only)  # e.g. radio buttons in a modal
        app.event("app_home_opened")(self.on_home_opened)
        app.event("message")(self.on_message)
        app.event("member_left_channel")(self.on_moved)
        app.event("member_joined_channel")(self.on_moved)
        app.event("app_uninstalled")(self.on_uninstalled)
        app.event("tokens_revoked")(self.on_uninstalled)
        app.event(re.compile(".*"))(self.on_ignored_event)
        app.error(self.on_error)

    # ------------------------------------------------------------------ helpers

    def _teller(self, where: Where) -> Callable[[str], Awaitable[None]]:
        async def tell(text: str) -> None:
            await self.replier.private(Message.of(text), where)
        return tell

    async def _run(self, inv: Invocation, where: Where) -> None:
        replies = await self.core.handle(inv)
        await self.replier.deliver(replies, where)

    async def _open(self, trigger_id: str | None, view: JSON, where: Where) -> bool:
        if not trigger_id:
            return False
        return await self._form("open", where, lambda client: client.views_open(
            trigger_id=trigger_id, view=view))

    async def _form(self, what: str, where: Where,
                    call: Callable[[AsyncWebClient], Awaitable[Any]]) -> bool:
        """Open or update a form with `where`'s workspace token; False (logged) if Slack
        would not."""
        try:
            client = await self.clients.client_for(where.tenant)
            await call(client)
            return True
        except SlackApiError as e:
            why = str(e.response.get("error"))
        except DeliveryError as e:
            why = e.reason
        except (TimeoutError, aiohttp.ClientError) as e:
            why = type(e).__name__
        log.warning("slack: could not %s a form (%s)", what, why)
        return False

    async def _open_or_explain(self, trigger: str | None, view: JSON, where: Where,
                               usage: str) -> None:
        if not await self._open(trigger, view, where):
            await self.replier.private(Message.of(
                f"I could not open the form. Type it instead: {self.prefix} {usage}"), where)

    async def _form_for(self, words: str, flag: str, where: Where, user: UserRef,
                        trigger: str | None) -> bool:
        """Open the modal a bare `ask` / `action add` / `checkin` stands for. True if it is
        one of those (and so nothing else should run)."""
        origin = views.Origin(where.channel, flag, where.response_url)
        if words == "ask":
            await self._open_or_explain(trigger, views.ask_modal(origin), where,
                                        "ask <question>")
            return True
        if words == "action add":
            await self._open_or_explain(trigger, views.action_modal(origin), where,
                                        "action add <text>")
            return True
        if words == "checkin":
            items = await self.core.checkin_items(user, where.tenant)
            cohort = flag.split()[-1] if flag else None
            items = [i for i in items if cohort in (None, i.cohort)]
            if items:
                await self._open_or_explain(trigger, views.checkin_modal(origin, items), where,
                                            "action done|partly|notyet|drop <n> [note]")
                return True
        return False

    # ------------------------------------------------------------------ slash command

    async def on_command(self, ack: AsyncAck, body: JSON, context: AsyncBoltContext) -> None:
        await ack()
        where = Where(user=str(body.get("user_id")), channel=body.get("channel_id"),
                      response_url=body.get("response_url"),
                      tenant=self.clients.tenant(context))
        self.tasks.spawn(self._command(body, where), what="command", tell=self._teller(where))

    async def _command(self, body: JSON, where: Where) -> None:
        inv = inbound.command(body, tenant=where.tenant)
        split = inbound.split_cohort(inv.text)
        where = replace(where, flag=split.flag)
        if await self._form_for(split.words, split.flag, where, inv.user,
                                body.get("trigger_id")):
            return
        await self._run(inv, where)

    # ------------------------------------------------------------------ buttons

    async def on_button(self, ack: AsyncAck, body: JSON, action: JSON,
                        context: AsyncBoltContext) -> None:
        await ack()
        user = inbound.user_of(body)
        where = Where(user=user.id, channel=inbound.action_channel(body),
                      response_url=body.get("response_url"),
                      tenant=self.clients.tenant(context))
        self.tasks.spawn(self._button(body, action, where), what="button",
                         tell=self._teller(where))

    async def _button(self, body: JSON, action: JSON, where: Where) -> None:
        inv = inbound.button_click(body, action, tenant=where.tenant)
        split = inbound.split_cohort(inv.text)
        where = replace(where, flag=split.flag)
        if await self._form_for(split.words, split.flag, where, inv.user,
                                body.get("trigger_id")):
            return
        await self._run(inv, where)

    async def on_home_button(self, ack: AsyncAck, body: JSON, action: JSON,
                             context: AsyncBoltContext) -> None:
        await ack()
        user = inbound.user_of(body)
        where = Where(user=user.id, tenant=self.clients.tenant(context))
        value = str(action.get("value") or "")
        self.tasks.spawn(self._home_button(value, user, body.get("trigger_id"), where),
                         what="home button", tell=self._teller(where))

    async def _home_button(self, value: str, user: UserRef, trigger: str | None,
                           where: Where) -> None:
        if value == "refresh" or not await self._form_for(value, "", where, user, trigger):
            await self.publish_home(user, where.tenant)

    async def on_ack_only(self, ack: AsyncAck) -> None:
        await ack()

    # ------------------------------------------------------------------ modals

    async def on_ask(self, ack: AsyncAck, body: JSON, view: JSON) -> None:
        question = views.question_of(view)
        if not question:
            await ack(response_action="errors", errors={"question": "Write a question first."})
            return
        origin, _ = views.Origin.load(view.get("private_metadata"))
        await ack(response_action="push", view=views.ask_preview(origin, question))

    async def on_ask_send(self, ack: AsyncAck, body: JSON, view: JSON,
                          context: AsyncBoltContext) -> None:
        """The question is sent: the form says so at once, then shows the core's reply (the
        code) in place. The code is never sent by DM, where it would stay beside the
        author's name; if the form is gone, it is shown ephemerally where the form was
        opened, or not at all."""
        origin, question = views.previewed_question(view)
        if not question:
            await ack(response_action="clear")
            return
        await ack(response_action="update", view=views.ask_sending())
        user = inbound.user_of(body)
        where = Where(user=user.id, channel=origin.channel, response_url=origin.response_url,
                      flag=origin.flag, tenant=self.clients.tenant(context))
        inv = Invocation(user=user, text=f"{origin.flag}ask {question}",
                         channel=inbound.channel_ref(origin.channel),
                         event_id=_view_event_id(view), tenant=where.tenant)
        # An update keeps the view's id. The work starts after the ack has gone out (and a
        # database transaction later), so Slack has shown "Sending…" before this update.
        view_id = str(view.get("id") or "")
        self.tasks.spawn(self._ask_in_form(inv, view_id, where), what="question",
                         tell=self._form_teller(view_id, where))

    async def _ask_in_form(self, inv: Invocation, view_id: str, where: Where) -> None:
        replies = await self.core.handle(inv)
        if replies:
            await self._show_in_form(view_id, lines([r.message for r in replies]), where)

    def _form_teller(self, view_id: str, where: Where) -> Callable[[str], Awaitable[None]]:
        async def tell(text: str) -> None:
            await self._show_in_form(view_id, Message.of(text), where)
        return tell

    async def _show_in_form(self, view_id: str, message: Message, where: Where) -> None:
        """The reply in the ask form; if the form cannot show it (closed, Slack failing),
        ephemerally where the form was opened. Never by direct message."""
        if view_id and await self._update(view_id, views.ask_sent(message), where):
            return
        await self.replier.fleeting(message, where)

    async def _update(self, view_id: str, view: JSON, where: Where) -> bool:
        return await self._form("update", where, lambda client: client.views_update(
            view_id=view_id, view=view))

    async def on_action_add(self, ack: AsyncAck, body: JSON, view: JSON,
                            context: AsyncBoltContext) -> None:
        text = views.action_of(view)
        if not text:
            await ack(response_action="errors", errors={"action": "Write the action first."})
            return
        await ack()
        origin, _ = views.Origin.load(view.get("private_metadata"))
        user = inbound.user_of(body)
        where = Where(user=user.id, channel=origin.channel, response_url=origin.response_url,
                      flag=origin.flag, tenant=self.clients.tenant(context))
        inv = Invocation(user=user, text=f"{origin.flag}action add {text}",
                         channel=inbound.channel_ref(origin.channel),
                         event_id=_view_event_id(view), tenant=where.tenant)
        self.tasks.spawn(self._run(inv, where), what="action form", tell=self._teller(where))

    async def on_checkin(self, ack: AsyncAck, body: JSON, view: JSON,
                         context: AsyncBoltContext) -> None:
        await ack()
        origin, commands = views.checkin_commands(view)
        user = inbound.user_of(body)
        where = Where(user=user.id, channel=origin.channel, response_url=origin.response_url,
                      tenant=self.clients.tenant(context))
        self.tasks.spawn(self._checkin(user, commands, view, where), what="check-in form",
                         tell=self._teller(where))

    async def _checkin(self, user: UserRef, commands: list[str], view: JSON,
                       where: Where) -> None:
        if not commands:
            await self.replier.private(Message.of("Nothing changed in your check-in."), where)
            return
        base = _view_event_id(view)
        said: list[Message] = []
        for i, text in enumerate(commands):
            inv = Invocation(user=user, text=text, channel=None,
                             event_id=f"{base}:{i}" if base else None,
                             tenant=where.tenant)
            said += [r.message for r in await self.core.handle(inv)]
        if said:
            await self.replier.private(lines(said), where)

    # ------------------------------------------------------------------ events

    async def on_message(self, body: JSON, event: JSON, context: AsyncBoltContext) -> None:
        tenant = self.clients.tenant(context)
        inv = inbound.direct_message(body, command_word=self.word, tenant=tenant)
        if inv is None:
            return
        where = Where(user=inv.user.id, channel=event.get("channel"),
                      dm_channel=event.get("channel"), tenant=tenant)
        self.tasks.spawn(self._run(inv, where), what="direct message",
                         tell=self._teller(where))

    async def on_moved(self, event: JSON, context: AsyncBoltContext) -> None:
        """Someone left the channel, was removed from it, or joined it: the core suspends
        or restores their membership of the cohort there, if any. The bot's own moves are
        not a member's (Bolt lets them through for these two events)."""
        found = inbound.move(event, bot_user=context.bot_user_id)
        if found is None:
            return
        self.tasks.spawn(self.core.moved(found.user, found.place, self.clients.tenant(context),
                                         present=found.present), what="channel membership")

    async def on_home_opened(self, event: JSON, context: AsyncBoltContext) -> None:
        if event.get("tab") != "home" or not event.get("user"):
            return
        user = UserRef(inbound.PLATFORM, str(event["user"]))
        self.tasks.spawn(self.publish_home(user, self.clients.tenant(context)), what="app home")

    async def publish_home(self, user: UserRef, tenant: str) -> None:
        """The App Home in `tenant`'s workspace, built from the replies of `next` and
        `action list` there."""
        sections: list[tuple[str, Message]] = []
        for heading, text in (("Next session", "next"), ("Your open actions", "action list")):
            replies = await self.core.handle(Invocation(user=user, text=text, channel=None,
                                                        tenant=tenant))
            sections.append((heading, lines([r.message for r in replies])))
        items = await self.core.checkin_items(user, tenant)
        view = views.home(sections, has_actions=bool(items), prefix=self.prefix)
        client = await self.clients.client_for(tenant)
        await client.views_publish(user_id=user.id, view=view)

    async def on_uninstalled(self, event: JSON, context: AsyncBoltContext) -> None:
        if self.revoked is not None:
            await self.revoked(event, context)
            return
        log.error("slack: the app was uninstalled or its tokens revoked (%s); nothing can be "
                  "sent until it is installed again", event.get("type"))

    async def on_ignored_event(self) -> None:
        return None

    async def on_error(self, error: Exception) -> None:
        ref = secrets.token_hex(4)
        log.error("slack: a request failed before it was acknowledged (ref %s): %s", ref,
                  type(error).__name__)


def _view_event_id(view: JSON) -> str | None:
    vid, vhash = view.get("id"), view.get("hash")
    return f"slack:view:{vid}:{vhash}" if vid else None
