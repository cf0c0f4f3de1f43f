"""Revision 0004 moves data from before tenants into its tenant, with no manual step.

Databases are built at revision 0003 and filled as the bot of that time left them: one bot
token (one workspace), or OAuth installs into two workspaces (whose places `slack_places`
recorded). After `upgrade head` every cohort and queued message has the tenant it belongs to,
and the bot serves the old data to its own people.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.bootstrap import build
from bot.config import load_settings
from bot.db.engine import sync_url, upgrade
from bot.domain.refs import UserRef
from bot.scheduling.clock import SimulatedClock
from bot.service.api import Invocation
from tests.conftest import START, pg_schema

AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC).replace(tzinfo=None)


@pytest.fixture(params=["sqlite", "postgres"])
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at revision 0003, before tenants."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0003")
        yield url
        return
    with pg_schema("0003") as url:
        yield url


def _fill(url: str, cohorts: list[tuple[str, str | None, str | None]],
          members: list[tuple[str, str, str]], outbox: list[tuple[str | None, str, str]],
          places: dict[str, str] | None = None,
          persons: tuple[tuple[str, str, str], ...] | list[tuple[str, str, str]] = ()
          ) -> None:
    """Rows as the bot before tenants wrote them. `cohorts`: (slug, platform, channel);
    `members`: (slug, platform, user); `outbox`: (slug or None, platform, target);
    `places`: place → team of an OAuth install (each team installed); `persons`: (platform,
    user, zone)."""
    engine = sa.create_engine(sync_url(url))
    with engine.begin() as conn:
        ids = {}
        for slug, platform, channel in cohorts:
            ids[slug] = conn.execute(sa.text(
                "INSERT INTO cohorts (name, slug, zone, created_at, platform, channel_id, "
                "roles, reminder_offsets, settings, status, question_seq) VALUES (:n, :s, "
                "'UTC', :at, :p, :c, '[]', '[]', '{}', 'active', 0) RETURNING id"),
                {"n": slug.title(), "s": slug, "at": AT, "p": platform, "c": channel}
            ).scalar_one()
        for slug, platform, user in members:
            conn.execute(sa.text(
                "INSERT INTO members (cohort_id, platform, user_id, joined_at, is_member, "
                "is_facilitator, share_checkins) VALUES (:c, :p, :u, :at, true, false, false)"),
                {"c": ids[slug], "p": platform, "u": user, "at": AT})
        for i, (slug, platform, target) in enumerate(outbox):
            conn.execute(sa.text(
                "INSERT INTO outbox (key, platform, target, direct, body, created_at, due_at, "
                "cohort_id, status, attempts) VALUES (:k, :p, :t, :d, '{}', :at, :at, :c, "
                "'pending', 0)"),
                {"k": f"old:{i}", "p": platform, "t": target, "d": target[:1] in "U@",
                 "at": AT, "c": ids[slug] if slug else None})
        for team in sorted(set((places or {}).values())):
            conn.execute(sa.text(
                "INSERT INTO slack_installations VALUES ('', :t, :tok, 'UB', 'B', 'UI', "
                "'commands', :at)"), {"t": team, "tok": f"xoxb-{team}", "at": AT})
        for platform, user, zone in persons:
            conn.execute(sa.text("INSERT INTO persons (platform, user_id, zone) VALUES "
                                 "(:p, :u, :z)"), {"p": platform, "u": user, "z": zone})
        for place, team in (places or {}).items():
            conn.execute(sa.text("INSERT INTO slack_places VALUES (:p, '', :t)"),
                         {"p": place, "t": team})
    engine.dispose()


def _tenants(url: str) -> tuple[dict[str, str], dict[str, str | None], dict[str, str]]:
    engine = sa.create_engine(sync_url(url))
    with engine.connect() as conn:
        cohorts = dict(conn.execute(sa.text("SELECT slug, tenant FROM cohorts")).all())
        outbox = dict(conn.execute(sa.text("SELECT key, tenant FROM outbox")).all())
        persons = dict(conn.execute(sa.text("SELECT user_id, tenant FROM persons")).all())
        tables = sa.inspect(conn).get_table_names()
    engine.dispose()
    assert "slack_places" not in tables
    return cohorts, outbox, persons


async def test_one_workspace_keeps_its_cohorts(old_db: str) -> None:
    _fill(old_db,
          cohorts=[("peer-s", "slack", "C0ONE"), ("peer-m", "matrix", "!r:x.org"),
                   ("peer-t", "terminal", "peer-t"), ("loose", None, None)],
          members=[("peer-s", "slack", "U0ANA"), ("loose", "slack", "U0ANA"),
                   ("peer-m", "matrix", "@ben:x.org")],
          outbox=[("peer-s", "slack", "C0ONE"), (None, "slack", "U0ANA"),
                  ("peer-m", "matrix", "!r:x.org")],
          persons=[("slack", "U0ANA", "Europe/Berlin"), ("matrix", "@ben:x.org", "Asia/Tokyo")])
    upgrade(old_db)
    cohorts, outbox, persons = _tenants(old_db)
    assert cohorts == {"peer-s": "slack", "peer-m": "matrix", "peer-t": "terminal",
                       "loose": "slack"}
    assert outbox == {"old:0": "slack", "old:1": "slack", "old:2": "matrix"}
    assert persons == {"U0ANA": "slack", "@ben:x.org": "matrix"}

    # The bot of one bot token serves them as before, to the same people.
    settings = load_settings(environ={"COHORTBOT_DATABASE__URL": old_db,
                                      "COHORTBOT_BOT__ADMINS": '["slack:U0ADA"]'})
    app = build(settings, clock=SimulatedClock(START))
    try:
        replies = await app.bot.handle(Invocation(
            user=UserRef("slack", "U0ADA"), text="cohort list", channel=None, tenant="slack"))
        listed = replies[0].message.plain()
        assert "Peer-S (id peer-s)" in listed and "Loose (id loose)" in listed
        assert "peer-m" not in listed and "peer-t" not in listed
        replies = await app.bot.handle(Invocation(
            user=UserRef("slack", "U0ANA"), text="--cohort peer-s next", channel=None,
            tenant="slack"))
        assert replies[0].message.plain() == "Peer-S has no upcoming session (no schedule yet)."
        replies = await app.bot.handle(Invocation(
            user=UserRef("slack", "U0ANA"), text="tz", channel=None, tenant="slack"))
        assert replies[0].message.plain().startswith("Times are shown to you in Europe/Berlin")
    finally:
        await app.close()


async def test_oauth_workspaces_each_get_their_own(old_db: str) -> None:
    _fill(old_db,
          cohorts=[("peer-a", "slack", "C0ALPHA"), ("peer-b", "slack", "C0BETA"),
                   ("loose", None, None)],
          members=[("peer-a", "slack", "U0ANA"), ("loose", "slack", "U0BEA")],
          outbox=[("peer-b", "slack", "C0BETA"), (None, "slack", "U0BEA"),
                  (None, "slack", "U0NOBODY")],
          places={"C0ALPHA": "T0ALPHA", "U0ANA": "T0ALPHA", "C0BETA": "T0BETA",
                  "U0BEA": "T0BETA"},
          persons=[("slack", "U0BEA", "Asia/Tokyo"), ("slack", "U0NOBODY", "UTC")])
    upgrade(old_db)
    cohorts, outbox, persons = _tenants(old_db)
    assert cohorts == {"peer-a": "slack:T0ALPHA", "peer-b": "slack:T0BETA",
                       "loose": "slack:T0BETA"}
    # A message to a place no install recorded keeps the bare platform: it cannot be routed
    # to a workspace, and fails as "not installed" rather than guess one.
    assert outbox == {"old:0": "slack:T0BETA", "old:1": "slack:T0BETA", "old:2": "slack"}
    assert persons == {"U0BEA": "slack:T0BETA", "U0NOBODY": "slack"}

    # Cohort ids are unique per workspace now: Alpha may have its own "peer-b".
    engine = sa.create_engine(sync_url(old_db))
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO cohorts (name, slug, tenant, zone, created_at, roles, "
            "reminder_offsets, settings, status, question_seq) VALUES ('Peer B', 'peer-b', "
            "'slack:T0ALPHA', 'UTC', :at, '[]', '[]', '{}', 'active', 0)"), {"at": AT})
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO cohorts (name, slug, tenant, zone, created_at, roles, "
            "reminder_offsets, settings, status, question_seq) VALUES ('Peer B', 'peer-b', "
            "'slack:T0BETA', 'UTC', :at, '[]', '[]', '{}', 'active', 0)"), {"at": AT})
    engine.dispose()
