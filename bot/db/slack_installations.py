"""The `SlackInstallations` port in SQLAlchemy: Slack OAuth installs, one row per workspace (or
Enterprise Grid organisation) in `slack_installations`.

Each method is one short transaction of its own (they are called from Slack request handling
and from the messenger, never inside a unit of work). Writes are upserts, so two instances that
save the same workspace at once do not fail. Tokens are secrets: nothing here logs a row,
and each is stored sealed with `[slack] token_key` (`TokenCipher`).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import tables as t
from bot.service.ports import SlackInstallation


class TokenKeyError(Exception):
    """The configured token keys cannot read a stored token (one line, no secret in it)."""


class TokenCipher:
    """Slack tokens at rest: Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`)
    under `[slack] token_key`. The setting may hold several keys, comma-separated: the first
    seals, any of them opens. To rotate, put a new key first and keep the old one after it
    until the bot has started once (it re-seals every token then), then drop the old one."""

    PREFIX = "fernet:"

    def __init__(self, keys: str) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        fernets = [Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()]
        if not fernets:
            raise ValueError("no token key given")
        self._first = fernets[0]
        self._all = MultiFernet(fernets)

    def seal(self, token: str) -> str:
        return self.PREFIX + self._first.encrypt(token.encode()).decode()

    def open(self, stored: str) -> str:
        from cryptography.fernet import InvalidToken

        if not stored.startswith(self.PREFIX):
            return stored  # stored before tokens were sealed; `reseal` seals it
        try:
            return self._all.decrypt(stored[len(self.PREFIX):].encode()).decode()
        except InvalidToken:
            raise TokenKeyError(
                "slack.token_key cannot read a stored Slack token: keep the key it was sealed "
                "with after the new one (COHORTBOT_SLACK__TOKEN_KEY=new,old)") from None

    def current(self, stored: str) -> bool:
        """Whether `stored` is sealed with the first key already."""
        from cryptography.fernet import InvalidToken

        if not stored.startswith(self.PREFIX):
            return False
        try:
            self._first.decrypt(stored[len(self.PREFIX):].encode())
            return True
        except InvalidToken:
            return False


def new_token_key() -> str:
    """A fresh random key: 32 bytes, url-safe base64 (a Fernet key, and long enough for
    every other key setting too). Needs no optional package."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _key(value: str | None) -> str:
    return value or ""


def _opt(value: str) -> str | None:
    return value or None


class SqlSlackInstallations:
    def __init__(self, factory: async_sessionmaker[AsyncSession], cipher: TokenCipher) -> None:
        self._factory = factory
        self._cipher = cipher

    async def reseal(self) -> int:
        """Seal every stored token with the first key (tokens stored in the clear by an
        older version, or sealed with a key being rotated out); returns how many changed.
        Raises `TokenKeyError` if a token cannot be read with the configured keys."""
        tbl = t.slack_installations
        changed = 0
        async with self._factory() as session, session.begin():
            rows = (await session.execute(select(
                tbl.c.enterprise_id, tbl.c.team_id, tbl.c.bot_token))).all()
            for enterprise_id, team_id, stored in rows:
                if self._cipher.current(stored):
                    continue
                await session.execute(tbl.update().where(
                    tbl.c.enterprise_id == enterprise_id, tbl.c.team_id == team_id).values(
                    bot_token=self._cipher.seal(self._cipher.open(stored))))
                changed += 1
        return changed

    def _insert(self, session: AsyncSession, table: Any) -> Any:
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)

    async def save(self, installation: SlackInstallation) -> None:
        i = installation
        row = {
            "enterprise_id": _key(i.enterprise_id), "team_id": _key(i.team_id),
            "bot_token": self._cipher.seal(i.bot_token), "bot_user_id": i.bot_user_id,
            "bot_id": i.bot_id,
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
        return _installation(row, self._cipher) if row is not None else None

    async def delete(self, *, enterprise_id: str | None, team_id: str | None) -> bool:
        tbl = t.slack_installations
        async with self._factory() as session, session.begin():
            result: Any = await session.execute(delete(tbl).where(
                tbl.c.enterprise_id == _key(enterprise_id), tbl.c.team_id == _key(team_id)))
        return bool(result.rowcount)


def _installation(row: Any, cipher: TokenCipher) -> SlackInstallation:
    return SlackInstallation(
        enterprise_id=_opt(row["enterprise_id"]), team_id=_opt(row["team_id"]),
        bot_token=cipher.open(row["bot_token"]), bot_user_id=row["bot_user_id"],
        bot_id=row["bot_id"],
        installer_user_id=row["installer_user_id"],
        scopes=tuple(s for s in str(row["scopes"]).split(",") if s),
        installed_at=row["installed_at"],
    )
