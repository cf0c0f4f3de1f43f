"""The bot's Matrix store directory: owner-only file modes, and matrix-nio's crypto store
sealed with `matrix.store_key`.

matrix-nio keeps the bot's Olm account (its identity keys), its Olm sessions and the Megolm
room keys it received in a SQLite file under `store_path`, each pickled (encrypted) with the
client's pickle key. Without a configured one that key is the library's default,
"DEFAULT_KEY": whoever can read the file can then decrypt the bot's direct messages.

`seal` re-pickles every such row under the first configured key, whichever of the
configured keys (or the library's default, for a store made before the setting existed)
opened it. The rows keep everything else: the device id, its identity keys and its sessions
stay the same, so no new device is needed and existing conversations go on.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from nio import AsyncClientConfig
from nio.crypto import InboundGroupSession, OlmAccount, Session

from bot.config import ConfigError

log = logging.getLogger(__name__)

#: What matrix-nio pickles with when no key is configured (stores made before store_key).
LIBRARY_DEFAULT_KEY: str = AsyncClientConfig().pickle_key
KEY_VARIABLE = "COHORTBOT_MATRIX__STORE_KEY"
DIR_MODE = 0o700
FILE_MODE = 0o600


def store_keys(secret: str) -> list[str]:
    """The configured keys, in order: the first seals, the others only open."""
    return [k.strip() for k in secret.split(",") if k.strip()]


def restrict(store: Path) -> None:
    """The store directory (made if need be) 0700, everything in it 0600 (0700 for a
    directory): also what an older version left readable to others."""
    try:
        store.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        _chmod(store, DIR_MODE)
        for root, dirs, files in os.walk(store):
            for name in dirs:
                _chmod(Path(root, name), DIR_MODE)
            for name in files:
                _chmod(Path(root, name), FILE_MODE)
    except OSError as e:
        raise ConfigError(f"matrix.store_path: cannot make {store} readable by its owner "
                          f"only ({e.strerror or type(e).__name__})",
                          key="matrix.store_path") from None


def _chmod(path: Path, mode: int) -> None:
    if path.is_symlink():
        return
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)


class StoreKeyError(Exception):
    pass


def seal(store: Path, keys: list[str]) -> int:
    """Re-pickle, under ``keys[0]``, every crypto row of the nio stores in `store` that
    another of `keys` or the library's default key opens; returns how many rows were
    re-pickled. Raises `ConfigError` (one line naming the variable) when a row opens with
    none of them."""
    assert keys
    candidates = [*keys, *([LIBRARY_DEFAULT_KEY] if LIBRARY_DEFAULT_KEY not in keys else [])]
    done = 0
    for path in sorted(store.glob("*.db")):
        try:
            done += _seal_file(path, candidates)
        except StoreKeyError as e:
            raise ConfigError(
                f"matrix.store_key: none of the configured keys opens the encryption store "
                f"{path} ({e}); set the key it was sealed with in {KEY_VARIABLE} (while "
                f"rotating: the new key first, then the old one: new,old)",
                key="matrix.store_key") from None
    if done:
        log.info("matrix: sealed %d key(s) in the encryption store with the first "
                 "matrix.store_key", done)
    return done


#: table: what a row holds, its primary key, its pickled column, the columns unpickling needs.
_ROWS: dict[str, tuple[str, str, str, str]] = {
    "accounts": ("the account", "id", "account", "shared"),
    "olmsessions": ("an Olm session", "session_id", "session", "creation_time"),
    "megolminboundsessions": ("a room key", "session_id", "session",
                              "fp_key, sender_key, room_id"),
}


def _seal_file(path: Path, keys: list[str]) -> int:
    db = sqlite3.connect(path)
    try:
        tables = {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "accounts" not in tables:
            return 0  # not a matrix-nio store
        # Overwrite what a row held before, not merely mark it free.
        db.execute("PRAGMA secure_delete = 1")
        done = 0
        with db:  # one transaction: the whole file is re-sealed, or nothing is
            for table, (what, pk, column, extra) in _ROWS.items():
                if table not in tables:
                    continue
                for ident, raw, *rest in db.execute(
                        f"SELECT {pk}, {column}, {extra} FROM {table}").fetchall():
                    pickle = raw if isinstance(raw, bytes) else str(raw).encode()
                    index, obj = _open(pickle, keys, _LOADERS[table](rest), what)
                    if index == 0 and not getattr(obj, "upgrade_pickle", False):
                        continue  # sealed with the first key already
                    db.execute(f"UPDATE {table} SET {column} = ? WHERE {pk} = ?",
                               (obj.pickle(keys[0]), ident))
                    done += 1
        return done
    finally:
        db.close()


Loader = Callable[[bytes, str], Any]


def _account(rest: list[Any]) -> Loader:
    return lambda pickle, key: OlmAccount.from_pickle(pickle, key, bool(rest[0]))


def _session(rest: list[Any]) -> Loader:
    return lambda pickle, key: Session.from_pickle(pickle, datetime.now(), key)


def _group_session(rest: list[Any]) -> Loader:
    fp_key, sender_key, room_id = rest
    return lambda pickle, key: InboundGroupSession.from_pickle(
        pickle, fp_key, sender_key, room_id, key)


_LOADERS: dict[str, Callable[[list[Any]], Loader]] = {
    "accounts": _account, "olmsessions": _session, "megolminboundsessions": _group_session,
}


def _open(pickle: bytes, keys: list[str], load: Loader, what: str) -> tuple[int, Any]:
    """The index of the first key that unpickles, and what it unpickled."""
    for index, key in enumerate(keys):
        try:
            return index, load(pickle, key)
        except Exception:  # noqa: BLE001 - vodozemac's errors for a wrong key vary
            continue
    raise StoreKeyError(f"{what} does not open")
