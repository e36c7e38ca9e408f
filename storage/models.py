"""Every table of the bot, as SQLModel classes; Alembic migrations mirror this file."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.lifecycle import LIVE_STATUSES, OPEN_STATUSES, Status


def utcnow() -> datetime:
    """Timezone-aware now; SQLModel 0.0.50 rejects naive datetimes."""
    return datetime.now(UTC)


# The partial unique indexes below keep one live application per NIK and one open one per account.
_LIVE_SQL = "status IN (" + ", ".join(f"'{status}'" for status in LIVE_STATUSES) + ")"
_OPEN_SQL = "status IN (" + ", ".join(f"'{status}'" for status in OPEN_STATUSES) + ")"
_ASSISTED_DRAFT_SQL = "status = 'draft' AND telegram_user_id IS NULL AND assisted_by IS NOT NULL"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: sa.Dialect,  # noqa: ARG002  (part of the TypeDecorator protocol)
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TZDateTime = UTCDateTime()


# One person from the city's DTSEN extract: the NIK only as a keyed HMAC (32 raw bytes), and
# only what eligibility matches on (the extract's family card number and address are not kept).
# Lookups go through nik_key, the HMAC's first 8 bytes as an integer, then compare the whole
# HMAC: SQLite builds that index in about half the time one on the 32 bytes takes, inside
# the import's swap. NIKs are unique by the import's duplicate check, not by an index.
# The import loads an unindexed staging table and builds the index afterwards.
class DtsenRecord(SQLModel, table=True):
    __tablename__ = "dtsen_record"
    __table_args__ = (sa.Index("ix_dtsen_record_nik_key", "nik_key"),)

    id: int | None = Field(default=None, primary_key=True)
    nik_hash: bytes = Field(sa_type=sa.LargeBinary(32))
    nik_key: int = Field(sa_type=sa.BigInteger)
    nama: str = Field(max_length=200)
    tanggal_lahir: date
    jenis_kelamin: str = Field(max_length=1)
    kode_wilayah: str = Field(max_length=10)
    desil: int  # the national scale (desil_nasional); one-file extracts carry only this one
    # DTSEN V3 (two files): the family's other two rankings, the KTP regency (a reviewer's
    # "KTP outside the city" flag) and the work variables, decoded when a codebook was given.
    desil_provinsi: int | None = None
    desil_kabupaten_kota: int | None = None
    kode_kabupaten_kota_ktp: str | None = Field(default=None, max_length=4)
    status_bekerja: str | None = Field(default=None, max_length=100)
    status_dalam_pekerjaan: str | None = Field(default=None, max_length=100)
    lapangan_usaha: str | None = Field(default=None, max_length=100)


# Metadata of the DTSEN table in service: when it was imported and from what.
class DtsenImport(SQLModel, table=True):
    __tablename__ = "dtsen_import"

    id: int | None = Field(default=None, primary_key=True)
    imported_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)
    source_name: str = Field(max_length=500)
    rows_loaded: int
    rows_skipped: int
    actor: str = Field(max_length=100)


# A worker's application; while status is draft, `step` is the conversation state.
class Application(SQLModel, table=True):
    __tablename__ = "application"
    __table_args__ = (
        sa.Index(
            "uq_application_live_nik",
            "nik_hash",
            unique=True,
            sqlite_where=sa.text(_LIVE_SQL),
            postgresql_where=sa.text(_LIVE_SQL),
        ),
        sa.Index(
            "uq_application_open_user",
            "telegram_user_id",
            unique=True,
            sqlite_where=sa.text(_OPEN_SQL),
            postgresql_where=sa.text(_OPEN_SQL),
        ),
        sa.Index("ix_application_queue", "status", "dtsen_desil", "submitted_at"),
        # Counts for a reviewer scoped to some kecamatan.
        sa.Index("ix_application_kecamatan_status", "kecamatan_code", "status"),
        sa.Index("ix_application_phone", "phone"),
        # One assisted draft at a time per operator, apart from any registration of their own.
        sa.Index(
            "uq_application_assisted_draft",
            "assisted_by",
            unique=True,
            sqlite_where=sa.text(_ASSISTED_DRAFT_SQL),
            postgresql_where=sa.text(_ASSISTED_DRAFT_SQL),
        ),
        # What one operator registered: /status NUMBER, the daily cap, the fraud figures.
        sa.Index("ix_application_assisted_by", "assisted_by", "created_at", "submitted_at"),
        # /statistik and /komunitas count per community without reading the whole table.
        sa.Index("ix_application_community", "community_id", "submitted_at"),
        # One KPJ number per worker, even when two KPJ imports run at once.
        sa.Index(
            "uq_application_kpj_number",
            "kpj_number",
            unique=True,
            sqlite_where=sa.text("kpj_number IS NOT NULL"),
            postgresql_where=sa.text("kpj_number IS NOT NULL"),
        ),
        # Lapsed cover, counted in /statistik: a few among every application.
        sa.Index(
            "ix_application_lapsed",
            "lapsed_at",
            sqlite_where=sa.text("lapsed_at IS NOT NULL"),
            postgresql_where=sa.text("lapsed_at IS NOT NULL"),
        ),
        # Ids are never reused on SQLite either (PostgreSQL's sequence never reuses them): a
        # discarded draft's audit rows keep its id, which must not name a later application.
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str | None = Field(default=None, max_length=20, unique=True)
    # None while nobody has taken the application over from Telegram: registered by an operator
    # for a worker without Telegram, or imported from last year's cohort.
    telegram_user_id: int | None = Field(default=None, sa_type=sa.BigInteger, index=True)
    chat_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    status: str = Field(default=Status.DRAFT, max_length=16, index=True)
    step: str | None = Field(default=None, max_length=32)
    return_to_summary: bool = False
    # The update applied last to this draft: the same one delivered again is ignored.
    last_update_id: int | None = Field(default=None, sa_type=sa.BigInteger)

    consent_version: str | None = Field(default=None, max_length=32)
    consent_at: datetime | None = Field(default=None, sa_type=TZDateTime)

    nik: str | None = Field(default=None, max_length=16)
    nik_hash: str | None = Field(default=None, max_length=64)
    nama: str | None = Field(default=None, max_length=200)
    tanggal_lahir: date | None = None
    jenis_kelamin: str | None = Field(default=None, max_length=1)
    phone: str | None = Field(default=None, max_length=20)
    occupation: str | None = Field(default=None, max_length=32)
    occupation_other: str | None = Field(default=None, max_length=100)
    kecamatan_code: str | None = Field(default=None, max_length=8)
    kelurahan_code: str | None = Field(default=None, max_length=13)
    alamat: str | None = Field(default=None, max_length=300)
    heir_name: str | None = Field(default=None, max_length=200)
    heir_relation: str | None = Field(default=None, max_length=32)

    dtsen_desil: int | None = None  # the value the rule used, in dtsen_desil_scale
    # What the assessment saw, so a later change of PROGRAM_DESIL_SCALE rewrites no decision.
    dtsen_desil_scale: str | None = Field(default=None, max_length=16)
    dtsen_desil_nasional: int | None = None
    dtsen_desil_provinsi: int | None = None
    dtsen_desil_kabupaten_kota: int | None = None
    dtsen_ktp_regency: str | None = Field(default=None, max_length=4)
    dtsen_work: str | None = Field(default=None, max_length=300)
    dtsen_kode_wilayah: str | None = Field(default=None, max_length=10)
    name_score: float | None = None
    # JSON of every DTSEN finding: unbounded, all findings at once exceed 500 characters.
    eligibility_reasons: str | None = Field(default=None, sa_type=sa.Text)
    # When a correction of the identity (after submission) failed the DTSEN check past the
    # daily limit: the application stayed in review and the reviewer's card says so.
    identity_mismatch_at: datetime | None = Field(default=None, sa_type=TZDateTime)
    # The DTSEN re-check after an import (usecases/recheck.py): the findings (JSON) of a pending
    # or waitlisted application that failed it, for staff (never refused automatically); when
    # an ineligible application was found eligible (its worker is offered to carry on); when a
    # re-check last changed the application.
    recheck_flag: str | None = Field(default=None, sa_type=sa.Text)
    requalified_at: datetime | None = Field(default=None, sa_type=TZDateTime)
    recheck_at: datetime | None = Field(default=None, sa_type=TZDateTime)

    fix_field: str | None = Field(default=None, max_length=32)
    decided_by: int | None = Field(default=None, sa_type=sa.BigInteger)
    decided_at: datetime | None = Field(default=None, sa_type=TZDateTime)
    decision_reason: str | None = Field(default=None, max_length=500)
    kpj_number: str | None = Field(default=None, max_length=11)
    coverage_start: date | None = None
    # The programme year: last year's participant being renewed (their year), the month BPJS
    # says premiums are paid through (its last day), when cover lapsed (three months unpaid),
    # and the operator who registered a worker without Telegram.
    cohort_year: int | None = None
    paid_through: date | None = None
    lapsed_at: datetime | None = Field(default=None, sa_type=TZDateTime)
    assisted_by: int | None = Field(default=None, sa_type=sa.BigInteger)
    # The paid_through month admins were warned about (once per member and month).
    lapse_warned_for: date | None = None
    # The community whose link the worker arrived by (/start CODE), if any.
    community_id: int | None = None

    created_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=TZDateTime)
    reminded_at: datetime | None = Field(default=None, sa_type=TZDateTime)


# A community link admins hand out (ojol pangkalan, pasar, RT/RW): a random code, no personal data.
class Community(SQLModel, table=True):
    __tablename__ = "community"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, unique=True)
    name: str = Field(max_length=100)
    created_by: int = Field(sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)


# Staff added by admins in the bot (ADMIN_IDS/REVIEWER_IDS from settings need no row).
class Staff(SQLModel, table=True):
    __tablename__ = "staff"

    telegram_user_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    role: str = Field(max_length=16)
    kecamatan_scope: str | None = Field(default=None, max_length=200)
    added_by: int = Field(sa_type=sa.BigInteger)
    added_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)


# What the bot waits for from one staff member (a typed rejection reason, then its confirmation),
# so the next text is read as that answer in any process and after a restart; it ends with any
# command or button press of theirs, and counts for PENDING_INPUT_TTL after `created_at`.
class StaffPendingInput(SQLModel, table=True):
    __tablename__ = "staff_pending_input"

    telegram_user_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    awaiting: str = Field(max_length=16)  # "reason" (text), then "confirm" (Kirim or Batal)
    application_id: int
    status_read: str = Field(max_length=16)  # the application's status when it was asked for
    reason: str | None = Field(default=None, max_length=300)
    token: str = Field(max_length=16)  # ties the Kirim/Batal buttons to this very entry
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)


# Every state change and every refused staff action: who, when, from, to, why.
class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    # Places freed, read by the money ledger (storage/budget.py): a few among every event.
    __table_args__ = (
        sa.Index(
            "ix_audit_event_withdrawn",
            "application_id",
            sqlite_where=sa.text("to_status = 'withdrawn'"),
            postgresql_where=sa.text("to_status = 'withdrawn'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime, index=True)
    actor_id: int | None = Field(default=None, sa_type=sa.BigInteger)
    action: str = Field(max_length=32)
    application_id: int | None = Field(default=None, index=True)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    reason: str | None = Field(default=None, sa_type=sa.Text)


# A worker who held a place and erased their data: the minimum needed to tell BPJS
# Ketenagakerjaan to stop the city paying for them, kept under the legal-obligation basis
# (UU PDP) until an admin marks the deregistration done, which deletes the row.
class Deregistration(SQLModel, table=True):
    __tablename__ = "deregistration"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int
    code: str = Field(max_length=20)
    nik: str = Field(max_length=16)
    nama: str = Field(max_length=200)
    kpj_number: str | None = Field(default=None, max_length=11)
    approved_at: datetime | None = Field(default=None, sa_type=TZDateTime)
    enrolled_at: datetime | None = Field(default=None, sa_type=TZDateTime)
    erased_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)


# Update ids already handled, so a redelivered update changes nothing twice.
class ProcessedUpdate(SQLModel, table=True):
    __tablename__ = "processed_update"

    update_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    processed_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)


# Per-user preferences that outlive any application (the chosen language).
class UserPreference(SQLModel, table=True):
    __tablename__ = "user_preference"

    telegram_user_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    language: str = Field(max_length=8)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)


class AttemptKind(StrEnum):
    """What a `NikAttempt` row counts: a NIK looked up, or an identity checked against DTSEN."""

    NIK = "nik"  # nik_hash: the HMAC of the NIK
    CLAIM = "claim"  # nik_hash: the HMAC of the claim's key (NIK, name, birth date)


# NIK look-ups and eligibility checks per Telegram account, each kept as an HMAC: they cap
# probing per day and flag risk to staff. /hapusdata replaces the HMACs by random stand-ins
# (storage.retention.erase_user).
class NikAttempt(SQLModel, table=True):
    __tablename__ = "nik_attempt"

    id: int | None = Field(default=None, primary_key=True)
    telegram_user_id: int = Field(sa_type=sa.BigInteger, index=True)
    kind: str = Field(
        default=AttemptKind.NIK, max_length=8, sa_column_kwargs={"server_default": "nik"}
    )
    # Indexed for the staff card: how many other accounts typed an application's NIK.
    nik_hash: str = Field(max_length=64, index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)


# Messages that must survive a crash: to workers, written with the decision and sent after it;
# to staff (no application, e.g. an import's re-check summary), their figures in `payload`.
class Notification(SQLModel, table=True):
    __tablename__ = "notification"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int | None = Field(default=None, index=True)
    chat_id: int = Field(sa_type=sa.BigInteger)
    kind: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=TZDateTime)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=300)
    payload: str | None = Field(default=None, sa_type=sa.Text)


# Facts about this installation, by name: the fingerprint of PII_SECRET that made its NIK hashes
# (storage.installation), so a changed key stops start-up instead of matching nobody.
class AppMeta(SQLModel, table=True):
    __tablename__ = "app_meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)


# A worker's appeal (sanggah) against a refusal, a rejection or the waiting list: at most one
# open per application; staff answer it by `deadline` (working days), else admins are told once
# (escalated_at). `answer` is the dismissal reason the worker reads, or an inclusion's reason.
class Appeal(SQLModel, table=True):
    __tablename__ = "appeal"
    __table_args__ = (
        sa.Index(
            "uq_appeal_open_application",
            "application_id",
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        ),
        # The staff queue and the statistics: open appeals by deadline.
        sa.Index("ix_appeal_status_deadline", "status", "deadline"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket: str | None = Field(default=None, max_length=16, unique=True)
    application_id: int = Field(index=True)
    text: str = Field(max_length=500)
    filed_at: datetime = Field(default_factory=utcnow, sa_type=TZDateTime)
    deadline: date
    status: str = Field(default="open", max_length=16)
    answered_by: int | None = Field(default=None, sa_type=sa.BigInteger)
    answered_at: datetime | None = Field(default=None, sa_type=TZDateTime)
    answer: str | None = Field(default=None, max_length=300)
    escalated_at: datetime | None = Field(default=None, sa_type=TZDateTime)


# Which reviewer has which application card open, until when: "next card" hands reviewers
# working in different processes different applications (storage.card_leases).
class CardLease(SQLModel, table=True):
    __tablename__ = "card_lease"

    application_id: int = Field(primary_key=True)
    reviewer_id: int = Field(sa_type=sa.BigInteger)
    lease_until: datetime = Field(sa_type=TZDateTime)


# One row per scheduled job: the process that runs it now and until when its claim holds, so
# each run is done by one process and a dead process's claim runs out (storage.jobs).
class JobClaim(SQLModel, table=True):
    __tablename__ = "job_claim"

    name: str = Field(primary_key=True, max_length=64)
    claimed_by: str = Field(max_length=128)
    claimed_until: datetime = Field(sa_type=TZDateTime)


# The bot's one send budget across processes (storage.send_budget): when the next message into
# any chat may go and until when a 429 paused the whole bot, in epoch seconds; one row, id 1.
class SendBudget(SQLModel, table=True):
    __tablename__ = "send_budget"

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    next_free_at: float
    paused_until: float


# When the next message into one chat may go (epoch seconds), across processes.
class ChatSend(SQLModel, table=True):
    __tablename__ = "chat_send"

    chat_id: int = Field(
        primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    next_allowed_at: float
