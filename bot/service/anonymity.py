"""Keyed hashes for anonymous questions, made so that a database reader cannot use them.

The bot must count each person's questions per day, refuse a second upvote and drop a
platform's redelivery of a secret command. Each needs a value that is the same for the same
person (or event) and tells nobody who it was: HMAC-SHA256(key, what), where

    key = HMAC-SHA256(secret, salt)

- the secret is the operator's (`[bot] question_secret`, or its file) and never stored in
  the database;
- the salt is random and stored in the database: one per UTC day for the question cap and
  the redelivery guard (`key_salts`), one per released question for its upvotes
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

    def key(self, salt: str) -> bytes:
        return hmac.new(self._secret, bytes.fromhex(salt), hashlib.sha256).digest()

    @staticmethod
    def digest(key: bytes, what: str) -> str:
        return hmac.new(key, what.encode(), hashlib.sha256).hexdigest()

    async def of_day(self, uow: UnitOfWork, now: datetime) -> bytes:
        """The key of `now`'s UTC day, shared by every instance (the first makes its salt)."""
        return self.key(await uow.salt(day_scope(now.date()), new_salt()))

    def voter(self, vote_salt: str, who: str) -> str:
        return self.digest(self.key(vote_salt), who)
