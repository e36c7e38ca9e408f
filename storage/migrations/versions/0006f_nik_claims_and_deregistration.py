"""Second claims on a NIK and data kept to deregister erased workers from BPJS.

nik_attempt gets an index on nik_hash: the staff card counts the other accounts that typed an
application's NIK.

Revision ID: 0006f
Revises: 0005
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006f"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_nik_attempt_nik_hash", "nik_attempt", ["nik_hash"])


def downgrade() -> None:
    op.drop_index("ix_nik_attempt_nik_hash", table_name="nik_attempt")
