"""The DTSEN re-check after an import: flags for staff, the offer to carry on, admin summaries.

`application.recheck_flag` holds the findings (JSON, as eligibility_reasons) of a pending or
waitlisted application whose re-assessment against a new DTSEN table failed: staff see it on
the card, nothing is refused automatically. `requalified_at` marks an ineligible application the
re-check found eligible (its worker was offered to carry on); `recheck_at` is when a re-check
last changed the application. A notification may now be addressed to a chat without an
application (the import summary for admins), with its figures in `payload`.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns without defaults: plain ADD COLUMN, no rebuild of the application table.
    op.add_column("application", sa.Column("recheck_flag", sa.Text(), nullable=True))
    op.add_column("application", sa.Column("recheck_at", sa.DateTime(timezone=True)))
    op.add_column("application", sa.Column("requalified_at", sa.DateTime(timezone=True)))
    op.add_column("notification", sa.Column("payload", sa.Text(), nullable=True))
    # SQLite cannot drop NOT NULL in place: the (small) outbox table is rebuilt.
    with op.batch_alter_table("notification") as batch:
        batch.alter_column("application_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM notification WHERE application_id IS NULL")
    with op.batch_alter_table("notification") as batch:
        batch.alter_column("application_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("payload")
    with op.batch_alter_table("application") as batch:
        batch.drop_column("requalified_at")
        batch.drop_column("recheck_at")
        batch.drop_column("recheck_flag")
