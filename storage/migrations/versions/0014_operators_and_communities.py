"""Operators and community links (issue 17, items 1-5).

An operator's assisted draft is kept apart from any registration of their own: at most one per
operator (status draft, no Telegram account yet). assisted_by is indexed for what one operator
registered. A community link (random code) counts the workers who arrive by it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ASSISTED_DRAFT = "status = 'draft' AND telegram_user_id IS NULL AND assisted_by IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "community",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(length=16), nullable=False, unique=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # A plain ADD COLUMN: no table rebuild on SQLite, so AUTOINCREMENT's counter is untouched.
    op.add_column("application", sa.Column("community_id", sa.Integer(), nullable=True))
    op.create_index(
        "uq_application_assisted_draft",
        "application",
        ["assisted_by"],
        unique=True,
        sqlite_where=sa.text(ASSISTED_DRAFT),
        postgresql_where=sa.text(ASSISTED_DRAFT),
    )
    # submitted_at too: the counts per operator and community are read from the index alone.
    op.create_index(
        "ix_application_assisted_by", "application", ["assisted_by", "created_at", "submitted_at"]
    )
    op.create_index("ix_application_community", "application", ["community_id", "submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_application_community", table_name="application")
    op.drop_index("ix_application_assisted_by", table_name="application")
    op.drop_index("uq_application_assisted_draft", table_name="application")
    with op.batch_alter_table("application", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("community_id")
    op.drop_table("community")
