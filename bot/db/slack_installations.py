"""The `SlackInstallations` port in SQLAlchemy: Slack OAuth installs, one row per workspace (or
Enterprise Grid organisation) in `slack_installations`.

Each method is one short transaction of its own (they are called from Slack request handling
and from the messenger, never inside a unit of work). Writes are upserts, so two instances that
save the same workspace at once do not fail. Tokens are secrets:
nothing here logs a row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import tables as t
from bot.service.ports import SlackInstallation


def _key(value: str | None) -> str:
    return value or ""


def _opt(value: str) -> str | None:
    return value or None


class SqlSlackInstallations:
    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory

    def _insert(self, session: AsyncSession, table: Any) -> Any:
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)

    async def save(self, installation: SlackInstallation) -> None:
        i = installation
        row = {
            "enterprise_id": _key(i.enterprise_id), "team_id": _key(i.team_id),
            "bot_token": i.bot_token, "bot_user_id": i.bot_user_id, "bot_id": i.bot_id,
            "installer_user_id": i.installer_user_id, "scopes": ",".join(i.scopes),
            "installed_at": i.installed_at,
        }
        async with self._factory() as session, session.begin():
            stmt = self._insert(session, t.slack_installations).values(row)
            stmt = stmt.on_conflict_do_update(
                index_elements=["enterprise_id", "team_id"],
                set_={k: stmt.excluded[k] for k in row if k not in ("enterprise_id", "team_id")})
            await session.execute(stmt)

    async def find(self, *, enterprise_id: str | None, team_id: str | None
                   ) -> SlackInstallation | None:
        tbl = t.slack_installations
        async with self._factory() as session:
            row = (await session.execute(select(tbl).where(
                tbl.c.enterprise_id == _key(enterprise_id),
                tbl.c.team_id == _key(team_id)))).mappings().first()
        return _installation(row) if row is not None else None

    async def delete(self, *, enterprise_id: str | None, team_id: str | None) -> bool:
        tbl = t.slack_installations
        async with self._factory() as session, session.begin():
            result: Any = await session.execute(delete(tbl).where(
                tbl.c.enterprise_id == _key(enterprise_id), tbl.c.team_id == _key(team_id)))
        return bool(result.rowcount)


def _installation(row: Any) -> SlackInstallation:
    return SlackInstallation(
        enterprise_id=_opt(row["enterprise_id"]), team_id=_opt(row["team_id"]),
        bot_token=row["bot_token"], bot_user_id=row["bot_user_id"], bot_id=row["bot_id"],
        installer_user_id=row["installer_user_id"],
        scopes=tuple(s for s in str(row["scopes"]).split(",") if s),
        installed_at=row["installed_at"],
    )
