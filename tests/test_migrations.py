"""Migrations: the schema comes from Alembic, matches the models, and re-running is harmless."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from domain.pii import hash_identifier
from storage.applications import ApplicationRepository
from storage.dtsen.records import DtsenRepository
from storage.engine import Database
from storage.migrate import alembic_config, current_revision, head_revision, upgrade
from testkit.factories import make_person

EXPECTED_TABLES = {
    "application",
    "audit_event",
    "deregistration",
    "dtsen_import",
    "dtsen_record",
    "nik_attempt",
    "notification",
    "processed_update",
    "staff",
    "user_preference",
}


async def test_upgrade_creates_every_table_at_head(empty_database_url: str) -> None:
    """A new database gets every table and is stamped with the newest revision."""
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database)
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert tables >= EXPECTED_TABLES
        assert head_revision(empty_database_url) == await current_revision(database)
    finally:
        await database.dispose()


async def test_upgrade_twice_changes_nothing(empty_database_url: str) -> None:
    """Start-up runs migrations every time; the second run is a no-op that keeps data."""
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database)
        async with database.engine.begin() as connection:
            await connection.execute(
                sa.text("INSERT INTO staff VALUES (1, 'admin', NULL, 1, CURRENT_TIMESTAMP)")
            )
        await upgrade(database)
        async with database.engine.connect() as connection:
            count = (await connection.execute(sa.text("SELECT count(*) FROM staff"))).scalar()
        assert count == 1
    finally:
        await database.dispose()


async def test_migrations_match_the_models(empty_database_url: str) -> None:
    """No model change is left without a migration, on either backend (types, indexes and
    constraints are compared as each one creates them)."""
    database = Database.from_url(empty_database_url)
    try:
        await upgrade(database)

        def _diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))

        async with database.engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await database.dispose()


# SQLite only: journal mode, foreign-key enforcement and busy_timeout are SQLite PRAGMAs that
# storage/engine.py sets per connection; PostgreSQL has all three behaviours built in.
async def test_sqlite_is_opened_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    """WAL lets readers run beside the writer; busy_timeout makes writers wait, not fail."""
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}")
    try:
        async with database.engine.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar()
            keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert (mode, keys) == ("wal", 1)
        assert timeout is not None
        assert int(timeout) >= 5000
    finally:
        await database.dispose()


async def _migrate(database: Database, revision: str, *, down: bool = False) -> None:
    """Move the schema to `revision`, as `alembic upgrade/downgrade REVISION` would."""

    def _run(connection: Connection) -> None:
        config = alembic_config(database.url)
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    async with database.engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()


async def test_dtsen_hashes_stored_as_hex_still_match_after_the_upgrade(
    database_url: str,
) -> None:
    """0004 turns the stored hex HMACs into 32 raw bytes plus their integer key and drops the KK
    number and address: lookups keep finding people without a re-import; a downgrade gives the
    hex back."""
    secret = b"migration-secret"
    person = make_person(seed=40)
    database = Database.from_url(database_url)
    try:
        await upgrade(database)
        await _migrate(database, "0003", down=True)
        async with database.engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO dtsen_record (id, nik_hash, nama, tanggal_lahir, jenis_kelamin,"
                    " kode_wilayah, desil, no_kk_hash, alamat) VALUES (7, :hash, :nama, :born,"
                    " :gender, :kode, :desil, :kk, 'JL. MAWAR NO. 3')"
                ),
                {
                    "hash": hash_identifier(person.nik, secret),
                    "nama": person.name.upper(),
                    "born": person.birth_date,
                    "gender": person.gender,
                    "kode": person.kode_wilayah,
                    "desil": person.desil,
                    "kk": hash_identifier("3275011203150007", secret),
                },
            )
        await _migrate(database, "head")
        assert await DtsenRepository(database, secret).find(nik=person.nik) == person.dtsen()
        async with database.engine.connect() as connection:
            columns = await connection.run_sync(
                lambda c: [column["name"] for column in sa.inspect(c).get_columns("dtsen_record")]
            )
            indexes = await connection.run_sync(
                lambda c: [
                    (i["name"], i["unique"]) for i in sa.inspect(c).get_indexes("dtsen_record")
                ]
            )
        assert "no_kk_hash" not in columns
        assert "alamat" not in columns
        assert indexes == [("ix_dtsen_record_nik_key", False)]

        await _migrate(database, "0003", down=True)
        async with database.engine.connect() as connection:
            stored = (
                await connection.execute(sa.text("SELECT id, nik_hash, alamat FROM dtsen_record"))
            ).all()
        assert [tuple(row) for row in stored] == [(7, hash_identifier(person.nik, secret), None)]
    finally:
        await database.dispose()


async def test_attempts_stored_before_the_upgrade_count_as_nik_look_ups(
    database_url: str,
) -> None:
    """0005 gives the attempts already stored the kind "nik" (they were all NIK look-ups); a
    downgrade drops the eligibility checks, which the older schema would count as NIKs."""
    database = Database.from_url(database_url)
    try:
        await upgrade(database)
        await _migrate(database, "0004", down=True)
        async with database.engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO nik_attempt (telegram_user_id, nik_hash, at)"
                    " VALUES (7, 'old', CURRENT_TIMESTAMP)"
                )
            )
        await _migrate(database, "head")
        async with database.engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO nik_attempt (telegram_user_id, kind, nik_hash, at)"
                    " VALUES (7, 'claim', 'new', CURRENT_TIMESTAMP)"
                )
            )
            stored = await connection.execute(
                sa.text("SELECT kind, nik_hash FROM nik_attempt ORDER BY id")
            )
            assert [tuple(row) for row in stored] == [("nik", "old"), ("claim", "new")]
        await _migrate(database, "0004", down=True)
        async with database.engine.connect() as connection:
            left = await connection.execute(sa.text("SELECT nik_hash FROM nik_attempt"))
            assert left.scalars().all() == ["old"]
    finally:
        await database.dispose()


async def test_upgrade_names_applications_that_already_share_a_kpj_number(
    database_url: str,
) -> None:
    """0009's unique index cannot be built over two holders of one KPJ number (left by
    concurrent imports before it): the upgrade stops and names them instead of guessing."""
    database = Database.from_url(database_url)
    try:
        await upgrade(database)
        await _migrate(database, "0005", down=True)
        async with database.engine.begin() as connection:
            for user, code in ((1, "BKS-KPJ001"), (2, "BKS-KPJ002")):
                await connection.execute(
                    sa.text(
                        "INSERT INTO application (code, telegram_user_id, chat_id, status,"
                        " return_to_summary, kpj_number, created_at, updated_at) VALUES"
                        " (:code, :user, :user, 'enrolled', false, '12345678901',"
                        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"code": code, "user": user},
                )
        with pytest.raises(RuntimeError, match="12345678901: BKS-KPJ001; 12345678901: BKS-KPJ002"):
            await _migrate(database, "head")
    finally:
        await database.dispose()


async def test_a_discarded_drafts_id_is_never_given_to_the_next_application(
    database: Database,
) -> None:
    """A draft discarded while it was the newest row keeps its id to itself: its audit rows
    (the chain of events) must never read as the next application's history (SQLite reused
    max(id) + 1 before AUTOINCREMENT; found by the whole-bot state machine)."""
    repository = ApplicationRepository(database)
    first = await repository.start_draft(
        user_id=610001, chat_id=610001, consent_version="v1", first_step="nik", update_id=None
    )
    assert first is not None
    assert await repository.discard_draft(user_id=610001)
    second = await repository.start_draft(
        user_id=610001, chat_id=610001, consent_version="v1", first_step="nik", update_id=None
    )
    assert second is not None
    assert second.id != first.id
