"""Application ids are never reused on SQLite.

SQLite hands out max(id) + 1 without AUTOINCREMENT, so a draft discarded while it was the newest
row gave its id to the next application, and the discarded draft's audit rows (which keep the
chain of events) then read as that new application's history. The table is rebuilt with
AUTOINCREMENT and its counter set past every id that the audit log, the outbox and the
deregistration list still name.
PostgreSQL's sequence never reuses ids: nothing to do there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "application", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass
    op.execute("DELETE FROM sqlite_sequence WHERE name = 'application'")
    op.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'application', max("
        "(SELECT coalesce(max(id), 0) FROM application), "
        "(SELECT coalesce(max(application_id), 0) FROM audit_event), "
        "(SELECT coalesce(max(application_id), 0) FROM notification), "
        "(SELECT coalesce(max(application_id), 0) FROM deregistration))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "application", recreate="always", table_kwargs={"sqlite_autoincrement": False}
    ):
        pass
