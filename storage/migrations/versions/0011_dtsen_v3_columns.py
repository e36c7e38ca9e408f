"""DTSEN V3: the family's desil in three scales, the KTP regency and the work variables.

The 2026 extract puts desil on the family in three rankings (national, province, regency/city);
`dtsen_record.desil` stays the national one (what one-file extracts carry) and the other two sit
beside it. The KTP regency code lets a reviewer see "KTP outside the city"; the three work
variables tell whether the person works informally. Each application records the scale its rule
used and the three values it saw, so a later change of scale does not rewrite past decisions.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 13:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, type): columns are built per use, as a Column object belongs to one table.
DTSEN_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[object]], ...] = (
    ("desil_provinsi", sa.Integer()),
    ("desil_kabupaten_kota", sa.Integer()),
    ("kode_kabupaten_kota_ktp", sa.String(length=4)),
    ("status_bekerja", sa.String(length=100)),
    ("status_dalam_pekerjaan", sa.String(length=100)),
    ("lapangan_usaha", sa.String(length=100)),
)
APPLICATION_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[object]], ...] = (
    ("dtsen_desil_scale", sa.String(length=16)),
    ("dtsen_desil_nasional", sa.Integer()),
    ("dtsen_desil_provinsi", sa.Integer()),
    ("dtsen_desil_kabupaten_kota", sa.Integer()),
    ("dtsen_ktp_regency", sa.String(length=4)),
    ("dtsen_work", sa.String(length=300)),
)


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): nullable columns without defaults are instant on both
    # engines, even over a 2,6 M-row DTSEN table.
    for name, type_ in DTSEN_COLUMNS:
        op.add_column("dtsen_record", sa.Column(name, type_, nullable=True))
    for name, type_ in APPLICATION_COLUMNS:
        op.add_column("application", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("application") as batch:
        for name, _ in reversed(APPLICATION_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("dtsen_record") as batch:
        for name, _ in reversed(DTSEN_COLUMNS):
            batch.drop_column(name)
