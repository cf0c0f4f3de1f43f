"""Question keys out of the database: salts instead of keys, voting windows, held releases

Revision ID: 0005
Revises: 0004

The keys of the question cap and of upvotes used to be stored beside the hashes they made, so
a copy of the database could name askers and voters. Keys are now derived from the operator's
secret and a salt that is deleted when its day (or voting window) is over; see
bot/service/anonymity.py. The old keys are destroyed here, and with them every way to read
the old hashes: today's question counts start again, upvoting closes on the questions
released before the upgrade (their counts stay), and the ids of handled platform events are
dropped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_salts",
        sa.Column("scope", sa.String(length=40), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_key_salts")),
    )
    op.drop_table("rate_keys")
    op.execute("DELETE FROM rate_counts")
    op.execute("DELETE FROM upvotes")
    op.execute("DELETE FROM seen_events")
    with op.batch_alter_table("questions") as batch:
        batch.add_column(sa.Column("vote_salt", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("votes_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("cohorts") as batch:
        batch.add_column(sa.Column("held_releases", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("cohorts") as batch:
        batch.drop_column("held_releases")
    with op.batch_alter_table("questions") as batch:
        batch.drop_column("votes_until")
        batch.drop_column("vote_salt")
    op.create_table(
        "rate_keys",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_rate_keys")),
    )
    op.drop_table("key_salts")
