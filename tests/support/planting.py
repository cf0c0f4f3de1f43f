"""Notifications planted straight into a bot's SQLite database, for tests that drive the
real process and need many messages due at chosen instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.db.engine import create_engine, session_factory
from bot.db.uow import SqlUnitOfWorkFactory
from bot.domain.model import Cohort, Notification


@dataclass
class Planted:
    slug: str  # the cohort it is for
    text: str
    due: datetime


async def plant(db: Path | str, items: list[Planted],
                channels: dict[str, tuple[str, str]] | None = None) -> None:
    """Add `prompt` notifications (key `test:<text>`) straight into the bot's database; the
    bot finds them at its start or next sweep. `channels`: slug → (platform, channel id) for
    cohorts to create first, where they do not exist yet. `db`: a SQLite file or a URL."""
    engine = create_engine(db if isinstance(db, str) else f"sqlite+aiosqlite:///{db}")
    try:
        async with SqlUnitOfWorkFactory(session_factory(engine))() as uow:
            cohorts = {c.slug: c for c in await uow.find(Cohort)}
            for slug, (platform, channel) in (channels or {}).items():
                if slug not in cohorts:
                    cohorts[slug] = Cohort(
                        name=slug, slug=slug, zone="UTC", created_at=datetime.now(UTC),
                        tenant=platform, platform=platform, channel_id=channel,
                        roles=["case-giver"],
                        reminder_offsets=[], settings={})
                    uow.add(cohorts[slug])
            await uow.flush()
            for item in items:
                await uow.add_notification(Notification(
                    key=f"test:{item.text}", kind="prompt", cohort_id=cohorts[item.slug].id,
                    due_at=item.due, stale_at=item.due + timedelta(hours=1),
                    payload={"text": item.text}))
            await uow.commit()
    finally:
        await engine.dispose()
