"""Copy every row of one cohortbot database into another (SQLite ⇄ PostgreSQL).

`cohortbot db copy --from URL --to URL` is the front end. The target is migrated to the
latest schema first and must hold no row at all; the source must already be at the latest
schema (it is only read). Tables are copied in foreign-key order, each in one transaction of
its own, in batches, so a large database never has to fit in memory. Afterwards every id
sequence of the target is moved past the copied ids (and past the ids the source had already
handed out, so that outbox ids are never reused).

Nothing here prints or raises a row's contents or a URL's password: the rows hold personal
data, and the errors may end up in a terminal log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from bot.db.engine import SchemaTooNew, pending_migrations, sync_url, upgrade
from bot.db.tables import metadata

BATCH_ROWS = 2000

#: Marks, per JSON column, whether the stored value is SQL NULL (as opposed to JSON `null`):
#: `cohorts.schedule IS NOT NULL` is how the bot finds scheduled cohorts.
_IS_NULL = "__is_null__"


class CopyError(Exception):
    """The copy cannot start (or went wrong); ``str(error)`` is one line, safe to print."""


class TargetNotEmpty(CopyError):
    def __init__(self, table: str) -> None:
        super().__init__(f"the target database is not empty: table {table!r} has rows "
                         "(copy only into an empty database)")
        self.table = table


@dataclass(frozen=True)
class TableCopied:
    table: str
    rows: int


def describe(url: str) -> str:
    """Backend and database name, never a password (for messages)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return f"SQLite {u.database}"
    where = f"{u.host or 'localhost'}{f':{u.port}' if u.port else ''}"
    return f"PostgreSQL {u.database or ''} on {where}"


def _engine(url: str) -> Engine:
    # Statement parameters are row contents: they stay out of every error message.
    return sa.create_engine(sync_url(url), hide_parameters=True,
                            poolclass=sa.pool.NullPool)


def _sqlite_file(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return Path(u.database)
    return None


def _same_database(a: str, b: str) -> bool:
    ua, ub = make_url(a), make_url(b)
    fa, fb = _sqlite_file(a), _sqlite_file(b)
    if fa is not None and fb is not None:
        return fa.resolve() == fb.resolve()
    return ua.render_as_string(hide_password=True) == ub.render_as_string(hide_password=True)


def _first_line(error: BaseException) -> str:
    """The database's own message, first line only: later lines (PostgreSQL's DETAIL) can
    quote the row at fault."""
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


# ---------------------------------------------------------------------------- columns


def _copy_table(table: sa.Table) -> sa.TableClause:
    """`table` as the copy reads and writes it: the same column types, except that a JSON
    column keeps SQL NULL and JSON `null` apart."""
    cols = []
    for col in table.columns:
        type_: Any = col.type
        if isinstance(type_, sa.JSON):
            type_ = type(type_)(none_as_null=True)
        cols.append(sa.column(col.name, type_))
    return sa.table(table.name, *cols)


def _json_columns(table: sa.Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, sa.JSON)]


def _select(table: sa.Table, copy: sa.TableClause) -> sa.Select[Any]:
    json_cols = _json_columns(table)
    extra = [copy.c[name].is_(None).label(f"{_IS_NULL}{name}") for name in json_cols]
    order = [copy.c[c.name] for c in table.primary_key.columns]
    return sa.select(*copy.c, *extra).order_by(*order)


def _row_for_insert(row: sa.RowMapping, json_cols: list[str]) -> dict[str, Any]:
    out = {str(k): v for k, v in row.items() if not str(k).startswith(_IS_NULL)}
    for name in json_cols:
        if out[name] is None and not row[f"{_IS_NULL}{name}"]:
            out[name] = sa.JSON.NULL  # JSON `null`, not SQL NULL
    return out


# ---------------------------------------------------------------------------- sequences


def _serial_tables() -> list[sa.Table]:
    return [t for t in metadata.sorted_tables if t.autoincrement_column is not None]


def _sqlite_autoincrement(conn: Connection, table: str) -> bool:
    sql = conn.scalar(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                              "AND name = :t"), {"t": table})
    return bool(sql) and "AUTOINCREMENT" in str(sql).upper()


def _high_water(conn: Connection, table: sa.Table) -> int:
    """The highest id the database at `conn` has handed out for `table` (0: none)."""
    col = table.autoincrement_column
    assert col is not None
    highest = conn.scalar(sa.select(sa.func.max(table.c[col.name]))) or 0
    if conn.dialect.name == "sqlite":
        if _sqlite_autoincrement(conn, table.name):
            seq = conn.scalar(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"),
                              {"t": table.name})
            highest = max(highest, int(seq or 0))
    elif conn.dialect.name == "postgresql":
        last = conn.scalar(
            sa.text("SELECT pg_sequence_last_value(CAST(pg_get_serial_sequence(:t, :c) "
                    "AS regclass))"), {"t": table.name, "c": col.name})
        highest = max(highest, int(last or 0))
    return int(highest)


def _move_sequence(conn: Connection, table: sa.Table, past: int) -> None:
    """Make the next id `table` hands out on the target greater than `past`."""
    col = table.autoincrement_column
    assert col is not None
    if conn.dialect.name == "postgresql":
        # With is_called the next id is past + 1 (and pg_sequence_last_value reads `past`,
        # should this database be copied on); a sequence never used starts again at 1.
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence(:t, :c), :v, :called)"),
                     {"t": table.name, "c": col.name, "v": max(past, 1), "called": past > 0})
    elif conn.dialect.name == "sqlite" and _sqlite_autoincrement(conn, table.name):
        # Without AUTOINCREMENT SQLite takes max(rowid) + 1 by itself.
        updated = conn.execute(
            sa.text("UPDATE sqlite_sequence SET seq = max(seq, :v) WHERE name = :t"),
            {"t": table.name, "v": past})
        if updated.rowcount == 0 and past > 0:
            conn.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :v)"),
                         {"t": table.name, "v": past})


# ---------------------------------------------------------------------------- the copy


def check_source(url: str) -> None:
    path = _sqlite_file(url)
    if make_url(url).get_backend_name() == "sqlite" and (path is None or not path.is_file()):
        raise CopyError(f"the source database does not exist: {describe(url)}")
    try:
        pending = pending_migrations(url)
    except sa.exc.SQLAlchemyError as e:
        raise CopyError(f"cannot read the source database: {_first_line(e)}") from None
    except SchemaTooNew as e:
        raise CopyError(f"the source database: {e}") from None
    if pending:
        raise CopyError("the source database is not at this version's schema "
                        f"({len(pending)} migration{'s' if len(pending) != 1 else ''} "
                        "pending): run "
                        "'cohortbot migrate' on it first")


def first_nonempty_table(conn: Connection) -> str | None:
    """The first of the bot's tables (in foreign-key order) that holds a row; tables the
    database does not have yet count as empty."""
    present = set(sa.inspect(conn).get_table_names())
    for table in metadata.sorted_tables:
        if table.name not in present:
            continue
        probe = sa.select(sa.literal(1)).select_from(sa.table(table.name)).limit(1)
        if conn.execute(probe).first():
            return table.name
    return None


def _check_target_empty(engine: Engine) -> None:
    with engine.connect() as conn:
        nonempty = first_nonempty_table(conn)
    if nonempty is not None:
        raise TargetNotEmpty(nonempty)


@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    """One read transaction over the whole source: on PostgreSQL a single snapshot."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")  # a read transaction: one view of the file
        try:
            yield conn
        finally:
            conn.rollback()


def copy_database(source_url: str, target_url: str, *,
                  batch_rows: int = BATCH_ROWS,
                  on_table: Callable[[TableCopied], None] = lambda _: None,
                  ) -> list[TableCopied]:
    """Copy every table of `source_url` into `target_url` (migrated first, must be empty).

    Both URLs are async-driver URLs as the config has them (see
    `bot.config.normalise_database_url`). Calls `on_table` after each table is committed.
    Raises CopyError (TargetNotEmpty) with a one-line, printable message.
    """
    if _same_database(source_url, target_url):
        raise CopyError("the source and the target are the same database")
    check_source(source_url)
    from alembic.util.exc import CommandError

    source, target = _engine(source_url), _engine(target_url)
    done: list[TableCopied] = []
    current = "(none)"
    try:
        # A database with rows is refused before anything is done to it (not even migrated).
        try:
            _check_target_empty(target)
            upgrade(target_url)
        except (sa.exc.SQLAlchemyError, CommandError) as e:
            raise CopyError(f"cannot prepare the target database: {_first_line(e)}") from None
        _check_target_empty(target)
        with _reading(source) as src:
            for table in metadata.sorted_tables:
                current = table.name
                copy = _copy_table(table)
                json_cols = _json_columns(table)
                rows = 0
                with target.begin() as dst:
                    result = src.execution_options(yield_per=batch_rows).execute(
                        _select(table, copy))
                    for batch in result.mappings().partitions():
                        dst.execute(sa.insert(copy),
                                    [_row_for_insert(row, json_cols) for row in batch])
                        rows += len(batch)
                    if table.autoincrement_column is not None:
                        _move_sequence(dst, table, _high_water(src, table))
                copied = TableCopied(table.name, rows)
                done.append(copied)
                on_table(copied)
    except sa.exc.SQLAlchemyError as e:
        rows = sum(d.rows for d in done)
        committed = (f"; the {rows} row(s) of the tables before it stay in the target: "
                     "empty it before trying again" if rows else "")
        raise CopyError(f"copying table {current!r} failed: {_first_line(e)}{committed}"
                        ) from None
    finally:
        source.dispose()
        target.dispose()
    return done


def question_secret_beside(url: str) -> Path | None:
    """The question secret file the bot makes beside a SQLite database, when there is one."""
    path = _sqlite_file(url)
    if path is None:
        return None
    secret = path.with_name(path.name + ".secret")
    return secret if secret.is_file() else None
