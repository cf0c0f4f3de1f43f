"""Engines and schema migration. Called only from the composition root and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

import migrations
from bot.db import sqlite_driver
from bot.db.tables import map_entities


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while the dispatcher writes; busy_timeout waits out a short lock
    # instead of failing a command at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted content is overwritten with zeros, not left in free pages (some builds default
    # to this, upstream SQLite does not).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    map_entities()
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        # After the server restarts, the pool hands out live connections only; while it is
        # down, a command waits seconds, not minutes, before it hears so.
        kwargs = {"pool_pre_ping": True, "pool_timeout": 5,
                  "connect_args": {"connect_timeout": 5}, **kwargs}
    elif u.drivername == "sqlite+aiosqlite":
        # One hand-off to aiosqlite's thread per statement instead of four.
        kwargs = {"async_creator": sqlite_driver.async_creator(u), **kwargs}
    # Statement parameters hold user text and user ids: they stay out of error messages
    # (and so out of the logs).
    engine = create_async_engine(url, hide_parameters=True, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


def sync_url(url: str) -> str:
    """The URL Alembic uses: the same database through a synchronous driver."""
    u = make_url(url)
    if u.drivername == "sqlite+aiosqlite":
        u = u.set(drivername="sqlite")
    return u.render_as_string(hide_password=False)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


class SchemaTooNew(Exception):
    """The database was migrated by a newer version of cohortbot than this one."""

    def __init__(self, revision: str) -> None:
        super().__init__(f"the database's schema (revision {revision}) is newer than this "
                         "version of cohortbot: upgrade cohortbot, or use a backup made "
                         "before the newer version ran")


def pending_migrations(url: str) -> list[str]:
    """Revisions not yet applied to the database at `url`, oldest first (empty when up to
    date). Raises `SchemaTooNew` for a revision this version does not know."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine as create_sync_engine

    engine = create_sync_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    pending = revisions_after(current[0] if current else None)
    if pending is None:
        raise SchemaTooNew(current[0])
    return pending


def revisions_after(revision: str | None) -> list[str] | None:
    """The migrations that follow `revision` (None: an empty database), oldest first; None
    when this version does not know `revision` (the database is newer than the code)."""
    from alembic.script import ScriptDirectory
    from alembic.script.revision import ResolutionError

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    try:
        found = script.iterate_revisions("heads", revision or "base")
        return [r.revision for r in reversed(list(found))]
    except ResolutionError:
        return None
