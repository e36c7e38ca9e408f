"""staff_pending_input: what the bot waits for from a staff member (a typed reason, its Kirim).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_pending_input",
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("awaiting", sa.String(length=16), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("status_read", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("telegram_user_id"),
    )


def downgrade() -> None:
    op.drop_table("staff_pending_input")
