"""Cover month by month: the paid-through month admins were last warned about.

`lapse_warned_for` holds the application's `paid_through` when the lapse warning for it was
written, so the daily check warns once per member and again only after new premiums moved
`paid_through` on. Lapsed members get the status `lapsed` (a string column: no schema change).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("application", sa.Column("lapse_warned_for", sa.Date(), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35): a batch rebuild would reset AUTOINCREMENT's counter.
    op.execute("ALTER TABLE application DROP COLUMN lapse_warned_for")
