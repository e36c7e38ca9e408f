"""Input safety: one KPJ number per application, room for long DTSEN findings, and the
flag a reviewer sees when a worker's identity correction did not match DTSEN.

- application.kpj_number gets a unique index (NULLs, the usual case, are not compared), so
  two concurrent KPJ imports can never give one number to two workers.
- application.eligibility_reasons and audit_event.reason become TEXT: every DTSEN finding at
  once, encoded as JSON, is longer than the old varchar(500).
- application.identity_mismatch_at: when a correction of the name, birth date or NIK of a
  submitted application failed the DTSEN check past the daily limit.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _refuse_shared_kpj_numbers() -> None:
    # Concurrent imports could give one number to two workers before this index existed.
    # Which of them really holds it is for BPJS to say, not for a migration to guess.
    shared = op.get_bind().execute(
        sa.text(
            "SELECT kpj_number, code FROM application WHERE kpj_number IN ("
            "SELECT kpj_number FROM application WHERE kpj_number IS NOT NULL "
            "GROUP BY kpj_number HAVING count(*) > 1) ORDER BY kpj_number, code"
        )
    )
    pairs = [f"{kpj}: {code}" for kpj, code in shared]
    if pairs:
        raise RuntimeError(
            "migration 0009: these applications share a KPJ number; correct them with BPJS "
            "(set the wrong ones' kpj_number to NULL), then start again: " + "; ".join(pairs)
        )


def upgrade() -> None:
    _refuse_shared_kpj_numbers()
    with op.batch_alter_table("application") as batch_op:
        batch_op.add_column(
            sa.Column("identity_mismatch_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.alter_column(
            "eligibility_reasons", existing_type=sa.String(length=500), type_=sa.Text()
        )
        batch_op.create_index(
            "uq_application_kpj_number",
            ["kpj_number"],
            unique=True,
            sqlite_where=sa.text("kpj_number IS NOT NULL"),
            postgresql_where=sa.text("kpj_number IS NOT NULL"),
        )
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.alter_column("reason", existing_type=sa.String(length=500), type_=sa.Text())


def downgrade() -> None:
    with op.batch_alter_table("audit_event") as batch_op:
        batch_op.alter_column("reason", existing_type=sa.Text(), type_=sa.String(length=500))
    with op.batch_alter_table("application") as batch_op:
        batch_op.drop_index("uq_application_kpj_number")
        batch_op.alter_column(
            "eligibility_reasons", existing_type=sa.Text(), type_=sa.String(length=500)
        )
        batch_op.drop_column("identity_mismatch_at")
