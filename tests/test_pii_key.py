"""The database remembers which PII_SECRET made its NIK hashes and refuses another one."""

from __future__ import annotations

import sqlalchemy as sa

from domain.pii import hash_identifier, key_fingerprint
from storage.engine import Database
from storage.installation import PII_FINGERPRINT, pii_key_matches
from testkit.factories import make_person

KEY = b"first-key-of-this-installation-0123"
OTHER_KEY = b"another-key-by-mistake-0123456789"


async def test_first_key_is_remembered_and_another_is_refused(database: Database) -> None:
    """The first use stores the key's fingerprint (not the key); a different key then fails."""
    assert await pii_key_matches(database, KEY)
    assert await pii_key_matches(database, KEY)
    assert not await pii_key_matches(database, OTHER_KEY)
    async with database.engine.connect() as connection:
        stored = (
            await connection.execute(
                sa.text("SELECT value FROM app_meta WHERE key = :key"), {"key": PII_FINGERPRINT}
            )
        ).scalar_one()
    assert stored == key_fingerprint(KEY)
    assert KEY.decode() not in stored


async def test_database_from_before_fingerprints_is_checked_against_its_applications(
    database: Database,
) -> None:
    """Applications stored before the fingerprint existed tell the old key from a new one."""
    person = make_person(3)
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO application (telegram_user_id, chat_id, status, return_to_summary,"
                " nik, nik_hash, created_at, updated_at) VALUES (1, 1, 'submitted', false,"
                " :nik, :nik_hash, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"nik": person.nik, "nik_hash": hash_identifier(person.nik, KEY)},
        )
    assert not await pii_key_matches(database, OTHER_KEY)
    assert await pii_key_matches(database, KEY)
    assert not await pii_key_matches(database, OTHER_KEY)
