"""What an assessment records from a DTSEN V3 row (the scale, the three desils, the KTP regency,
the work) and what the reviewer's card shows of it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from domain.lifecycle import Status
from domain.pii import digest_key, identifier_digest
from emulator import BotApiEmulator
from storage.engine import Database
from storage.models import DtsenRecord
from testkit.factories import Person, make_person
from testkit.harness import Harness
from tests.test_registration import applications_of, finish, give_identity, reach_nik

REVIEWER = 900002


async def seed_v3(
    database: Database,
    secret: bytes,
    person: Person,
    *,
    desil: int,
    provinsi: int | None = None,
    kabupaten_kota: int | None = None,
    ktp_regency: str | None = None,
    work: tuple[str | None, str | None, str | None] = (None, None, None),
    kode_wilayah: str | None = None,
) -> None:
    """One person's DTSEN row as a two-file (V3) import leaves it, written directly (the V3
    importer is built apart)."""
    digest = identifier_digest(person.nik, secret)
    async with database.write() as session, session.begin():
        session.add(
            DtsenRecord(
                nik_hash=digest,
                nik_key=digest_key(digest),
                nama=person.name,
                tanggal_lahir=person.birth_date,
                jenis_kelamin=person.gender,
                kode_wilayah=kode_wilayah or person.kode_wilayah,
                desil=desil,
                desil_provinsi=provinsi,
                desil_kabupaten_kota=kabupaten_kota,
                kode_kabupaten_kota_ktp=ktp_regency,
                status_bekerja=work[0],
                status_dalam_pekerjaan=work[1],
                lapangan_usaha=work[2],
            )
        )


@pytest.fixture
async def regency_harness(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> AsyncIterator[Harness]:
    """The bot with PROGRAM_DESIL_SCALE=kabupaten_kota."""
    h = Harness(
        emulator, tmp_path, database_url=database_url, program_desil_scale="kabupaten_kota"
    )
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


WORK = ("Bekerja", "Berusaha sendiri", "Transportasi dan pergudangan")


async def test_assessment_records_the_scale_the_three_desils_the_ktp_and_the_work(
    regency_harness: Harness,
) -> None:
    """On the regency scale, a family ranked 7 nationally but 2 in the city registers; the
    application keeps the value the rule used (2), its scale, all three rankings, the KTP
    regency and the work line."""
    harness = regency_harness
    person = make_person(1501)
    services = harness.services
    await seed_v3(
        services.database,
        services.secret,
        person,
        desil=7,
        provinsi=6,
        kabupaten_kota=2,
        ktp_regency="3201",
        work=WORK,
    )
    user = harness.user(150101)
    await reach_nik(user)
    await give_identity(user, person)
    await finish(user, person)
    [stored] = await applications_of(harness, 150101)
    assert stored.status == Status.PENDING
    assert (
        stored.dtsen_desil,
        stored.dtsen_desil_scale,
        stored.dtsen_desil_nasional,
        stored.dtsen_desil_provinsi,
        stored.dtsen_desil_kabupaten_kota,
        stored.dtsen_ktp_regency,
    ) == (2, "kabupaten_kota", 7, 6, 2, "3201")
    assert stored.dtsen_work == "Bekerja · Berusaha sendiri · Transportasi dan pergudangan"


async def test_one_file_row_on_the_regency_scale_is_judged_and_recorded_as_national(
    regency_harness: Harness,
) -> None:
    """A row without the regency ranking (a one-file extract): the national desil decides and
    the application records the scale "nasional", the other rankings empty."""
    harness = regency_harness
    person = make_person(1502)
    services = harness.services
    await seed_v3(services.database, services.secret, person, desil=3)
    user = harness.user(150102)
    await reach_nik(user)
    await give_identity(user, person)
    await finish(user, person)
    [stored] = await applications_of(harness, 150102)
    assert (
        stored.dtsen_desil,
        stored.dtsen_desil_scale,
        stored.dtsen_desil_nasional,
        stored.dtsen_desil_provinsi,
        stored.dtsen_desil_kabupaten_kota,
        stored.dtsen_ktp_regency,
        stored.dtsen_work,
    ) == (3, "nasional", 3, None, None, None, None)


async def test_card_shows_the_three_desils_the_ktp_flag_and_the_work(harness: Harness) -> None:
    """National 4, provincial 6, regency 8 and a KTP from Kabupaten Bogor (3201): the card reads
    "desil nasional 4 (provinsi 6, kab/kota 8)", flags the KTP and shows the work line."""
    person = make_person(1503)
    services = harness.services
    await seed_v3(
        services.database,
        services.secret,
        person,
        desil=4,
        provinsi=6,
        kabupaten_kota=8,
        ktp_regency="3201",
        work=WORK,
    )
    user = harness.user(150103)
    await reach_nik(user)
    await give_identity(user, person)
    code = await finish(user, person)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tinjau {code}")
    card = await reviewer.expect(re.escape(code))
    assert "desil nasional 4 (provinsi 6, kab/kota 8)" in card.text
    assert "KTP di luar kota (kode kab/kota 3201)" in card.text
    assert "Pekerjaan menurut DTSEN: Bekerja · Berusaha sendiri · Transportasi" in card.text


async def test_card_of_a_one_file_row_in_the_city_shows_one_desil_and_no_ktp_flag(
    harness: Harness,
) -> None:
    """A KTP of the city itself raises no flag; a row with only the national desil reads
    "desil nasional 3" and no work line."""
    person = make_person(1504)
    services = harness.services
    await seed_v3(services.database, services.secret, person, desil=3, ktp_regency="3275")
    user = harness.user(150104)
    await reach_nik(user)
    await give_identity(user, person)
    code = await finish(user, person)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tinjau {code}")
    card = await reviewer.expect(re.escape(code))
    assert "desil nasional 3 ·" in card.text
    assert "KTP di luar kota" not in card.text
    assert "Pekerjaan menurut DTSEN" not in card.text
