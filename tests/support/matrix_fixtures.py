"""Fixtures backed by a real Synapse homeserver (see tests/support/synapse.py), for every
test directory (registered as a plugin in tests/conftest.py).

Nothing here skips: if Synapse cannot be installed or started, the tests that need it fail
with the install or server log in the error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from nio import AsyncClient, AsyncClientConfig, KeysUploadResponse

from adapters.matrix.cross_signing import Identity, publish, query, sign_device
from tests.support.synapse import RateLimits, RegisteredUser, SynapseServer

ClientFactory = Callable[..., Awaitable[AsyncClient]]


async def sign_own_device(client: AsyncClient, identity: Identity) -> None:
    """Give `client`'s account the cross-signing `identity` (its first: no password needed)
    and sign the client's device with it."""
    assert client.user_id and client.device_id
    await publish(client, identity, None)
    keys = await query(client, [client.user_id])
    await sign_device(client, identity, keys["device_keys"][client.user_id][client.device_id])


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """One homeserver for the whole session, with rate limits opened wide.

    Tests make their own users with `synapse.register_user()`.
    """
    server = SynapseServer(tmp_path_factory.mktemp("synapse-relaxed"), rate_limits="relaxed")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def synapse_default_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """A second homeserver with Synapse's own rate limits; started only when asked for."""
    server = SynapseServer(tmp_path_factory.mktemp("synapse-default"), rate_limits="default")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def synapse_server_factory(tmp_path: Path) -> Iterator[Callable[..., SynapseServer]]:
    """Private, started servers for tests that stop or restart them; stopped at teardown."""
    servers: list[SynapseServer] = []

    def make(rate_limits: RateLimits = "relaxed") -> SynapseServer:
        server = SynapseServer(tmp_path / f"synapse-{len(servers)}", rate_limits=rate_limits)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
async def matrix_client_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ClientFactory]:
    """`await make_client(server=None, user=None, config=None)`: a logged-in nio client.

    Registers a fresh user on `server` (the session `synapse` when omitted) unless `user` is
    given, restores the login from its access token with an e2e store under tmp_path,
    uploads its device keys and, unless `cross_sign=False`, gives the user cross-signing keys
    and signs the device with them (as Element does: the bot shares room keys only with
    devices their owner signed, by default).
    All clients are closed at teardown.
    """
    clients: list[AsyncClient] = []

    async def make(
        server: SynapseServer | None = None,
        *,
        user: RegisteredUser | None = None,
        config: AsyncClientConfig | None = None,
        upload_keys: bool = True,
        cross_sign: bool = True,
    ) -> AsyncClient:
        if server is None:
            server = request.getfixturevalue("synapse")
        assert server is not None
        user = user or server.register_user()
        store = tmp_path / "nio-store" / f"{user.localpart}-{user.device_id}-{len(clients)}"
        store.mkdir(parents=True)
        client = AsyncClient(
            server.base_url,
            user.user_id,
            device_id=user.device_id,
            store_path=str(store),
            config=config or AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
        )
        clients.append(client)
        client.restore_login(user.user_id, user.device_id, user.access_token)
        if upload_keys and client.olm is not None and client.should_upload_keys:
            resp = await client.keys_upload()
            assert isinstance(resp, KeysUploadResponse), f"keys_upload failed: {resp}"
            if cross_sign:
                await sign_own_device(client, Identity.generate())
        return client

    yield make
    for client in clients:
        await client.close()
