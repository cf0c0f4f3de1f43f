"""message_changes: outbox rows that edit or remove a message sent before, and the post of
each released question

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # (SQLite rebuilds the table: it must keep AUTOINCREMENT, see 0006.)
    with op.batch_alter_table("outbox", recreate="always",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("op", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("of_key", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("keep", sa.Boolean(), server_default=sa.false(),
                                   nullable=False))
    with op.batch_alter_table("questions") as batch:
        batch.add_column(sa.Column("post_key", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("questions") as batch:
        batch.drop_column("post_key")
    with op.batch_alter_table("outbox", recreate="always",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("keep")
        batch.drop_column("of_key")
        batch.drop_column("op")
