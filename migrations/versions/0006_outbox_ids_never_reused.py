"""Outbox ids are never reused on SQLite, now that sent messages are pruned

Revision ID: 0006
Revises: 0005

Each message carries its outbox id to the platform, and a send whose outcome is unknown is
looked for by that id. SQLite hands out the highest id again once its row is deleted unless
the table is AUTOINCREMENT; PostgreSQL sequences never go back. The table is rebuilt with it
(the rows and their ids stay).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("outbox", recreate="always",
                              table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("outbox", recreate="always",
                              table_kwargs={"sqlite_autoincrement": False}):
        pass
