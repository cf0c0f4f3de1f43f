"""A fake Slack platform for tests: Web API, response_url, Socket Mode and signed requests."""

from .model import SlackError
from .seed import WORKSPACE, Workspace, seed_workspace
from .signing import PostResult, SignedRequest, SlackRequestBuilder, post_signed, sign
from .socket_mode import SocketConnection, SocketDelivery
from .webapi import Call, FakeSlack, ResponseUrlPost

__all__ = [
    "WORKSPACE",
    "Call",
    "FakeSlack",
    "PostResult",
    "ResponseUrlPost",
    "SignedRequest",
    "SlackError",
    "SlackRequestBuilder",
    "SocketConnection",
    "SocketDelivery",
    "Workspace",
    "post_signed",
    "seed_workspace",
    "sign",
]
