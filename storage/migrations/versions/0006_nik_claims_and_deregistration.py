"""Second claims on a NIK and data kept to deregister erased workers from BPJS.

nik_attempt gets an index on nik_hash: the staff card counts the other accounts that typed an
application's NIK.

deregistration keeps, for an approved or enrolled worker who erased their data, the NIK, name,
KPJ and dates BPJS Ketenagakerjaan needs to stop the city's payment, until an admin marks it
done (UU PDP: legal obligation).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_nik_attempt_nik_hash", "nik_attempt", ["nik_hash"])
    op.create_table(
        "deregistration",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("nik", sa.String(length=16), nullable=False),
        sa.Column("nama", sa.String(length=200), nullable=False),
        sa.Column("kpj_number", sa.String(length=11), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("deregistration")
    op.drop_index("ix_nik_attempt_nik_hash", table_name="nik_attempt")
