"""Cross-signing: the bot's Matrix account vouches for its own devices, and the bot tells
which of its members' devices their owners vouched for.

An account's cross-signing identity is three Ed25519 keys: the *master* key (the identity
itself), the *self-signing* key (signed by the master key; it signs the account's devices)
and the *user-signing* key (signed by the master key; it signs other people's master keys
when their owner verifies them). Clients such as Element trust a device only when its
owner's self-signing key signed it ("signed by its owner"); with their
exclude-insecure-devices mode they neither read nor write to any other device.

The bot's three private keys live in the database (`matrix_cross_signing`), sealed with
`[matrix] store_key`: every start and every instance on the account signs its device with
the same identity. This module holds the pure parts: the keys, signing and checking JSON the
Matrix way (canonical JSON, unpadded base64), sealing, and the calls to the homeserver.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nio import Api, AsyncClient

USAGES = ("master", "self_signing", "user_signing")


def b64(data: bytes) -> str:
    """Unpadded standard base64, as Matrix writes keys and signatures."""
    return base64.b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def canonical(obj: dict[str, Any]) -> bytes:
    """What a signature covers: the object without `signatures` and `unsigned`."""
    body = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return str(Api.to_canonical_json(body)).encode()


def _public(key: Ed25519PrivateKey) -> str:
    return b64(key.public_key().public_bytes_raw())


def sign(obj: dict[str, Any], key: Ed25519PrivateKey, user_id: str) -> dict[str, Any]:
    """`obj` with `key`'s signature added under `signatures.<user_id>.ed25519:<public>`."""
    signature = b64(key.sign(canonical(obj)))
    signatures = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
    signatures.setdefault(user_id, {})[f"ed25519:{_public(key)}"] = signature
    return {**obj, "signatures": signatures}


def verify(obj: dict[str, Any], public: str, user_id: str) -> bool:
    """Whether `obj` carries a valid signature of the Ed25519 key `public` by `user_id`."""
    signature = obj.get("signatures", {}).get(user_id, {}).get(f"ed25519:{public}")
    if not isinstance(signature, str):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(unb64(public)).verify(unb64(signature),
                                                                canonical(obj))
    except (InvalidSignature, ValueError):
        return False
    return True


def key_of(key_object: dict[str, Any] | None) -> str | None:
    """The public key in a cross-signing key object (`{"keys": {"ed25519:X": "X"}, …}`)."""
    if not key_object:
        return None
    for key_id, value in (key_object.get("keys") or {}).items():
        if key_id.startswith("ed25519:") and isinstance(value, str):
            return value
    return None


@dataclass(frozen=True)
class Identity:
    """An account's three cross-signing private keys."""

    master: Ed25519PrivateKey
    self_signing: Ed25519PrivateKey
    user_signing: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Identity:
        return cls(*(Ed25519PrivateKey.generate() for _ in USAGES))

    @property
    def master_public(self) -> str:
        return _public(self.master)

    @property
    def self_signing_public(self) -> str:
        return _public(self.self_signing)

    def to_json(self) -> str:
        return json.dumps({usage: b64(getattr(self, usage).private_bytes_raw())
                           for usage in USAGES})

    @classmethod
    def from_json(cls, text: str) -> Identity:
        seeds = json.loads(text)
        return cls(*(Ed25519PrivateKey.from_private_bytes(unb64(seeds[u])) for u in USAGES))

    def upload_body(self, user_id: str) -> dict[str, Any]:
        """The body of `POST /keys/device_signing/upload`: the three public keys, the
        self-signing and user-signing ones signed by the master key."""

        def key_object(usage: str) -> dict[str, Any]:
            public = _public(getattr(self, usage))
            return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}

        return {
            "master_key": key_object("master"),
            "self_signing_key": sign(key_object("self_signing"), self.master, user_id),
            "user_signing_key": sign(key_object("user_signing"), self.master, user_id),
        }

    def sign_device(self, device_keys: dict[str, Any], user_id: str) -> dict[str, Any]:
        """A device's keys (as `/keys/query` returned them) with only the self-signing key's
        signature: the body `/keys/signatures/upload` takes for it."""
        bare = {k: v for k, v in device_keys.items() if k not in ("signatures", "unsigned")}
        return sign(bare, self.self_signing, user_id)


class SealError(Exception):
    """No configured key opens the stored cross-signing keys."""


class Sealer:
    """The cross-signing keys at rest: Fernet under a key derived (HKDF-SHA256) from each
    `matrix.store_key` value; the first seals, any of them opens."""

    def __init__(self, keys: Iterable[str]) -> None:
        fernets = [Fernet(base64.urlsafe_b64encode(_derive(k))) for k in keys]
        if not fernets:
            raise ValueError("no store key given")
        self._first = fernets[0]
        self._all = MultiFernet(fernets)

    def seal(self, identity: Identity) -> str:
        return self._first.encrypt(identity.to_json().encode()).decode()

    def open(self, sealed: str) -> Identity:
        try:
            return Identity.from_json(self._all.decrypt(sealed.encode()).decode())
        except InvalidToken:
            raise SealError("no configured key opens them") from None

    def current(self, sealed: str) -> bool:
        """Whether `sealed` is sealed with the first key already."""
        try:
            self._first.decrypt(sealed.encode())
            return True
        except InvalidToken:
            return False


def _derive(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"cohortbot matrix cross-signing keys").derive(secret.encode())


# ---------------------------------------------------------------------- members' devices


def signed_by_owner(query: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """For each device in a `/keys/query` response: whether its owner's self-signing key
    (itself signed by the owner's master key) signed it."""
    masters = query.get("master_keys") or {}
    self_signing = query.get("self_signing_keys") or {}
    result: dict[tuple[str, str], bool] = {}
    for user_id, devices in (query.get("device_keys") or {}).items():
        ssk_object = self_signing.get(user_id)
        master = key_of(masters.get(user_id))
        ssk = key_of(ssk_object)
        ssk_ok = (master is not None and ssk is not None and ssk_object is not None
                  and verify(ssk_object, master, user_id))
        for device_id, keys in (devices or {}).items():
            result[(user_id, device_id)] = bool(
                ssk_ok and ssk is not None and isinstance(keys, dict)
                and verify(keys, ssk, user_id))
    return result


# ---------------------------------------------------------------------- the homeserver


class CrossSigningRefused(Exception):
    """The homeserver did not take the keys or the signature (one line, no secret)."""


class PasswordNeeded(CrossSigningRefused):
    """Replacing the account's keys needs its password, and none was given."""


async def request(client: AsyncClient, method: str, path: list[str],
                  body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One authenticated JSON request to the client-server API; its status and body."""
    resp = await client.send(method, Api._build_path(path), json.dumps(body),
                             headers={"Authorization": f"Bearer {client.access_token}",
                                      "Content-Type": "application/json"})
    try:
        data = await resp.json(content_type=None)
    except ValueError:
        data = {}
    finally:
        resp.release()
    return resp.status, data if isinstance(data, dict) else {}


async def query(client: AsyncClient, users: Iterable[str]) -> dict[str, Any]:
    """`POST /keys/query`: the devices and cross-signing keys of `users`."""
    status, data = await request(client, "POST", ["keys", "query"],
                                 {"device_keys": {u: [] for u in users}, "timeout": 10_000})
    if status != 200:
        raise CrossSigningRefused(f"the key query failed ({_error(status, data)})")
    return data


def master_of(data: dict[str, Any], user_id: str) -> str | None:
    """The master key a `/keys/query` response gives for `user_id`."""
    return key_of((data.get("master_keys") or {}).get(user_id))


async def publish(client: AsyncClient, identity: Identity, password: str | None) -> None:
    """Upload the account's cross-signing keys. A homeserver lets an account without
    cross-signing keys upload its first ones at once; replacing them takes the account's
    password (user-interactive authentication)."""
    assert client.user_id
    body = identity.upload_body(client.user_id)
    path = ["keys", "device_signing", "upload"]
    status, data = await request(client, "POST", path, body)
    if status == 401 and "flows" in data:
        flows = [stage for flow in data.get("flows", []) for stage in flow.get("stages", [])]
        if "m.login.password" not in flows:
            raise CrossSigningRefused(
                "the homeserver wants an approval other than the password to change the "
                "account's cross-signing keys (approve it in the account's settings on the "
                "homeserver, then start again)")
        if password is None:
            raise PasswordNeeded("the homeserver wants the account's password to set its "
                                 "cross-signing keys")
        body["auth"] = {"type": "m.login.password", "session": data.get("session"),
                        "identifier": {"type": "m.id.user", "user": client.user_id},
                        "password": password}
        status, data = await request(client, "POST", path, body)
    if status != 200:
        raise CrossSigningRefused(f"the homeserver refused the cross-signing keys "
                                  f"({_error(status, data)})")


async def sign_device(client: AsyncClient, identity: Identity, device_keys: dict[str, Any]
                      ) -> None:
    """Upload the self-signing key's signature of one of the account's devices."""
    assert client.user_id
    signed = identity.sign_device(device_keys, client.user_id)
    status, data = await request(client, "POST", ["keys", "signatures", "upload"],
                                 {client.user_id: {signed["device_id"]: signed}})
    failures = data.get("failures") or {}
    if status != 200 or failures:
        reason = _error(status, data) if status != 200 else json.dumps(failures)[:200]
        raise CrossSigningRefused(f"the homeserver refused the device's signature ({reason})")


def _error(status: int, data: dict[str, Any]) -> str:
    return str(data.get("errcode") or f"HTTP {status}")
