"""Tenants: every cohort (and every queued message) belongs to one Slack workspace, the Matrix
bot account or the terminal; cohort ids and channels are unique per tenant; slack_places goes

Revision ID: 0004
Revises: 0003

Existing data finds its tenant with no manual step (a person's settings, in `persons`, too):

- a Matrix or terminal cohort: the platform of its room or channel, else of its members;
- a Slack cohort when no OAuth install exists (one bot token, one workspace): `slack`;
- a Slack cohort of an OAuth deployment: the workspace its channel (else a member) was
  recorded in by `slack_places`, else the only installation there is.

A queued message takes its cohort's tenant, or, without a cohort, the workspace of its
target. `slack_places` was only a guess at which token reaches a place; the tenant now says
it, so the table is dropped once it has been read.
"""

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def slack_tenant(enterprise_id: str, team_id: str) -> str:
    """The tenant key of a Slack workspace (as `adapters.slack.workspaces.tenant_of`)."""
    return "slack:" + ":".join(part for part in (enterprise_id, team_id) if part)


def _tenants(conn: sa.Connection) -> tuple[dict[int, str], dict[str, str], str]:
    """Each cohort's tenant, each Slack place's (from what OAuth installs recorded), and the
    tenant of a Slack place no install recorded."""
    installs = [slack_tenant(e, t) for e, t in conn.execute(sa.text(
        "SELECT enterprise_id, team_id FROM slack_installations ORDER BY team_id"))]
    places = {p: slack_tenant(e, t) for p, e, t in conn.execute(sa.text(
        "SELECT place_id, enterprise_id, team_id FROM slack_places"))}
    members: dict[int, list[tuple[str, str]]] = {}
    for cohort_id, platform, user_id in conn.execute(sa.text(
            "SELECT cohort_id, platform, user_id FROM members ORDER BY id")):
        members.setdefault(cohort_id, []).append((platform, user_id))

    unknown = installs[0] if len(installs) == 1 else "slack"

    def slack(place_ids: list[str]) -> str:
        return next((places[p] for p in place_ids if p in places), unknown)

    found: dict[int, str | None] = {}
    for cohort_id, platform, channel_id in conn.execute(sa.text(
            "SELECT id, platform, channel_id FROM cohorts ORDER BY id")):
        people = members.get(cohort_id, [])
        platform = platform or (people[0][0] if people else None)
        if platform == "slack":
            found[cohort_id] = slack([channel_id or ""] + [u for p, u in people if p == "slack"])
        else:
            found[cohort_id] = platform
    # An unlinked cohort with no members yet: it goes where most cohorts are.
    common = Counter(v for v in found.values() if v).most_common(1)
    fallback = common[0][0] if common else "terminal"
    return {k: v or fallback for k, v in found.items()}, places, unknown


def upgrade() -> None:
    conn = op.get_bind()
    tenants, places, unknown = _tenants(conn)
    with op.batch_alter_table("cohorts") as batch:
        batch.add_column(sa.Column("tenant", sa.String(length=200), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("tenant", sa.String(length=200), nullable=True))
    cohorts = sa.table("cohorts", sa.column("id", sa.Integer), sa.column("tenant", sa.String))
    for cohort_id, tenant in tenants.items():
        conn.execute(cohorts.update().where(cohorts.c.id == cohort_id).values(tenant=tenant))
    outbox = sa.table("outbox", sa.column("id", sa.Integer), sa.column("cohort_id", sa.Integer),
                      sa.column("platform", sa.String), sa.column("target", sa.String),
                      sa.column("tenant", sa.String))
    for row_id, cohort_id, platform, target in conn.execute(sa.select(
            outbox.c.id, outbox.c.cohort_id, outbox.c.platform, outbox.c.target)):
        tenant = tenants.get(cohort_id) if cohort_id is not None else None
        if tenant is None:
            tenant = places.get(target, platform) if platform == "slack" else platform
        conn.execute(outbox.update().where(outbox.c.id == row_id).values(tenant=tenant))
    _persons_by_tenant(conn, places, unknown)
    with op.batch_alter_table("cohorts") as batch:
        batch.alter_column("tenant", existing_type=sa.String(length=200), nullable=False)
        batch.drop_constraint("uq_cohorts_slug", type_="unique")
        batch.create_unique_constraint("uq_cohorts_tenant_slug", ["tenant", "slug"])
        batch.drop_constraint("uq_cohorts_channel", type_="unique")
        batch.create_unique_constraint("uq_cohorts_channel", ["tenant", "platform", "channel_id"])
    op.drop_table("slack_places")


def _persons_by_tenant(conn: sa.Connection, places: dict[str, str], unknown: str) -> None:
    """A person's settings belong to one tenant: the same id in another is another person."""
    rows = conn.execute(sa.text("SELECT platform, user_id, zone, dm_channel FROM persons")).all()
    op.drop_table("persons")
    persons = op.create_table(
        "persons",
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=True),
        sa.Column("dm_channel", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("tenant", "platform", "user_id", name=op.f("pk_persons")),
    )
    if rows:
        op.bulk_insert(persons, [
            {"tenant": places.get(user_id, unknown) if platform == "slack" else platform,
             "platform": platform, "user_id": user_id, "zone": zone, "dm_channel": dm}
            for platform, user_id, zone, dm in rows])


def downgrade() -> None:
    op.create_table(
        "slack_places",
        sa.Column("place_id", sa.String(length=255), nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("place_id", name=op.f("pk_slack_places")),
    )
    with op.batch_alter_table("cohorts") as batch:
        batch.drop_constraint("uq_cohorts_tenant_slug", type_="unique")
        batch.create_unique_constraint("uq_cohorts_slug", ["slug"])
        batch.drop_constraint("uq_cohorts_channel", type_="unique")
        batch.create_unique_constraint("uq_cohorts_channel", ["platform", "channel_id"])
        batch.drop_column("tenant")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("tenant")
    rows = op.get_bind().execute(sa.text(
        "SELECT platform, user_id, zone, dm_channel FROM persons")).all()
    op.drop_table("persons")
    persons = op.create_table(
        "persons",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=True),
        sa.Column("dm_channel", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("platform", "user_id", name=op.f("pk_persons")),
    )
    # Someone known in several tenants keeps one of their rows.
    unique = {(p, u): {"platform": p, "user_id": u, "zone": z, "dm_channel": d}
              for p, u, z, d in rows}
    if unique:
        op.bulk_insert(persons, list(unique.values()))
