"""`cohortbot check-config --live`: try what the configuration points at, one line each.

- the database: connect and read its schema's revision (never create or migrate), and say
  how many migrations the next start will apply;
- Slack: the bot token (`auth.test`) and, for Socket Mode, the app-level token
  (`apps.connections.open`);
- Matrix: the homeserver, and the account (`whoami` with the stored access token; it never
  logs in, so no device is made).

A line says ok or what failed; it never holds a secret or an exception's text beyond its
kind and the server's own code.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.db.copy import describe
from bot.db.engine import revisions_after, sync_url

CONNECT_TIMEOUT = 10
_MISSING = "cannot be tried: install the {extra} extra (pip install 'cohortbot[{extra}]')"


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    name: str
    ok: bool | None  # None: nothing to try (the line says why)
    detail: str

    def line(self) -> str:
        if self.ok is None:
            return f"{self.name}: not checked: {self.detail}"
        return f"{self.name}: {'ok' if self.ok else 'FAILED'}: {self.detail}"


def check_database(url: str) -> tuple[bool, str]:
    """Connect and read the schema's revision; an SQLite file that is not there yet is
    not made (its folder must be writable)."""
    u = make_url(url)
    where = describe(url)
    if u.get_backend_name() == "sqlite":
        path = Path(u.database or "")
        if not u.database or u.database == ":memory:":
            return True, f"{where} (in memory)"
        if not path.exists():
            folder = path.parent if str(path.parent) else Path(".")
            if folder.is_dir() and _writable(folder):
                return True, f"{where} does not exist yet; the first start creates it"
            return False, f"{where} does not exist and {folder} is not a writable folder"
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                         timeout=CONNECT_TIMEOUT)) as lite:
                tables = {r[0] for r in lite.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                row = (lite.execute("SELECT version_num FROM alembic_version").fetchone()
                       if "alembic_version" in tables else None)
        except sqlite3.Error as e:
            return False, f"{where} cannot be read ({_sqlite_reason(e)})"
        return _schema(where, str(row[0]) if row else None)
    engine = sa.create_engine(sync_url(url), poolclass=sa.pool.NullPool, hide_parameters=True,
                              connect_args={"connect_timeout": CONNECT_TIMEOUT})
    try:
        with engine.connect() as conn:
            has = sa.inspect(conn).has_table("alembic_version")
            revision = (conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                        .scalar() if has else None)
    except sa.exc.DBAPIError as e:
        return False, f"cannot use {where} ({_pg_reason(e, u.password)})"
    finally:
        engine.dispose()
    return _schema(where, revision)


def _writable(folder: Path) -> bool:
    import os

    return os.access(folder, os.W_OK | os.X_OK)


def _schema(where: str, revision: str | None) -> tuple[bool, str]:
    if revision is None:
        return True, f"{where}, no schema yet (the first start or `cohortbot migrate` makes it)"
    pending = revisions_after(revision)
    if pending is None:
        return False, (f"{where}, schema revision {revision}, which is newer than this "
                       "version of cohortbot")
    if pending:
        return True, (f"{where}, schema revision {revision}, {len(pending)} "
                      f"migration{'s' if len(pending) != 1 else ''} to apply (the next start "
                      "or `cohortbot migrate` applies them)")
    return True, f"{where}, schema revision {revision} (up to date)"


def _sqlite_reason(e: sqlite3.Error) -> str:
    # SQLite's own messages name no secret ("file is not a database", "database is locked").
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _pg_reason(e: sa.exc.DBAPIError, password: str | None) -> str:
    """The driver's first line (it names host and port, and why), the password masked in
    case a server ever echoed it."""
    text = str(e.orig).strip().splitlines()[0] if str(e.orig).strip() else type(e.orig).__name__
    if password:
        text = text.replace(password, "***")
    return text[:200]


async def run_checks(settings: Settings) -> list[Check]:
    ok, detail = await asyncio.to_thread(check_database, settings.database.url)
    checks = [Check(name="database", ok=ok, detail=detail)]
    checks.extend(await _slack(settings))
    checks.extend(await _matrix(settings))
    return checks


async def _slack(settings: Settings) -> list[Check]:
    s = settings.slack
    if s.bot_token is None:
        why = ("OAuth installs: each workspace's token is tried when it is used"
               if s.oauth else "no slack.bot_token configured")
        return [Check(name="slack", ok=None, detail=why)]
    try:
        from adapters.slack.probe import check_app_token, check_bot_token
    except ImportError:
        return [Check(name="slack", ok=False, detail=_MISSING.format(extra="slack"))]
    ok, detail = await check_bot_token(s.bot_token.get_secret_value(), s.api_base_url)
    checks = [Check(name="slack", ok=ok, detail=detail)]
    if s.mode == "socket" and s.app_token is not None:
        ok, detail = await check_app_token(s.app_token.get_secret_value(), s.api_base_url)
        checks.append(Check(name="slack app token", ok=ok, detail=detail))
    return checks


async def _matrix(settings: Settings) -> list[Check]:
    s = settings.matrix
    if s.homeserver is None or s.user_id is None:
        return [Check(name="matrix", ok=None,
                      detail="no matrix.homeserver and matrix.user_id configured")]
    try:
        from adapters.matrix.probe import check_account, check_homeserver
    except ImportError:
        return [Check(name="matrix", ok=False, detail=_MISSING.format(extra="matrix"))]
    ok, detail = await check_homeserver(s.homeserver)
    checks = [Check(name="matrix homeserver", ok=ok, detail=detail)]
    if not ok:
        checks.append(Check(name="matrix account", ok=None,
                            detail="the homeserver did not answer"))
        return checks
    account_ok, detail = await check_account(s)
    checks.append(Check(name="matrix account", ok=account_ok, detail=detail))
    return checks
