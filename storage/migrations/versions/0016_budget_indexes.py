"""Partial indexes for the money and the year in /statistik.

The ledger reads the places freed (audit events to 'withdrawn', a few among every event) and the
statistics count lapsed cover (a few among every application): without these both scan a whole
table, ~0.1 s each at 200.000 applications (bench/bench_stats.py).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 14:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITHDRAWN_SQL = "to_status = 'withdrawn'"
LAPSED_SQL = "lapsed_at IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_audit_event_withdrawn",
        "audit_event",
        ["application_id"],
        sqlite_where=sa.text(WITHDRAWN_SQL),
        postgresql_where=sa.text(WITHDRAWN_SQL),
    )
    op.create_index(
        "ix_application_lapsed",
        "application",
        ["lapsed_at"],
        sqlite_where=sa.text(LAPSED_SQL),
        postgresql_where=sa.text(LAPSED_SQL),
    )


def downgrade() -> None:
    op.drop_index("ix_application_lapsed", table_name="application")
    op.drop_index("ix_audit_event_withdrawn", table_name="audit_event")
