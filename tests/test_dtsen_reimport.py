"""A DTSEN re-import while workers register: each assessment sees the old table or the new one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from emulator import EmulatedUser
from storage.dtsen import import_dtsen
from storage.models import Application
from testkit.factories import Person, make_people
from testkit.harness import Harness
from tests.test_dtsen_import import row_of, write_csv
from tests.test_registration import give_identity, reach_nik

WORKERS = 12
# Rows besides the workers', so an import takes long enough to overlap the registrations.
PADDING = 1_000
# Set A and set B hold the same people with a different desil and kelurahan.
DESIL_A, DESIL_B = 1, 2


def _village_b(person: Person, other: Person) -> str:
    """A kelurahan of the city other than the person's own, for set B."""
    return other.kode_wilayah if other.kode_wilayah != person.kode_wilayah else "3275011001"


def _write_sets(
    tmp_path: Path, workers: list[Person], padding: list[Person]
) -> tuple[Path, Path, dict[str, tuple[tuple[int, str], tuple[int, str]]]]:
    """Files A and B, and per worker NIK the (desil, kode_wilayah) of each."""
    expected: dict[str, tuple[tuple[int, str], tuple[int, str]]] = {}
    lines_a, lines_b = [], []
    for index, person in enumerate(workers):
        village_b = _village_b(person, workers[(index + 1) % len(workers)])
        expected[person.nik] = ((DESIL_A, person.kode_wilayah), (DESIL_B, village_b))
        lines_a.append(row_of(person, desil=str(DESIL_A)))
        lines_b.append(row_of(person, desil=str(DESIL_B), kode_wilayah=village_b))
    extra = [row_of(p) for p in padding]
    source_a = write_csv(tmp_path / "dtsen_a.csv", lines_a + extra)
    source_b = write_csv(tmp_path / "dtsen_b.csv", extra + lines_b)
    return source_a, source_b, expected


async def test_assessments_during_repeated_reimports_see_one_whole_table(
    harness: Harness, tmp_path: Path
) -> None:
    """Imports alternate between files A and B while workers give NIK, name and birth date: each
    stored assessment is A's or B's (never a mix), and nobody present in both is 'not found'."""
    people = make_people(WORKERS + PADDING, seed=4242)
    workers, padding = people[:WORKERS], people[WORKERS:]
    source_a, source_b, expected = _write_sets(tmp_path, workers, padding)
    services = harness.services
    today = services.clock().date()

    async def load(source: Path) -> None:
        await import_dtsen(services.database, source, secret=services.secret, today=today)

    await load(source_a)
    registering = True
    imports = 0

    async def keep_importing() -> None:
        nonlocal imports
        sources = [source_b, source_a]
        while registering or imports == 0:
            await load(sources[imports % 2])
            imports += 1

    async def register(index: int, person: Person) -> None:
        user: EmulatedUser = harness.user(990000 + index)
        await reach_nik(user)
        await give_identity(user, person)
        # Eligible in both files: the next question, never the neutral refusal.
        await user.expect(r"\(4/9\)", timeout=20)

    importer = asyncio.create_task(keep_importing())
    try:
        await asyncio.gather(*(register(i, p) for i, p in enumerate(workers)))
    finally:
        registering = False
        await importer
    assert imports >= 1

    async with services.database.read() as session:
        rows = (
            await session.execute(
                sa.select(Application.nik, Application.dtsen_desil, Application.dtsen_kode_wilayah)
            )
        ).all()
    assert len(rows) == WORKERS
    for nik, desil, village in rows:
        assert (desil, village) in expected[nik], f"a mixed or missing DTSEN record for {nik}"
