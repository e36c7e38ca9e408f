"""nik_attempt.kind: NIK look-ups ("nik") and eligibility checks ("claim") share the table.

Rows already stored are NIK look-ups, which is what the server default gives them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nik_attempt") as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="nik")
        )


def downgrade() -> None:
    # Eligibility checks mean nothing to the older schema, which would count them as NIKs.
    op.execute("DELETE FROM nik_attempt WHERE kind <> 'nik'")
    with op.batch_alter_table("nik_attempt") as batch_op:
        batch_op.drop_column("kind")
