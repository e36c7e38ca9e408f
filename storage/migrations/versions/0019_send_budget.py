"""One send budget for the bot across processes (issue 18, item 3).

send_budget holds one row: when the next message into any chat may go and until when a 429
paused the whole bot (epoch seconds). chat_send holds, per chat, when its next message may go.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    budget = op.create_table(
        "send_budget",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("next_free_at", sa.Float(), nullable=False),
        sa.Column("paused_until", sa.Float(), nullable=False),
    )
    op.bulk_insert(budget, [{"id": 1, "next_free_at": 0.0, "paused_until": 0.0}])
    op.create_table(
        "chat_send",
        sa.Column("chat_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("next_allowed_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chat_send")
    op.drop_table("send_budget")
