"""The `CrossSigningKeys` port in SQLAlchemy: a Matrix bot account's cross-signing identity,
one row per account in `matrix_cross_signing`, shared by every instance on the account.

The private keys arrive sealed (the Matrix adapter seals them with `[matrix] store_key`):
nothing here can read them, and nothing here logs a row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import tables as t
from bot.service.ports import SealedCrossSigning


class SqlCrossSigningKeys:
    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory

    async def find(self, user_id: str) -> SealedCrossSigning | None:
        tbl = t.matrix_cross_signing
        async with self._factory() as session:
            row = (await session.execute(select(tbl).where(
                tbl.c.user_id == user_id))).mappings().first()
        if row is None:
            return None
        return SealedCrossSigning(user_id=row["user_id"], master_key=row["master_key"],
                                  sealed_keys=row["sealed_keys"])

    def _insert(self, session: AsyncSession) -> Any:
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        return (pg_insert if dialect == "postgresql" else sqlite_insert)(t.matrix_cross_signing)

    @staticmethod
    def _row(keys: SealedCrossSigning, at: datetime) -> dict[str, Any]:
        return {"user_id": keys.user_id, "master_key": keys.master_key,
                "sealed_keys": keys.sealed_keys, "created_at": at}

    async def add(self, keys: SealedCrossSigning, at: datetime) -> bool:
        async with self._factory() as session, session.begin():
            stmt = self._insert(session).values(self._row(keys, at))
            result: Any = await session.execute(
                stmt.on_conflict_do_nothing(index_elements=["user_id"]))
        return bool(result.rowcount)

    async def replace(self, keys: SealedCrossSigning, at: datetime) -> None:
        row = self._row(keys, at)
        async with self._factory() as session, session.begin():
            stmt = self._insert(session).values(row)
            await session.execute(stmt.on_conflict_do_update(
                index_elements=["user_id"],
                set_={k: stmt.excluded[k] for k in row if k != "user_id"}))
