"""Fixtures for Element-stack Matrix clients (matrix-js-sdk + Rust crypto; see
tests/support/jsclient.py), registered as a plugin in tests/conftest.py.

Nothing here skips: if npm is missing or the install fails, the tests that need a js client
fail with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Literal

import pytest

from tests.support.jsclient import Isolation, JsClient, JsInstall, ensure_js_client_installed
from tests.support.synapse import RegisteredUser, SynapseServer

JsClientFactory = Callable[..., Awaitable[JsClient]]


@pytest.fixture(scope="session")
def js_client_install() -> JsInstall:
    """The Node project installed (`npm ci`, only when its lock file changed) and a Node >= 22
    to run it with."""
    return ensure_js_client_installed()


@pytest.fixture
async def js_client_factory(
    request: pytest.FixtureRequest, tmp_path: Path, js_client_install: JsInstall
) -> AsyncIterator[JsClientFactory]:
    """`await make_js_client(server=None, *, user=None, isolation="only_signed",
    cross_sign=True, auto_join=None)`: a logged-in js client on a new device.

    Registers a fresh user on `server` (the session `synapse` when omitted) unless `user` is
    given; the client logs in with the password, bootstraps cross-signing as Element does
    (unless `cross_sign=False`), sets the device isolation mode and has done its first sync.
    Every driver process is stopped (and its process
    group killed) at teardown; its stderr is in `client.stderr_path`.
    """
    clients: list[JsClient] = []

    async def make(
        server: SynapseServer | None = None,
        *,
        user: RegisteredUser | None = None,
        isolation: Isolation = "only_signed",
        cross_sign: bool = True,
        auto_join: Iterable[str] | Literal["*"] | None = None,
    ) -> JsClient:
        if server is None:
            server = request.getfixturevalue("synapse")
        assert server is not None
        user = user or server.register_user()
        log = tmp_path / "js-client" / f"{user.localpart}-{len(clients)}.log"
        client = await JsClient.start(js_client_install, log)
        clients.append(client)
        await client.login(server.base_url, user.user_id, user.password, isolation=isolation,
                           cross_sign=cross_sign, auto_join=auto_join)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.stop()
