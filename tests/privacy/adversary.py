"""What someone holding a copy of the database can compute from it, in one place.

The adversary gets:
- a copy of the database (`take_snapshot`): on SQLite a copy made with the backup API (so
  what still sits in the WAL is included), on PostgreSQL the live schema read right away;
- the member list, read from the `members` table of that copy (`member_refs`);
- what the platform knows: the event ids / trigger ids / response URLs the test sent, and
  who sent each (`SentId`);
- where the property allows it, the operator's configured secret(s).

Its tools:
- `keyed_hash_links`: a generic keyed-hash attack. Every stored text value (and every long
  hex run inside one, decoded) is tried as an HMAC key, and, given secrets, so is
  HMAC-SHA256(secret, value) for every stored value (the secret-derived keys of a design
  that keeps salts in the database and the secret outside it). Candidate messages name
  people: `platform:user` and `user` per member, `qid:platform:user` and `qid:user` per
  question id, and each sent event id / trigger id (the platform knows its sender).
  HMAC-SHA256 and plain SHA-256 hexdigests of the messages are looked for among every
  64-hex-digit run stored anywhere (a prefix such as `k:` does not hide one).
- `xmin_rows` (PostgreSQL): every row of every table with its `xmin`, the id of the
  transaction that wrote it; rows written together share it.
- `ids_stored`, `timestamps_near`: raw platform ids anywhere in the stored text, and stored
  instants (datetime columns, or ISO timestamps inside text) close to a given instant.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.db.engine import sync_url

HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")
DIGEST = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")
ISO_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:?\d{2})?")


# ---------------------------------------------------------------------------- the copy


@dataclass(frozen=True)
class Cell:
    table: str
    column: str
    row: Mapping[str, Any]
    value: Any

    @property
    def where(self) -> str:
        return f"{self.table}.{self.column}"

    def show_row(self) -> str:
        return "{" + ", ".join(f"{k}={_short(v)}" for k, v in self.row.items()) + "}"


@dataclass
class Snapshot:
    """Every row of every table, as the adversary's copy holds them."""

    tables: dict[str, list[dict[str, Any]]]

    def cells(self) -> Iterator[Cell]:
        for name, rows in self.tables.items():
            for row in rows:
                for column, value in row.items():
                    if value is not None:
                        yield Cell(name, column, row, value)

    def texts(self) -> Iterator[tuple[Cell, str]]:
        """Every stored value in its text form (JSON documents as their JSON text)."""
        for cell in self.cells():
            text = as_text(cell.value)
            if text:
                yield cell, text


def as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return None


def take_snapshot(url: str, copy_dir: Path) -> Snapshot:
    """The adversary's copy: SQLite through the backup API (WAL included), PostgreSQL live."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        assert u.database
        copy = copy_dir / f"adversary-{len(list(copy_dir.glob('adversary-*.db')))}.db"
        src = sqlite3.connect(u.database)
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        read_url = f"sqlite:///{copy}"
    else:
        read_url = sync_url(url)
    engine = sa.create_engine(read_url)
    try:
        meta = sa.MetaData()
        meta.reflect(bind=engine)
        tables: dict[str, list[dict[str, Any]]] = {}
        with engine.connect() as conn:
            for name in sa.inspect(engine).get_table_names():
                rows = conn.execute(sa.select(meta.tables[name])).mappings().all()
                tables[name] = [dict(r) for r in rows]
        return Snapshot(tables)
    finally:
        engine.dispose()


def member_refs(snap: Snapshot) -> list[tuple[str, str]]:
    """(platform, user id) of everyone in the `members` table."""
    return sorted({(str(r["platform"]), str(r["user_id"])) for r in snap.tables["members"]})


@dataclass(frozen=True)
class SentId:
    """An id the platform put in something a person sent (the platform knows who)."""

    value: str
    sender: str  # platform:user
    what: str  # e.g. "ask", "upvote button", "cohort create"
    secret: bool  # a command tied to an anonymous question


# ---------------------------------------------------------------------------- keyed hashes


@dataclass(frozen=True)
class Link:
    person: str
    message: str
    key: str  # where the key came from
    found: Cell
    kind: str  # "HMAC-SHA256" or "SHA-256"

    @property
    def who(self) -> str:
        """The person named (platform:user)."""
        return self.person.split(" ", 1)[0]

    def __str__(self) -> str:
        return (f"{self.person} <- {self.found.where} in row {self.found.show_row()}: "
                f"{self.kind}(key={self.key}, {self.message!r})")


def candidate_messages(snap: Snapshot, sent: Iterable[SentId]) -> dict[str, str]:
    """Message → the person it names."""
    messages: dict[str, str] = {}
    qids = sorted({r["id"] for r in snap.tables.get("questions", [])})
    for platform, user in member_refs(snap):
        person = f"{platform}:{user}"
        messages[person] = person
        messages[user] = person
        for qid in qids:
            messages[f"{qid}:{platform}:{user}"] = person
            messages[f"{qid}:{user}"] = person
    for s in sent:
        messages[s.value] = f"{s.sender} (who sent {s.what})"
    return messages


def candidate_keys(snap: Snapshot, secrets: Iterable[str] = ()) -> dict[bytes, str]:
    """Key bytes → where they came from: stored values as UTF-8, hex runs decoded, and with
    secrets, HMAC-SHA256(secret, that material) as raw digest and as hex text."""
    material: dict[bytes, str] = {}
    for cell, text in snap.texts():
        material.setdefault(text.encode(), f"{cell.where} as text")
        for run in HEX_RUN.findall(text):
            material.setdefault(run.encode(), f"hex in {cell.where} as text")
            if len(run) % 2 == 0:
                material.setdefault(bytes.fromhex(run), f"hex in {cell.where} decoded")
    keys = dict(material)
    for secret in secrets:
        keys.setdefault(secret.encode(), "the configured secret")
        for raw, origin in material.items():
            derived = hmac.new(secret.encode(), raw, hashlib.sha256)
            keys.setdefault(derived.digest(), f"HMAC-SHA256(secret, {origin})")
            keys.setdefault(derived.hexdigest().encode(),
                            f"HMAC-SHA256(secret, {origin}).hexdigest()")
    return keys


def stored_digests(snap: Snapshot) -> dict[str, list[Cell]]:
    """Every 64-hex-digit run stored anywhere (lowercase) → the cells that hold it."""
    found: dict[str, list[Cell]] = {}
    for cell, text in snap.texts():
        for run in DIGEST.findall(text):
            found.setdefault(run.lower(), []).append(cell)
    return found


def keyed_hash_links(snap: Snapshot, sent: Iterable[SentId] = (),
                     secrets: Iterable[str] = ()) -> list[Link]:
    """Every stored value that is a (keyed) hash of a message naming someone."""
    stored = stored_digests(snap)
    if not stored:
        return []
    messages = candidate_messages(snap, sent)
    links: list[Link] = []
    for message, person in messages.items():
        plain = hashlib.sha256(message.encode()).hexdigest()
        links += [Link(person, message, "-", cell, "SHA-256") for cell in stored.get(plain, [])]
    encoded = [(m.encode(), m, p) for m, p in messages.items()]
    for key, origin in candidate_keys(snap, secrets).items():
        for raw, message, person in encoded:
            digest = hmac.new(key, raw, hashlib.sha256).hexdigest()
            if digest in stored:
                links += [Link(person, message, origin, cell, "HMAC-SHA256")
                          for cell in stored[digest]]
    return links


def report(title: str, links: Iterable[Link]) -> str:
    return title + "\n" + "\n".join(f"  {link}" for link in links)


# ---------------------------------------------------------------------------- PostgreSQL xmin


@dataclass
class XminRow:
    table: str
    xmin: str
    text: str


def xmin_rows(url: str) -> list[XminRow]:
    """Every row of every table of the live PostgreSQL schema, with its `xmin`."""
    engine = sa.create_engine(sync_url(url))
    try:
        out: list[XminRow] = []
        with engine.connect() as conn:
            for name in sa.inspect(engine).get_table_names():
                quoted = engine.dialect.identifier_preparer.quote(name)
                for xmin, text in conn.execute(sa.text(
                        f"SELECT t.xmin::text, t::text FROM {quoted} AS t")):
                    out.append(XminRow(name, str(xmin), str(text)))
        return out
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- ids and instants


@dataclass
class Found:
    what: str
    cell: Cell
    detail: str = field(default="")

    def __str__(self) -> str:
        return f"{self.what} in {self.cell.where}{self.detail}: row {self.cell.show_row()}"


def ids_stored(snap: Snapshot, ids: Iterable[SentId]) -> list[Found]:
    """Sent ids (raw, or inside a longer value) anywhere in the stored text."""
    texts = list(snap.texts())
    return [Found(f"{s.what} id {s.value!r} of {s.sender}", cell)
            for s in ids for cell, text in texts if s.value in text]


def _instants(value: Any) -> Iterator[datetime]:
    if isinstance(value, datetime):
        yield value if value.tzinfo else value.replace(tzinfo=UTC)
        return
    text = as_text(value)
    if not text:
        return
    for match in ISO_INSTANT.findall(text):
        try:
            parsed = datetime.fromisoformat(match.replace("Z", "+00:00"))
        except ValueError:
            continue
        yield parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def timestamps_near(snap: Snapshot, instant: datetime, within: timedelta, what: str
                    ) -> list[Found]:
    """Stored instants (datetime columns, ISO timestamps inside text) within `within` of
    `instant` (the moment of `what`)."""
    found: list[Found] = []
    for cell in snap.cells():
        for at in _instants(cell.value):
            if abs(at - instant) <= within:
                found.append(Found(f"{at.isoformat()} ({what} at {instant.isoformat()})",
                                   cell))
    return found


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."
