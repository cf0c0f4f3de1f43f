"""Cross-signing as Matrix defines it: signatures over canonical JSON, the keys sealed at rest,
and which devices a homeserver's answer shows as signed by their owner."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.matrix.cross_signing import (
    Identity,
    Sealer,
    SealError,
    key_of,
    master_of,
    publish,
    query,
    sign,
    signed_by_owner,
    verify,
)
from tests.support.matrix_fixtures import ClientFactory

USER = "@bot:example.org"


def test_a_signature_covers_the_object_but_not_its_signatures_or_unsigned_part() -> None:
    identity = Identity.generate()
    obj = {"user_id": USER, "device_id": "DEV", "keys": {"ed25519:DEV": "abc"},
           "unsigned": {"device_display_name": "bot"}}
    signed = sign(obj, identity.self_signing, USER)
    assert verify(signed, identity.self_signing_public, USER)
    # Adding another signature or changing the unsigned part keeps it valid…
    again = sign({**signed, "unsigned": {}}, identity.master, USER)
    assert verify(again, identity.self_signing_public, USER)
    assert verify(again, identity.master_public, USER)
    # …changing what was signed, or checking with another key or user, does not.
    assert not verify({**signed, "device_id": "OTHER"}, identity.self_signing_public, USER)
    assert not verify(signed, identity.master_public, USER)
    assert not verify(signed, identity.self_signing_public, "@someone:example.org")


def test_the_upload_body_chains_both_subkeys_to_the_master_key() -> None:
    identity = Identity.generate()
    body = identity.upload_body(USER)
    master = key_of(body["master_key"])
    assert master == identity.master_public
    assert body["master_key"]["usage"] == ["master"]
    for name, usage in (("self_signing_key", "self_signing"),
                        ("user_signing_key", "user_signing")):
        assert body[name]["usage"] == [usage]
        assert verify(body[name], master, USER)
    assert key_of(body["self_signing_key"]) == identity.self_signing_public


def test_sealed_keys_open_with_any_configured_key_and_with_no_other() -> None:
    identity = Identity.generate()
    old = Sealer(["old-key-0123456789abcdef"])
    sealed = old.seal(identity)
    assert identity.to_json() not in sealed and identity.master_public not in sealed
    rotating = Sealer(["new-key-0123456789abcdef", "old-key-0123456789abcdef"])
    assert rotating.open(sealed).to_json() == identity.to_json()
    assert not rotating.current(sealed)
    assert rotating.current(rotating.seal(identity))
    with pytest.raises(SealError):
        Sealer(["new-key-0123456789abcdef"]).open(sealed)


def _answer(owner: Identity, device_signer: Identity, *, chained: bool = True) -> dict[str, Any]:
    """A `/keys/query` answer for USER's device DEV: the device signed by `device_signer`'s
    self-signing key, the account's keys being `owner`'s."""
    body = owner.upload_body(USER)
    ssk = body["self_signing_key"]
    if not chained:
        ssk = {k: v for k, v in ssk.items() if k != "signatures"}
    device = device_signer.sign_device(
        {"user_id": USER, "device_id": "DEV", "algorithms": [], "keys": {"ed25519:DEV": "x"}},
        USER)
    return {"device_keys": {USER: {"DEV": device}},
            "master_keys": {USER: body["master_key"]}, "self_signing_keys": {USER: ssk}}


def test_a_device_counts_as_signed_only_through_its_owners_master_key() -> None:
    owner = Identity.generate()
    assert signed_by_owner(_answer(owner, owner)) == {(USER, "DEV"): True}
    # Signed by some other self-signing key: not the owner's.
    assert signed_by_owner(_answer(owner, Identity.generate())) == {(USER, "DEV"): False}
    # A self-signing key the master key did not sign vouches for nothing.
    assert signed_by_owner(_answer(owner, owner, chained=False)) == {(USER, "DEV"): False}
    # No cross-signing keys at all.
    bare = _answer(owner, owner)
    del bare["master_keys"], bare["self_signing_keys"]
    assert signed_by_owner(bare) == {(USER, "DEV"): False}


async def test_the_homeserver_shows_which_devices_their_owners_signed(
    matrix_client_factory: ClientFactory,
) -> None:
    signed = await matrix_client_factory()  # cross-signed by the factory, as Element does
    unsigned = await matrix_client_factory(cross_sign=False)
    observer = await matrix_client_factory()
    answer = await query(observer, [signed.user_id, unsigned.user_id])
    assert master_of(answer, signed.user_id) is not None
    assert master_of(answer, unsigned.user_id) is None
    assert signed_by_owner(answer) == {(signed.user_id, signed.device_id): True,
                                       (unsigned.user_id, unsigned.device_id): False}
    # Keys the account has already cannot be replaced without its password.
    with pytest.raises(Exception, match="password"):
        await publish(signed, Identity.generate(), None)
