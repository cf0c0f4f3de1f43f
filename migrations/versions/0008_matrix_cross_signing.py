"""matrix_cross_signing: the Matrix bot account's cross-signing keys, sealed

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "matrix_cross_signing",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("master_key", sa.String(length=64), nullable=False),
        sa.Column("sealed_keys", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_matrix_cross_signing")),
    )


def downgrade() -> None:
    op.drop_table("matrix_cross_signing")
