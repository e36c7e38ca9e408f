"""Fakes that are real: DTSEN rows in the test's own database, people from the factories."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from bot.pii import hash_identifier
from storage.engine import Database
from storage.models import DtsenRecord
from tests.factories import Person


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
            session.add(
                DtsenRecord(
                    nik_hash=hash_identifier(row.nik, secret),
                    nama=row.nama,
                    tanggal_lahir=row.tanggal_lahir,
                    jenis_kelamin=row.jenis_kelamin,
                    kode_wilayah=row.kode_wilayah,
                    desil=row.desil,
                )
            )
