"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 06:15:57.697689
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "application",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=True),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=True),
        sa.Column("return_to_summary", sa.Boolean(), nullable=False),
        sa.Column("consent_version", sa.String(length=32), nullable=True),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("nik", sa.String(length=16), nullable=True),
        sa.Column("nik_hash", sa.String(length=64), nullable=True),
        sa.Column("nama", sa.String(length=200), nullable=True),
        sa.Column("tanggal_lahir", sa.Date(), nullable=True),
        sa.Column("jenis_kelamin", sa.String(length=1), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("occupation", sa.String(length=32), nullable=True),
        sa.Column("occupation_other", sa.String(length=100), nullable=True),
        sa.Column("kecamatan_code", sa.String(length=8), nullable=True),
        sa.Column("kelurahan_code", sa.String(length=13), nullable=True),
        sa.Column("alamat", sa.String(length=300), nullable=True),
        sa.Column("heir_name", sa.String(length=200), nullable=True),
        sa.Column("heir_relation", sa.String(length=32), nullable=True),
        sa.Column("dtsen_desil", sa.Integer(), nullable=True),
        sa.Column("dtsen_kode_wilayah", sa.String(length=10), nullable=True),
        sa.Column("name_score", sa.Float(), nullable=True),
        sa.Column("eligibility_reasons", sa.String(length=500), nullable=True),
        sa.Column("fix_field", sa.String(length=32), nullable=True),
        sa.Column("decided_by", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.String(length=500), nullable=True),
        sa.Column("kpj_number", sa.String(length=11), nullable=True),
        sa.Column("coverage_start", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.create_index(
            "ix_application_queue", ["status", "dtsen_desil", "submitted_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_application_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_application_telegram_user_id"), ["telegram_user_id"], unique=False
        )
        batch_op.create_index(
            "uq_application_live_nik",
            ["nik_hash"],
            unique=True,
            sqlite_where=sa.text(
                "status IN ('pending', 'needs_fix', 'approved', 'waitlisted', 'enrolled')"
            ),
            postgresql_where=sa.text(
                "status IN ('pending', 'needs_fix', 'approved', 'waitlisted', 'enrolled')"
            ),
        )
        batch_op.create_index(
            "uq_application_open_user",
            ["telegram_user_id"],
            unique=True,
            sqlite_where=sa.text(
                "status IN ('draft', 'pending', 'needs_fix', 'approved', 'waitlisted', 'enrolled')"
            ),
            postgresql_where=sa.text(
                "status IN ('draft', 'pending', 'needs_fix', 'approved', 'waitlisted', 'enrolled')"
            ),
        )

    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=True),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_event_application_id"), ["application_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_event_at"), ["at"], unique=False)

    op.create_table(
        "dtsen_import",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_name", sa.String(length=500), nullable=False),
        sa.Column("rows_loaded", sa.Integer(), nullable=False),
        sa.Column("rows_skipped", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "dtsen_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nik_hash", sa.String(length=64), nullable=False),
        sa.Column("nama", sa.String(length=200), nullable=False),
        sa.Column("tanggal_lahir", sa.Date(), nullable=False),
        sa.Column("jenis_kelamin", sa.String(length=1), nullable=False),
        sa.Column("kode_wilayah", sa.String(length=10), nullable=False),
        sa.Column("desil", sa.Integer(), nullable=False),
        sa.Column("no_kk_hash", sa.String(length=64), nullable=True),
        sa.Column("alamat", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dtsen_record", schema=None) as batch_op:
        batch_op.create_index("uq_dtsen_record_nik_hash", ["nik_hash"], unique=True)

    op.create_table(
        "nik_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("nik_hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nik_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_nik_attempt_telegram_user_id"), ["telegram_user_id"], unique=False
        )

    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_notification_application_id"), ["application_id"], unique=False
        )

    op.create_table(
        "processed_update",
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id"),
    )
    op.create_table(
        "staff",
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("kecamatan_scope", sa.String(length=200), nullable=True),
        sa.Column("added_by", sa.BigInteger(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("telegram_user_id"),
    )
    op.create_table(
        "user_preference",
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("telegram_user_id"),
    )


def downgrade() -> None:
    op.drop_table("user_preference")
    op.drop_table("staff")
    op.drop_table("processed_update")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_application_id"))

    op.drop_table("notification")
    with op.batch_alter_table("nik_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nik_attempt_telegram_user_id"))

    op.drop_table("nik_attempt")
    with op.batch_alter_table("dtsen_record", schema=None) as batch_op:
        batch_op.drop_index("uq_dtsen_record_nik_hash")

    op.drop_table("dtsen_record")
    op.drop_table("dtsen_import")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_at"))
        batch_op.drop_index(batch_op.f("ix_audit_event_application_id"))

    op.drop_table("audit_event")
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_application_open_user",
            sqlite_where=sa.text(
                "status IN ('draft', 'pending', 'needs_fix', 'approved', 'waitlisted', 'enrolled')"
            ),
            postgresql_where=sa.text(
                "status IN ('draft', 'pending', 'needs_fix', 'approved', 'waitlisted', 'enrolled')"
            ),
        )
        batch_op.drop_index(
            "uq_application_live_nik",
            sqlite_where=sa.text(
                "status IN ('pending', 'needs_fix', 'approved', 'waitlisted', 'enrolled')"
            ),
            postgresql_where=sa.text(
                "status IN ('pending', 'needs_fix', 'approved', 'waitlisted', 'enrolled')"
            ),
        )
        batch_op.drop_index(batch_op.f("ix_application_telegram_user_id"))
        batch_op.drop_index(batch_op.f("ix_application_status"))
        batch_op.drop_index("ix_application_queue")

    op.drop_table("application")
