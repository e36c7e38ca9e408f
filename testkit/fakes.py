"""Fakes that are real: DTSEN rows in the test's own database, people from the factories."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from domain.pii import digest_key, hash_identifier, identifier_digest
from storage.engine import Database
from storage.models import Application, DtsenRecord
from testkit.factories import Person


@dataclass(frozen=True)
class DtsenRow:
    """What DTSEN says about a person (it may disagree with what they type)."""

    nik: str
    nama: str
    tanggal_lahir: date
    jenis_kelamin: str
    kode_wilayah: str
    desil: int


def row_of(person: Person, **changes: object) -> DtsenRow:
    """The DTSEN row of a synthetic person, optionally with some fields changed."""
    values: dict[str, object] = {
        "nik": person.nik,
        "nama": person.name,
        "tanggal_lahir": person.birth_date,
        "jenis_kelamin": person.gender,
        "kode_wilayah": person.kode_wilayah,
        "desil": person.desil,
    }
    values.update(changes)
    return DtsenRow(**values)  # type: ignore[arg-type]


async def seed_dtsen(database: Database, secret: bytes, rows: Iterable[DtsenRow]) -> None:
    """Put DTSEN rows straight into the live table (the import has its own tests)."""
    async with database.write() as session, session.begin():
        for row in rows:
            digest = identifier_digest(row.nik, secret)
            session.add(
                DtsenRecord(
                    nik_hash=digest,
                    nik_key=digest_key(digest),
                    nama=row.nama,
                    tanggal_lahir=row.tanggal_lahir,
                    jenis_kelamin=row.jenis_kelamin,
                    kode_wilayah=row.kode_wilayah,
                    desil=row.desil,
                )
            )


def make_application(
    person: Person,
    *,
    secret: bytes,
    user_id: int,
    code: str,
    status: str = "pending",
    desil: int | None = None,
    submitted_at: datetime | None = None,
    **fields: Any,
) -> Application:
    """A complete, submitted application of a synthetic person (status set directly)."""
    submitted = submitted_at or datetime.now(UTC)
    values: dict[str, Any] = {
        "code": code,
        "telegram_user_id": user_id,
        "chat_id": user_id,
        "status": status,
        "consent_version": "test",
        "consent_at": submitted,
        "nik": person.nik,
        "nik_hash": hash_identifier(person.nik, secret),
        "nama": person.name,
        "tanggal_lahir": person.birth_date,
        "jenis_kelamin": person.gender,
        "phone": person.phone,
        "occupation": "sopir",
        "kecamatan_code": person.kode_wilayah[:6],
        "kelurahan_code": person.kode_wilayah,
        "alamat": "Jl. Uji No. 1",
        "heir_name": "Siti Aminah",
        "heir_relation": "anak",
        "dtsen_desil": person.desil if desil is None else desil,
        "dtsen_kode_wilayah": person.kode_wilayah,
        "name_score": 1.0,
        "submitted_at": submitted,
        "created_at": submitted,
        "updated_at": submitted,
    }
    values.update(fields)
    return Application(**values)


async def add_applications(database: Database, *applications: Application) -> None:
    """Insert applications as they are (no workflow)."""
    async with database.write() as session, session.begin():
        session.add_all(applications)


async def add_application(
    database: Database,
    secret: bytes,
    person: Person,
    *,
    user_id: int,
    code: str,
    status: str = "pending",
    desil: int | None = None,
    submitted_at: datetime | None = None,
) -> int:
    """One submitted application written straight to the database; returns its id."""
    application = make_application(
        person,
        secret=secret,
        user_id=user_id,
        code=code,
        status=status,
        desil=desil,
        submitted_at=submitted_at,
    )
    await add_applications(database, application)
    assert application.id is not None
    return application.id
