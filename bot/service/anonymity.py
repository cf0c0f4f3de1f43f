"""Keyed hashes for anonymous questions, made so that a database reader cannot use them.

The bot must count each person's questions per day, refuse a second upvote and drop a
platform's redelivery of a secret command. Each needs a value that is the same for the same
person (or event) and tells nobody who it was: HMAC-SHA256(key, what), where

    key = HMAC-SHA256(secret, salt)

- the secret is the operator's (`[bot] question_secret`, or its file) and never stored in
  the database;
- the salt is random and stored in the database: one per UTC day for the question cap and
  the redelivery guard of every command (`key_salts`), one per released question for its
  upvotes
  (`questions.vote_salt`). It is deleted when the day is over, or when the question's voting
  window closes (`Planner.purge`).

So a copy of the database alone links nothing (it lacks the secret), and once a salt is
deleted, the database and the secret together link nothing either: a random salt cannot be
derived again. See docs/privacy.md for what this does and does not protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, datetime

from bot.service.ports import UnitOfWork

DAY = "day:"


def new_salt() -> str:
    return secrets.token_hex(32)


def day_scope(day: date) -> str:
    return f"{DAY}{day.isoformat()}"


class Keys:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the question secret must be at least 16 bytes")
        self._secret = secret
        self._today: tuple[date, bytes] | None = None  # (every command needs it)

    def key(self, salt: str) -> bytes:
        return hmac.new(self._secret, bytes.fromhex(salt), hashlib.sha256).digest()

    @staticmethod
    def digest(key: bytes, what: str) -> str:
        return hmac.new(key, what.encode(), hashlib.sha256).hexdigest()

    async def of_day(self, uow: UnitOfWork, now: datetime) -> bytes:
        """The key of `now`'s UTC day, shared by every instance (the first makes its salt)."""
        day = now.date()
        if self._today is None or self._today[0] != day:
            self._today = (day, self.key(await uow.salt(day_scope(day), new_salt())))
        return self._today[1]

    async def event(self, uow: UnitOfWork, now: datetime, event_id: str) -> str:
        """What the redelivery guard records of a platform event: nothing that names it."""
        return "k:" + self.digest(await self.of_day(uow, now), event_id)

    def voter(self, vote_salt: str, who: str) -> str:
        return self.digest(self.key(vote_salt), who)
