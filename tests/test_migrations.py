"""Migrations: the schema comes from Alembic, matches the models, and re-running is harmless."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from storage.engine import Database
from storage.migrate import current_revision, head_revision, upgrade

EXPECTED_TABLES = {
    "application",
    "audit_event",
    "dtsen_import",
    "dtsen_record",
    "nik_attempt",
    "notification",
    "processed_update",
    "staff",
    "user_preference",
}


async def test_upgrade_creates_every_table_at_head(tmp_path: Path) -> None:
    """A new database gets every table and is stamped with the newest revision."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    database = Database.from_url(url)
    try:
        await upgrade(database)
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert tables >= EXPECTED_TABLES
        assert head_revision(url) == await current_revision(database)
    finally:
        await database.dispose()


async def test_upgrade_twice_changes_nothing(tmp_path: Path) -> None:
    """Start-up runs migrations every time; the second run is a no-op that keeps data."""
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}")
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


async def test_migrations_match_the_models(tmp_path: Path) -> None:
    """No model change is left without a migration."""
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'diff.db'}")
    try:
        await upgrade(database)

        def _diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))

        async with database.engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await database.dispose()


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
