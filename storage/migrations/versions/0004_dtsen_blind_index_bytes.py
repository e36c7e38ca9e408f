"""DTSEN rows: the NIK HMAC as 32 raw bytes, looked up by an integer key; no KK number or address.

The hashes already stored are converted (hex -> bytes, and their first 8 bytes -> nik_key), so
lookups keep working without a re-import. The unique index on the hash gives way to a plain
index on nik_key (NIKs stay unique by the import's duplicate check). The family card hash and
the address are dropped: nothing reads them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REBUILT = "_dtsen_record_0004"
_KEPT = "id, nama, tanggal_lahir, jenis_kelamin, kode_wilayah, desil"
_OLD_INDEX = "uq_dtsen_record_nik_hash"
_NEW_INDEX = "ix_dtsen_record_nik_key"


def _columns(*nik: sa.Column[object]) -> list[sa.schema.SchemaItem]:
    """The table's columns in the models' order, with these NIK columns."""
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        *nik,
        sa.Column("nama", sa.String(length=200), nullable=False),
        sa.Column("tanggal_lahir", sa.Date(), nullable=False),
        sa.Column("jenis_kelamin", sa.String(length=1), nullable=False),
        sa.Column("kode_wilayah", sa.String(length=10), nullable=False),
        sa.Column("desil", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    ]


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text)


def _key(text: str) -> int:
    """domain.pii.digest_key of a hex digest (the migration does not import the application)."""
    return int.from_bytes(bytes.fromhex(text[:16]), "big", signed=True)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_index(_OLD_INDEX, table_name="dtsen_record")
        op.alter_column(
            "dtsen_record",
            "nik_hash",
            type_=sa.LargeBinary(32),
            existing_type=sa.String(length=64),
            existing_nullable=False,
            postgresql_using="decode(nik_hash, 'hex')",
        )
        op.add_column("dtsen_record", sa.Column("nik_key", sa.BigInteger(), nullable=True))
        # bit(64) -> bigint reads the bits as a two's complement integer, as digest_key does.
        op.execute(
            "UPDATE dtsen_record SET nik_key = "
            "('x' || encode(substr(nik_hash, 1, 8), 'hex'))::bit(64)::bigint"
        )
        op.alter_column("dtsen_record", "nik_key", existing_type=sa.BigInteger(), nullable=False)
        op.drop_column("dtsen_record", "no_kk_hash")
        op.drop_column("dtsen_record", "alamat")
        op.create_index(_NEW_INDEX, "dtsen_record", ["nik_key"])
        return
    # SQLite cannot change a column's type in place: copy the table into its new shape.
    # unhex() only arrived in SQLite 3.41 (Debian 12 ships 3.40): decode in Python, with
    # functions of this connection, inside one INSERT ... SELECT.
    raw = bind.connection.dbapi_connection
    assert raw is not None
    raw.create_function("rentan_0004_unhex", 1, _unhex, deterministic=True)
    raw.create_function("rentan_0004_key", 1, _key, deterministic=True)
    op.create_table(
        _REBUILT,
        *_columns(
            sa.Column("nik_hash", sa.LargeBinary(32), nullable=False),
            sa.Column("nik_key", sa.BigInteger(), nullable=False),
        ),
    )
    op.execute(
        f"INSERT INTO {_REBUILT} ({_KEPT}, nik_hash, nik_key) SELECT {_KEPT}, "
        "rentan_0004_unhex(nik_hash), rentan_0004_key(nik_hash) FROM dtsen_record"
    )
    op.drop_table("dtsen_record")  # its unique index goes with it
    op.rename_table(_REBUILT, "dtsen_record")
    op.create_index(_NEW_INDEX, "dtsen_record", ["nik_key"])


def downgrade() -> None:
    # The dropped columns come back empty: their values are gone.
    if op.get_bind().dialect.name != "sqlite":
        op.drop_index(_NEW_INDEX, table_name="dtsen_record")
        op.drop_column("dtsen_record", "nik_key")
        op.alter_column(
            "dtsen_record",
            "nik_hash",
            type_=sa.String(length=64),
            existing_type=sa.LargeBinary(32),
            existing_nullable=False,
            postgresql_using="encode(nik_hash, 'hex')",
        )
        op.add_column("dtsen_record", sa.Column("no_kk_hash", sa.String(length=64)))
        op.add_column("dtsen_record", sa.Column("alamat", sa.String(length=500)))
        op.create_index(_OLD_INDEX, "dtsen_record", ["nik_hash"], unique=True)
        return
    op.create_table(
        _REBUILT,
        *_columns(sa.Column("nik_hash", sa.String(length=64), nullable=False)),
        sa.Column("no_kk_hash", sa.String(length=64), nullable=True),
        sa.Column("alamat", sa.String(length=500), nullable=True),
    )
    op.execute(
        f"INSERT INTO {_REBUILT} ({_KEPT}, nik_hash) "
        f"SELECT {_KEPT}, lower(hex(nik_hash)) FROM dtsen_record"
    )
    op.drop_table("dtsen_record")
    op.rename_table(_REBUILT, "dtsen_record")
    op.create_index(_OLD_INDEX, "dtsen_record", ["nik_hash"], unique=True)
