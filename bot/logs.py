"""Logging setup: plain text or one JSON object per line, to stderr."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        ref = getattr(record, "ref", None)
        if ref is not None:  # the reference id an unexpected error was shown under
            data["ref"] = str(ref)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries()


#: Libraries whose DEBUG output carries SQL parameters or request bodies (user text, user ids).
NOISY = ("sqlalchemy", "aiosqlite", "psycopg", "apscheduler", "asyncio", "alembic", "nio",
         "peewee", "slack_bolt", "slack_sdk", "aiohttp.access")


def quiet_libraries() -> None:
    """Keep libraries at WARNING whatever the root level: their debug lines would print
    statement parameters, which can hold user ids next to the text of a command."""
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
