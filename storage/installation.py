"""Facts about this installation kept in its database: the fingerprint of PII_SECRET."""

from __future__ import annotations

import hmac

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from domain.pii import hash_identifier, key_fingerprint
from storage.engine import Database
from storage.models import Application, AppMeta

PII_FINGERPRINT = "pii_secret_fingerprint"
# Applications compared with the key when no fingerprint is stored yet (a database from before
# fingerprints): any one hashed with this key will do.
_SAMPLE_APPLICATIONS = 20


async def pii_key_matches(database: Database, secret: bytes) -> bool:
    """Whether `secret` is the key this database's NIK hashes were made with.

    The first call stores the key's fingerprint and says yes, unless applications stored
    before fingerprints existed were hashed with another key; later calls compare.
    """
    fingerprint = key_fingerprint(secret)
    for _attempt in range(2):
        async with database.write() as session:
            stored = await session.get(AppMeta, PII_FINGERPRINT)
            if stored is not None:
                return hmac.compare_digest(stored.value, fingerprint)
            result = await session.execute(
                select(col(Application.nik), col(Application.nik_hash))
                .where(col(Application.nik).is_not(None), col(Application.nik_hash).is_not(None))
                .limit(_SAMPLE_APPLICATIONS)
            )
            sample = [(str(nik), str(nik_hash)) for nik, nik_hash in result.all()]
            if sample and not any(
                hmac.compare_digest(hash_identifier(nik, secret), nik_hash)
                for nik, nik_hash in sample
            ):
                return False
            session.add(AppMeta(key=PII_FINGERPRINT, value=fingerprint))
            try:
                await session.commit()
            except IntegrityError:
                # Another process stored it first (PostgreSQL; SQLite's writers take turns):
                # compare with theirs.
                await session.rollback()
                continue
            return True
    return False
