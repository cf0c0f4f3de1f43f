"""`cohortbot db copy`: every row of every table from SQLite to PostgreSQL and back.

A SQLite database is filled through the real core (cohorts, members, a schedule, actions,
questions, upvotes, swaps, absences, and a simulated fortnight of notifications and sent
messages), copied into an empty PostgreSQL schema, compared row by row, copied back into a
new SQLite file and compared again. The bot then runs on the copy: new rows get new ids
(the sequences were moved past the copied ones, and past outbox ids already handed out).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot.bootstrap import App, build, ensure_schema
from bot.config import load_settings
from bot.db.copy import CopyError, TargetNotEmpty, copy_database
from bot.db.engine import sync_url, upgrade
from bot.db.tables import metadata
from bot.scheduling.clock import SimulatedClock
from tests.conftest import START, Harness, RecordingMessenger, pg_schema
from tests.e2e.conftest import COHORTBOT

SECRET = "a-question-secret-for-the-copy-test"
ACTION = "Draft the no email and show it to one person"
QUESTION = "How do you say no to a PI without burning the bridge?"

Snapshot = dict[str, list[dict[str, Any]]]


def _app(url: str, start: datetime = START) -> tuple[App, RecordingMessenger, SimulatedClock]:
    settings = load_settings(environ={
        "COHORTBOT_DATABASE__URL": url,
        "COHORTBOT_BOT__ADMINS": '["terminal:root"]',
        "COHORTBOT_BOT__QUESTION_SECRET": SECRET,
    })
    clock = SimulatedClock(start)
    messenger = RecordingMessenger()
    return build(settings, clock=clock, messengers={"terminal": messenger}), messenger, clock


async def _fill(url: str) -> datetime:
    """A fortnight of a cohort's life, through the core; returns the clock at the end."""
    app, messenger, clock = _app(url)
    h = Harness(app, messenger, clock)
    try:
        await h.setup_cohort(members="@ana @ben @cai @dev")
        assert "Created" in await h.say("root", "cohort create Peer B", channel="peer-b")
        await h.say("cai", "tz Europe/Berlin", channel=None)
        await h.say("ben", f"action add {ACTION}")
        await h.say("cai", "action add Read the paper")
        await h.say("cai", "away 2026-12-15")
        await h.say("ben", "swap moderator @cai")
        await h.advance("1d")
        await h.say("ben", "action partly 1 wrote half of it")
        await h.say("ben", f"ask {QUESTION}", channel=None)
        await h.say("ana", "ask Is it normal to feel behind in year two?", channel=None)
        await h.advance("5h1m")
        await h.say("cai", "upvote 1")
        await h.advance("6d")
        await h.say("dev", "action add Ask for feedback")
        await h.say("ben", "ask What do you read to keep up?", channel=None)
        await h.say("dev", "ask Who else writes at night?", channel=None)
        await h.advance("1d")  # the second session: its questions are out, upvotes open
        await h.say("cai", "upvote 3")
        await h.say("ana", "ask One more for next week?", channel=None)  # today's count
        return clock.now()
    finally:
        await app.close()


def _snapshot(url: str) -> Snapshot:
    """Every row of every table as Python values (instants in UTC), and which JSON values
    are SQL NULL rather than JSON null."""
    engine = sa.create_engine(sync_url(url))
    out: Snapshot = {}
    try:
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                json_cols = [c for c in table.columns if isinstance(c.type, sa.JSON)]
                marks = [c.is_(None).label(f"{c.name} is SQL NULL") for c in json_cols]
                rows = conn.execute(sa.select(table, *marks)
                                    .order_by(*table.primary_key.columns)).mappings()
                out[table.name] = [
                    {k: v.astimezone(UTC) if isinstance(v, datetime) else v
                     for k, v in row.items()} for row in rows]
    finally:
        engine.dispose()
    return out


def _next_ids(url: str) -> dict[str, int]:
    """The id each table's next row would get, as far as the database says ahead of time:
    for SQLite's AUTOINCREMENT outbox, sqlite_sequence; for PostgreSQL, the sequence."""
    engine = sa.create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                seq = conn.scalar(sa.text("SELECT seq FROM sqlite_sequence "
                                          "WHERE name = 'outbox'")) or 0
                return {"outbox": int(seq) + 1}
            out = {}
            for table in metadata.sorted_tables:
                if table.autoincrement_column is None:
                    continue
                seq = conn.scalar(sa.text("SELECT pg_get_serial_sequence(:t, 'id')"),
                                  {"t": table.name})
                last, called = conn.execute(
                    sa.text(f"SELECT last_value, is_called FROM {seq}")).one()
                out[table.name] = last + 1 if called else last
            return out
    finally:
        engine.dispose()


def _max_ids(snapshot: Snapshot) -> dict[str, int]:
    return {name: max((r["id"] for r in rows), default=0)
            for name, rows in snapshot.items() if rows and "id" in rows[0]}


def _cli_copy(source: str, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COHORTBOT, "db", "copy", "--from", source, "--to", target],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[str, datetime]]:
    import asyncio

    url = f"sqlite+aiosqlite:///{tmp_path / 'source.db'}"
    ensure_schema(url)
    yield url, asyncio.run(_fill(url))


def test_sqlite_to_postgres_and_back_keeps_every_row(filled: tuple[str, datetime],
                                                     tmp_path: Path) -> None:
    source, _ = filled
    # The bot writes an absent JSON value as JSON null; older rows may hold SQL NULL. The
    # copy keeps the two apart (`schedule IS NOT NULL` is how scheduled cohorts are found).
    engine = sa.create_engine(sync_url(source))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE sessions SET roster = NULL WHERE id = "
                             "(SELECT max(id) FROM sessions WHERE roster = 'null')"))
    engine.dispose()
    before = _snapshot(source)
    nulls = [r["roster is SQL NULL"] for r in before["sessions"] if r["roster"] is None]
    assert True in nulls and False in nulls
    # The fill reached every table a cohort's life writes to.
    empty = {name for name, rows in before.items() if not rows}
    assert empty <= {"slack_installations", "seen_events", "matrix_cross_signing"}, empty
    source_next = _next_ids(source)
    assert source_next["outbox"] > _max_ids(before).get("outbox", 0)  # sent ones pruned

    with pg_schema() as pg:
        done = copy_database(source, pg, batch_rows=3)  # several batches per table
        assert [d.table for d in done] == [t.name for t in metadata.sorted_tables]
        assert {d.table: d.rows for d in done} == {n: len(r) for n, r in before.items()}
        assert _snapshot(pg) == before
        pg_next = _next_ids(pg)
        for name, highest in _max_ids(before).items():
            assert pg_next[name] == highest + 1, name
        assert pg_next["outbox"] == source_next["outbox"]  # no outbox id comes back

        # Back into a new SQLite file, through the command line, with the plain URL forms.
        back = tmp_path / "back.db"
        result = _cli_copy(pg.replace("postgresql+psycopg://", "postgresql://"),
                           f"sqlite:///{back}")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("copying PostgreSQL test on 127.0.0.1:5432 to SQLite ")
        for name, rows in before.items():
            assert f"{name}: {len(rows)} row{'' if len(rows) == 1 else 's'}" in lines
        total = sum(len(r) for r in before.values())
        assert lines[-1] == f"total: {total} rows in {len(before)} tables"
        for text in (ACTION, QUESTION, "wrote half", "ana", "Peer A", "Europe/Berlin"):
            assert text not in result.stdout + result.stderr  # counts only, never contents
        back_url = f"sqlite+aiosqlite:///{back}"
        assert _snapshot(back_url) == before
        assert _next_ids(back_url)["outbox"] == source_next["outbox"]
        assert back.stat().st_mode & 0o077 == 0  # the new file is the bot's alone


async def test_the_bot_runs_on_the_copy(filled: tuple[str, datetime]) -> None:
    source, end = filled
    before = _snapshot(source)
    outbox_next = _next_ids(source)["outbox"]
    with pg_schema() as pg:
        copy_database(source, pg)
        app, messenger, clock = _app(pg, start=end)
        messenger.elsewhere = []  # the source's process posted the questions
        h = Harness(app, messenger, clock)
        try:
            assert "Added" in await h.say("root", "cohort members add @eve")
            assert "1" in await h.say("eve", "action add Say hello")
            assert "Created" in await h.say("root", "cohort create Peer C", channel="peer-c")
            await h.advance("8d")  # reminders, roles, check-ins: new notifications and sends
            assert h.channel_posts()
            # Sent messages are pruned after a day, but their ids never come back.
            assert min(s.outbox_id for s in messenger.sent) == outbox_next
            # A question posted before the copy gets its vote count edited on the copy.
            assert any(verb == "edit" and target == "peer-a"
                       for verb, _, target in messenger.elsewhere), messenger.elsewhere
        finally:
            await app.close()
        after = _snapshot(pg)
    highest = _max_ids(before)
    for name in ("members", "actions", "cohorts", "notifications"):
        old_ids = {r["id"] for r in before[name]}
        new = [r for r in after[name] if r["id"] not in old_ids]
        assert new, name
        assert min(r["id"] for r in new) > highest.get(name, 0), name
    # The copied people are the same people: the new action is numbered after the others.
    assert {r["user_id"] for r in after["members"]} >= {"ana", "ben", "cai", "dev", "eve"}


def test_a_target_with_rows_is_refused(filled: tuple[str, datetime], tmp_path: Path) -> None:
    source, _ = filled
    target = tmp_path / "target.db"
    target_url = f"sqlite+aiosqlite:///{target}"
    upgrade(target_url, "0006")  # a database of an older version: refused, not migrated
    engine = sa.create_engine(sync_url(target_url))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO seen_events (event_id, seen_at) "
                             "VALUES ('e1', '2026-12-01 09:00:00.000000')"))
    result = _cli_copy(source, f"sqlite:///{target}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cohortbot db copy: the target database is not empty: table 'seen_events' has rows "
        "(copy only into an empty database)"]
    assert "total" not in result.stdout
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == "0006"
    engine.dispose()
    ensure_schema(target_url)
    assert {n: len(r) for n, r in _snapshot(target_url).items() if r} == {"seen_events": 1}

    with pg_schema() as pg:
        copy_database(source, pg)
        with pytest.raises(TargetNotEmpty) as refused:
            copy_database(source, pg)
        assert refused.value.table == "cohorts"


def test_what_cannot_be_copied_is_said_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = _cli_copy(f"sqlite:///{missing}", f"sqlite:///{tmp_path / 'new.db'}")
    assert result.returncode == 2
    assert result.stderr.strip() == ("cohortbot db copy: the source database does not exist: "
                                     f"SQLite {missing}")
    assert not missing.exists()

    result = _cli_copy("mysql://db/x", f"sqlite:///{tmp_path / 'new.db'}")
    assert result.returncode == 2
    assert "unsupported scheme 'mysql'" in result.stderr

    same = f"sqlite+aiosqlite:///{tmp_path / 'same.db'}"
    ensure_schema(same)
    with pytest.raises(CopyError, match="the same database"):
        copy_database(same, same)


def test_a_row_the_target_refuses_stops_the_copy_without_showing_the_row(tmp_path: Path
                                                                           ) -> None:
    source = f"sqlite+aiosqlite:///{tmp_path / 'long.db'}"
    ensure_schema(source)
    engine = sa.create_engine(sync_url(source))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO key_salts (scope, salt) VALUES (:s, 'x')"),
                     {"s": "PRIVATE-SCOPE-" * 5})  # SQLite does not enforce VARCHAR(40)
    engine.dispose()
    with pg_schema() as pg:
        result = _cli_copy(source, pg)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "cohortbot db copy: copying table 'key_salts' failed: StringDataRightTruncation: "
            "value too long for type character varying(40)"]
        assert "PRIVATE-SCOPE" not in result.stdout + result.stderr
        assert result.stdout.splitlines()[1:] == ["cohorts: 0 rows"]

        # Nothing was kept: once the row is fixed the copy runs. Had rows been committed
        # before the failure, the message says so.
        engine = sa.create_engine(sync_url(source))
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO cohorts (name, tenant, slug, zone, created_at, "
                                 "roles, reminder_offsets, settings, status, question_seq) "
                                 "VALUES ('A', 'terminal', 'a', 'UTC', "
                                 "'2026-12-01 09:00:00.000000', '[]', '[]', '{}', 'active', 0)"))
        engine.dispose()
        result = _cli_copy(source, pg)
        assert result.returncode == 2
        assert result.stderr.strip().endswith(
            "character varying(40); the 1 row(s) of the tables before it stay in the target: "
            "empty it before trying again")
        result = _cli_copy(source, pg)
        assert result.stderr.strip().endswith(
            "table 'cohorts' has rows (copy only into an empty database)")
