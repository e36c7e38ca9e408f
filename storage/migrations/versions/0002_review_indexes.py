"""Indexes for scoped reviewer counts and the same-phone risk flag.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 07:15:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_application_kecamatan_status", "application", ["kecamatan_code", "status"])
    op.create_index("ix_application_phone", "application", ["phone"])


def downgrade() -> None:
    op.drop_index("ix_application_phone", table_name="application")
    op.drop_index("ix_application_kecamatan_status", table_name="application")
