"""Applications without a Telegram account, and the programme year's fields.

An application registered by an operator for a worker who has no Telegram, or imported from last
year's cohort, has no Telegram account until the worker takes it over: telegram_user_id and
chat_id become nullable (NULLs never collide in the "one open application per account" index).
The year's fields: cohort_year (last year's participant being renewed), paid_through (the month
BPJS says premiums are paid through), lapsed_at (three months unpaid), assisted_by (the
operator who registered it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[object]], ...] = (
    ("cohort_year", sa.Integer()),
    ("paid_through", sa.Date()),
    ("lapsed_at", sa.DateTime(timezone=True)),
    ("assisted_by", sa.BigInteger()),
)


def _keep_sequence() -> int | None:
    # A batch rebuild on SQLite resets AUTOINCREMENT's counter to max(id); 0010 set it past ids
    # that the audit log still names, so it is read here and put back afterwards.
    if op.get_bind().dialect.name != "sqlite":
        return None
    row = (
        op.get_bind()
        .execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'application'"))
        .first()
    )
    return None if row is None else int(row[0])


def _restore_sequence(seq: int | None) -> None:
    if seq is None:
        return
    op.execute(
        sa.text(
            "UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = 'application'"
        ).bindparams(seq=seq)
    )


def upgrade() -> None:
    seq = _keep_sequence()
    with op.batch_alter_table("application", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("telegram_user_id", existing_type=sa.BigInteger(), nullable=True)
        batch.alter_column("chat_id", existing_type=sa.BigInteger(), nullable=True)
        for name, type_ in NEW_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    _restore_sequence(seq)


def downgrade() -> None:
    seq = _keep_sequence()
    with op.batch_alter_table("application", table_kwargs={"sqlite_autoincrement": True}) as batch:
        for name, _ in reversed(NEW_COLUMNS):
            batch.drop_column(name)
        batch.alter_column("chat_id", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("telegram_user_id", existing_type=sa.BigInteger(), nullable=False)
    _restore_sequence(seq)
