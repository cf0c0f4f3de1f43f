"""Requests as Slack sends them to an app's Request URL, signed with the v0 scheme.

``X-Slack-Signature: v0=hex(hmac_sha256(signing_secret, f"v0:{timestamp}:{body}"))`` with
``X-Slack-Request-Timestamp: timestamp``. Slash commands are form-encoded fields;
interactivity is a form with one ``payload=<json>`` field; the Events API is JSON.

Each builder method comes in two flavours: ``*_payload(...)`` gives the dict (what Socket Mode
puts in an envelope's ``payload``), the plain one gives a ``SignedRequest`` for HTTP mode.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp

if TYPE_CHECKING:
    from .webapi import FakeSlack

JSON = dict[str, Any]
STALE_AFTER = 60 * 5


def sign(secret: str, timestamp: int | str, body: bytes | str) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class SignedRequest:
    """Headers and body bytes; unpacks as ``headers, body = request``."""

    headers: dict[str, str]
    body: bytes
    payload: JSON  # the parsed content, for assertions and Socket Mode reuse

    def __iter__(self) -> Iterator[Any]:
        return iter((self.headers, self.body))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class PostResult:
    status: int
    body: str
    elapsed: float
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


async def post_signed(url: str, request: SignedRequest, *, timeout: float = 10.0) -> PostResult:
    """POST a built request to an app the way Slack does; time the answer."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        started = time.monotonic()
        async with session.post(url, data=request.body, headers=request.headers) as resp:
            body = await resp.text()
            elapsed = time.monotonic() - started
            return PostResult(resp.status, body, elapsed, dict(resp.headers))


class SlackRequestBuilder:
    """Builds signed Slack → app requests.

    Wired to a ``FakeSlack`` (``fake.requests()``), trigger ids and response URLs come from
    the fake, so ``views.open`` accepts the former and POSTs to the latter are recorded.
    """

    def __init__(self, signing_secret: str, *, team_id: str = "T0COHORT1",
                 team_domain: str = "cohort-test", api_app_id: str = "A0COHORT1",
                 verification_token: str = "verificationtokenfake",
                 bot_user_id: str | None = None, fake: FakeSlack | None = None,
                 response_url_base: str = "http://127.0.0.1:9/response") -> None:
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.team_domain = team_domain
        self.api_app_id = api_app_id
        self.verification_token = verification_token
        self.bot_user_id = bot_user_id
        self.fake = fake
        self.response_url_base = response_url_base

    @classmethod
    def for_fake(cls, fake: FakeSlack, team_id: str | None = None) -> SlackRequestBuilder:
        """Requests from the fake's workspace, or from another one it knows (`add_team`).

        Event callbacks name the app's bot user in that workspace in ``authorizations``,
        if it is installed there by the time the builder is made."""
        team = team_id or fake.team_id
        _, domain = fake.teams[team]
        return cls(fake.signing_secret, team_id=team, team_domain=domain,
                   api_app_id=fake.app_id, verification_token=fake.verification_token,
                   bot_user_id=fake.bot_user_of(team), fake=fake)

    # ---------------------------------------------------------------- plumbing

    def sign_body(self, body: bytes, content_type: str, *, timestamp: int | None = None,
                  bad_signature: bool = False, stale: bool = False,
                  retry_num: int | None = None, retry_reason: str | None = None
                  ) -> dict[str, str]:
        ts = int(time.time()) if timestamp is None else timestamp
        if stale:
            ts -= STALE_AFTER + 60
        signature = sign(self.signing_secret, ts, body)
        if bad_signature:
            signature = sign(self.signing_secret + "-wrong", ts, body)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "Accept": "application/json,*/*",
            "Accept-Encoding": "gzip,deflate",
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        return headers

    def _form(self, fields: JSON, payload: JSON, **signing: Any) -> SignedRequest:
        body = urlencode(fields).encode()
        return SignedRequest(
            self.sign_body(body, "application/x-www-form-urlencoded", **signing), body, payload)

    def _json(self, payload: JSON, **signing: Any) -> SignedRequest:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return SignedRequest(self.sign_body(body, "application/json", **signing), body, payload)

    def _trigger(self, user_id: str) -> str:
        if self.fake is not None:
            return self.fake.issue_trigger(user_id, team_id=self.team_id)
        return f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"

    def _response_url(self, channel_id: str | None, user_id: str,
                      message_ts: str | None = None) -> str:
        if self.fake is not None:
            return self.fake.issue_response_url(channel_id, user_id, message_ts,
                                                team_id=self.team_id)
        return f"{self.response_url_base}/{secrets.token_hex(12)}"

    def _user_name(self, user_id: str) -> str:
        if self.fake is not None:
            with self.fake._lock:
                if user_id in self.fake.users:
                    return self.fake.users[user_id].name
        return user_id.lower()

    def _channel_name(self, channel_id: str) -> str:
        if self.fake is not None:
            with self.fake._lock:
                ch = self.fake.channels.get(channel_id)
                if ch is not None:
                    return "directmessage" if ch.is_im else ch.name
        return "directmessage" if channel_id.startswith("D") else channel_id.lower()

    def _user_obj(self, user_id: str) -> JSON:
        name = self._user_name(user_id)
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    # ---------------------------------------------------------------- slash commands

    def slash_command_payload(self, command: str, text: str = "", *, user_id: str,
                              channel_id: str, trigger_id: str | None = None,
                              response_url: str | None = None) -> JSON:
        return {
            "token": self.verification_token, "team_id": self.team_id,
            "team_domain": self.team_domain, "channel_id": channel_id,
            "channel_name": self._channel_name(channel_id), "user_id": user_id,
            "user_name": self._user_name(user_id), "command": command, "text": text,
            "api_app_id": self.api_app_id, "is_enterprise_install": "false",
            "response_url": response_url or self._response_url(channel_id, user_id),
            "trigger_id": trigger_id or self._trigger(user_id),
        }

    def slash_command(self, command: str, text: str = "", *, user_id: str, channel_id: str,
                      trigger_id: str | None = None, response_url: str | None = None,
                      **signing: Any) -> SignedRequest:
        payload = self.slash_command_payload(command, text, user_id=user_id,
                                             channel_id=channel_id, trigger_id=trigger_id,
                                             response_url=response_url)
        return self._form(payload, payload, **signing)

    # ---------------------------------------------------------------- interactivity

    def block_actions_payload(self, actions: list[JSON], *, user_id: str,
                              channel_id: str | None = None, message: JSON | None = None,
                              view: JSON | None = None, state: JSON | None = None) -> JSON:
        """A button click (or similar) in a message (``message``) or a view (``view``)."""
        action_ts = f"{time.time():.6f}"
        acts = [{"action_ts": action_ts, "type": "button", **a} for a in actions]
        payload: JSON = {
            "type": "block_actions", "user": self._user_obj(user_id),
            "api_app_id": self.api_app_id, "token": self.verification_token,
            "trigger_id": self._trigger(user_id),
            "team": {"id": self.team_id, "domain": self.team_domain}, "enterprise": None,
            "is_enterprise_install": False, "actions": acts,
        }
        if view is not None:
            payload["container"] = {"type": "view", "view_id": view["id"]}
            payload["view"] = {**view, "state": state or view.get("state", {"values": {}})}
        else:
            if channel_id is None:
                raise ValueError("a message action needs channel_id")
            message = message or {"type": "message", "ts": f"{time.time():.6f}", "text": ""}
            is_ephemeral = bool(message.get("is_ephemeral"))
            payload["container"] = {"type": "message", "message_ts": message["ts"],
                                    "channel_id": channel_id, "is_ephemeral": is_ephemeral}
            payload["channel"] = {"id": channel_id, "name": self._channel_name(channel_id)}
            payload["message"] = message
            payload["state"] = state or {"values": {}}
            payload["response_url"] = self._response_url(channel_id, user_id, message["ts"])
        return payload

    def block_actions(self, actions: list[JSON], *, user_id: str,
                      channel_id: str | None = None, message: JSON | None = None,
                      view: JSON | None = None, state: JSON | None = None,
                      **signing: Any) -> SignedRequest:
        payload = self.block_actions_payload(actions, user_id=user_id, channel_id=channel_id,
                                             message=message, view=view, state=state)
        return self._form({"payload": json.dumps(payload)}, payload, **signing)

    def _view(self, view: JSON | str) -> JSON:
        if isinstance(view, str):
            if self.fake is None:
                raise ValueError("a view id needs a builder wired to a FakeSlack")
            return self.fake.view(view)
        return view

    def view_submission_payload(self, view: JSON | str, *, user_id: str,
                                values: JSON | None = None) -> JSON:
        """``values``: ``{block_id: {action_id: {"type": ..., "value": ...}}}``."""
        v = dict(self._view(view))
        v["state"] = {"values": values or {}}
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": self._user_obj(user_id), "api_app_id": self.api_app_id,
            "token": self.verification_token, "trigger_id": self._trigger(user_id),
            "view": v, "response_urls": [], "is_enterprise_install": False, "enterprise": None,
        }

    def view_submission(self, view: JSON | str, *, user_id: str, values: JSON | None = None,
                        **signing: Any) -> SignedRequest:
        payload = self.view_submission_payload(view, user_id=user_id, values=values)
        return self._form({"payload": json.dumps(payload)}, payload, **signing)

    def view_closed_payload(self, view: JSON | str, *, user_id: str,
                            is_cleared: bool = False) -> JSON:
        return {
            "type": "view_closed",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": self._user_obj(user_id), "api_app_id": self.api_app_id,
            "token": self.verification_token, "view": dict(self._view(view)),
            "is_cleared": is_cleared, "is_enterprise_install": False, "enterprise": None,
        }

    def view_closed(self, view: JSON | str, *, user_id: str, is_cleared: bool = False,
                    **signing: Any) -> SignedRequest:
        payload = self.view_closed_payload(view, user_id=user_id, is_cleared=is_cleared)
        return self._form({"payload": json.dumps(payload)}, payload, **signing)

    # ---------------------------------------------------------------- Events API

    def event_callback_payload(self, event: JSON, *, event_id: str | None = None,
                               event_time: int | None = None) -> JSON:
        now = time.time()
        event = {"event_ts": event.get("ts", f"{now:.6f}"), **event}
        authorizations = []
        if self.bot_user_id:
            authorizations.append({"enterprise_id": None, "team_id": self.team_id,
                                   "user_id": self.bot_user_id, "is_bot": True,
                                   "is_enterprise_install": False})
        return {
            "token": self.verification_token, "team_id": self.team_id,
            "context_team_id": self.team_id, "context_enterprise_id": None,
            "api_app_id": self.api_app_id, "event": event, "type": "event_callback",
            "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": event_time or int(now), "authorizations": authorizations,
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_urlsafe(24),
        }

    def event_callback(self, event: JSON, *, event_id: str | None = None,
                       event_time: int | None = None, **signing: Any) -> SignedRequest:
        payload = self.event_callback_payload(event, event_id=event_id, event_time=event_time)
        return self._json(payload, **signing)

    def message_event(self, *, user_id: str, channel_id: str, text: str,
                      ts: str | None = None, thread_ts: str | None = None,
                      channel_type: str | None = None) -> JSON:
        """The ``event`` of a user's ``message`` (pass it to ``event_callback``)."""
        if channel_type is None:
            channel_type = "im" if channel_id.startswith("D") else "channel"
            if self.fake is not None:
                with self.fake._lock:
                    ch = self.fake.channels.get(channel_id)
                    if ch is not None:
                        channel_type = ch.event_channel_type
        ts = ts or f"{time.time():.6f}"
        event: JSON = {
            "type": "message", "user": user_id, "text": text, "ts": ts,
            "client_msg_id": str(uuid.uuid4()), "team": self.team_id, "channel": channel_id,
            "event_ts": ts, "channel_type": channel_type,
            "blocks": [{"type": "rich_text", "block_id": secrets.token_hex(2), "elements": [
                {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}]}],
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
            event["parent_user_id"] = user_id
        return event

    def app_mention_event(self, *, user_id: str, channel_id: str, text: str,
                          ts: str | None = None) -> JSON:
        ts = ts or f"{time.time():.6f}"
        return {"type": "app_mention", "user": user_id, "text": text, "ts": ts,
                "team": self.team_id, "channel": channel_id, "event_ts": ts,
                "client_msg_id": str(uuid.uuid4())}

    def app_home_opened_event(self, *, user_id: str, channel_id: str, tab: str = "home",
                              view: JSON | None = None) -> JSON:
        event: JSON = {"type": "app_home_opened", "user": user_id, "channel": channel_id,
                       "tab": tab, "event_ts": f"{time.time():.6f}"}
        if view is not None:
            event["view"] = view
        return event

    def _membership_event(self, kind: str, user_id: str, channel_id: str,
                          enterprise_id: str | None) -> JSON:
        channel_type = "C"
        if self.fake is not None:
            with self.fake._lock:
                ch = self.fake.channels.get(channel_id)
                if ch is not None and ch.is_private:
                    channel_type = "G"
        event: JSON = {"type": kind, "user": user_id, "channel": channel_id,
                       "channel_type": channel_type, "team": self.team_id,
                       "event_ts": f"{time.time():.6f}"}
        if enterprise_id:
            event["enterprise"] = enterprise_id
        return event

    def member_joined_channel_event(self, *, user_id: str, channel_id: str,
                                    inviter: str | None = None,
                                    enterprise_id: str | None = None) -> JSON:
        event = self._membership_event("member_joined_channel", user_id, channel_id,
                                       enterprise_id)
        if inviter:
            event["inviter"] = inviter
        return event

    def member_left_channel_event(self, *, user_id: str, channel_id: str,
                                  enterprise_id: str | None = None) -> JSON:
        """Someone left ``channel_id``, or was removed from it by someone else (Slack sends
        the same event for both; ``channel_left`` is only ever the bot's own)."""
        return self._membership_event("member_left_channel", user_id, channel_id,
                                      enterprise_id)

    def url_verification(self, challenge: str | None = None, **signing: Any) -> SignedRequest:
        payload = {"token": self.verification_token,
                   "challenge": challenge or secrets.token_urlsafe(32),
                   "type": "url_verification"}
        return self._json(payload, **signing)
