"""Statistics for staff: counts from the database, the Telegram text, the PNG chart, `stats`."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, date, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from config.catalogs import Catalogs
from domain.budget import Budget
from domain.lifecycle import Status
from domain.pii import hash_identifier
from domain.regions import load_regions
from domain.reports import Statistics, format_idr, format_number, format_statistics, render_chart
from storage.engine import Database
from storage.migrate import upgrade
from storage.models import Application
from storage.reports import ReportRepository
from testkit.factories import make_person
from testkit.fakes import add_applications
from testkit.harness import TEST_PII_SECRET

SECRET = TEST_PII_SECRET.encode()
NOW = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 12:00 WIB
PREMIUM = 16_800  # a month
YEARLY = 12 * PREMIUM
BUDGET = 2_000_000_000
QUOTA = 9_920
# The default programme: 10.000 people, Rp2 miliar, cover from January to December 2026.
PROGRAMME = Budget(
    quota=10_000,
    budget_idr=BUDGET,
    monthly_premium_idr=PREMIUM,
    start=date(2026, 1, 1),
    end=date(2026, 12, 1),
)
_seeds = count(1)


def application(status: Status, **fields: Any) -> Application:
    """A submitted application of a fresh synthetic person, in `status`."""
    seed = next(_seeds)
    person = make_person(seed)
    values: dict[str, Any] = {
        "telegram_user_id": 500_000 + seed,
        "chat_id": 500_000 + seed,
        "status": status,
        "code": f"BKS-T{seed:05d}",
        "nik": person.nik,
        "nik_hash": hash_identifier(person.nik, SECRET),
        "nama": person.name,
        "tanggal_lahir": person.birth_date,
        "jenis_kelamin": person.gender,
        "phone": person.phone,
        "occupation": "ojol",
        "kecamatan_code": person.kode_wilayah[:6],
        "kelurahan_code": person.kode_wilayah,
        "alamat": f"Jl. Melati No. {seed}",
        "heir_name": "Siti Rahayu",
        "heir_relation": "pasangan",
        "dtsen_desil": person.desil,
        "submitted_at": NOW - timedelta(hours=1),
    }
    values.update(fields)
    return Application(**values)


async def add(database: Database, *applications: Application) -> None:
    """Insert applications as they are."""
    await add_applications(database, *applications)


async def statistics(database: Database, **kwargs: Any) -> Statistics:
    """The repository's statistics with the programme's money and a fixed clock."""
    values: dict[str, Any] = {
        "budget": PROGRAMME,
        "now": NOW,
    }
    values.update(kwargs)
    return await ReportRepository(database).statistics(**values)


def sample_statistics(**changes: Any) -> Statistics:
    """Statistics as staff would see them mid-programme."""
    values: dict[str, Any] = {
        "by_status": {status.value: 0 for status in Status}
        | {"pending": 1_234, "approved": 8_000, "enrolled": 1_000},
        "by_occupation": {"ojol": 5_000, "pemulung": 4_000, "lainnya": 1_234},
        "by_kecamatan": {"327501": 6_000, "327502": 4_234},
        "by_desil": {1: 3_000, 2: 7_000, None: 234},
        "per_day": tuple((date(2026, 11, 12) + timedelta(days=n), n * 10) for n in range(14)),
        "quota_used": 9_000,
        "effective_quota": QUOTA,
        "budget_committed_idr": 9_000 * YEARLY,
        "budget_idr": BUDGET,
        "premium_idr": PREMIUM,
        "generated_at": NOW,
    }
    values.update(changes)
    return Statistics(**values)


async def test_statistics_count_every_status_and_break_down_live_applications(
    database: Database,
) -> None:
    """Totals cover every status; occupation, kecamatan and desil count live ones only."""
    await add(
        database,
        application(Status.PENDING, occupation="ojol", kecamatan_code="327501", dtsen_desil=1),
        application(Status.PENDING, occupation="sopir", kecamatan_code="327501", dtsen_desil=2),
        application(Status.APPROVED, occupation="ojol", kecamatan_code="327502", dtsen_desil=1),
        application(
            Status.ENROLLED, occupation="pemulung", kecamatan_code="327503", dtsen_desil=3
        ),
        application(
            Status.WAITLISTED, occupation="ojol", kecamatan_code="327503", dtsen_desil=None
        ),
        application(Status.REJECTED, occupation="sopir", kecamatan_code="327501", dtsen_desil=1),
        application(Status.INELIGIBLE, occupation="ojol", kecamatan_code="327504"),
        application(Status.DRAFT, occupation=None, kecamatan_code=None, submitted_at=None),
    )
    stats = await statistics(database)

    assert list(stats.by_status) == [status.value for status in Status]
    assert dict(stats.by_status) == {
        "draft": 1,
        "ineligible": 1,
        "pending": 2,
        "needs_fix": 0,
        "approved": 1,
        "waitlisted": 1,
        "rejected": 1,
        "enrolled": 1,
        "withdrawn": 0,
        "cancelled": 0,
        "lapsed": 0,
    }
    assert dict(stats.by_occupation) == {"ojol": 3, "sopir": 1, "pemulung": 1}
    assert dict(stats.by_kecamatan) == {"327501": 2, "327502": 1, "327503": 2}
    assert stats.live == 5
    assert dict(stats.by_desil) == {1: 2, 2: 1, 3: 1, None: 1}


async def test_quota_used_and_budget_committed_come_from_approved_and_enrolled(
    database: Database,
) -> None:
    """Approved plus enrolled is the quota used; each (approved before the year) costs twelve
    monthly premiums; late in November a new place costs only December, so the headcount
    limits the quota."""
    await add(
        database,
        *(application(Status.APPROVED) for _ in range(3)),
        *(application(Status.ENROLLED) for _ in range(2)),
        application(Status.PENDING),
        application(Status.WAITLISTED),
    )
    stats = await statistics(database)

    assert stats.quota_used == 5
    assert stats.budget_committed_idr == 5 * YEARLY
    assert (stats.effective_quota, stats.budget_idr, stats.premium_idr) == (
        10_000,
        BUDGET,
        PREMIUM,
    )


async def test_submissions_are_counted_per_wib_day_over_the_last_days(
    database: Database,
) -> None:
    """A 20:00 UTC submission belongs to the next WIB day; older ones fall outside the window."""
    await add(
        database,
        # 25 Nov 03:00 WIB and 11:00 WIB
        application(Status.PENDING, submitted_at=datetime(2026, 11, 24, 20, 0, tzinfo=UTC)),
        application(Status.APPROVED, submitted_at=datetime(2026, 11, 25, 4, 0, tzinfo=UTC)),
        # 24 Nov 23:00 WIB
        application(Status.REJECTED, submitted_at=datetime(2026, 11, 24, 16, 0, tzinfo=UTC)),
        # 19 Nov: first day of a 7-day window
        application(Status.PENDING, submitted_at=datetime(2026, 11, 18, 17, 0, tzinfo=UTC)),
        # 18 Nov 23:59 WIB: one day too old
        application(Status.PENDING, submitted_at=datetime(2026, 11, 18, 16, 59, tzinfo=UTC)),
        application(Status.DRAFT, submitted_at=None),
    )
    stats = await statistics(database, days=7)

    assert [date(2026, 11, 19) + timedelta(days=n) for n in range(7)] == [
        day for day, _ in stats.per_day
    ]
    per_day = dict(stats.per_day)
    assert per_day[date(2026, 11, 25)] == 2
    assert per_day[date(2026, 11, 24)] == 1
    assert per_day[date(2026, 11, 19)] == 1
    assert sum(per_day.values()) == 4


async def test_empty_database_gives_zeros_for_every_status_and_day(database: Database) -> None:
    """A new programme shows zeros, not missing keys."""
    stats = await statistics(database)

    assert set(stats.by_status.values()) == {0}
    assert len(stats.by_status) == len(Status)
    assert len(stats.per_day) == 14
    assert {count for _day, count in stats.per_day} == {0}
    assert (stats.quota_used, stats.budget_committed_idr, stats.live) == (0, 0, 0)


def test_numbers_use_indonesian_thousand_dots() -> None:
    """Rp2.000.000.000 and 9.920, the way staff write them."""
    assert format_idr(2_000_000_000) == "Rp2.000.000.000"
    assert format_number(9_920) == "9.920"
    assert format_number(12) == "12"


def test_text_shows_quota_used_against_quota_and_budget_against_budget() -> None:
    """The two lines staff look for first, with Indonesian numbers."""
    text = format_statistics(sample_statistics(), lambda message: message, load_regions())

    assert "Quota used: 9.000 / 9.920" in text
    assert "Budget committed: Rp1.814.400.000 / Rp2.000.000.000" in text
    assert "Rp16.800" in text
    assert "Bekasi Timur: 6.000" in text
    assert "25-11-2026 12:00 WIB" in text
    assert "Pending: 1.234" in text
    assert "Desil 2: 7.000" in text


def test_text_passes_every_label_through_the_translator() -> None:
    """Labels come from the catalog, so the lead's Bahasa translations show up."""
    text = format_statistics(sample_statistics(), lambda message: f"«{message}»", load_regions())

    assert "«Programme statistics»" in text
    assert "«Pending»" in text
    assert "«Online motorcycle taxi (ojol)»" in text
    assert "«Live applications by kecamatan»" in text


def test_text_in_bahasa_uses_the_indonesian_catalog() -> None:
    """With the `id` catalog the occupation labels read in Bahasa."""
    translate = Catalogs().get("id")._
    text = format_statistics(sample_statistics(), translate, load_regions())

    assert "Ojek online" in text


def test_text_fits_one_telegram_message_even_with_every_kecamatan_of_indonesia() -> None:
    """Thousands of kecamatan and a year of days still give at most 4096 characters."""
    regions = load_regions()
    every_kecamatan = {
        district.code: 1_000 + n
        for n, district in enumerate(
            district
            for province in sorted(regions.province_codes)
            for regency in regions.regencies_of(province)
            for district in regions.kecamatan_of(regency.code)
        )
    }
    assert len(every_kecamatan) > 7_000
    year = tuple((date(2025, 11, 26) + timedelta(days=n), 100_000 + n) for n in range(365))
    occupations = {f"unknown_code_{n}": n + 1 for n in range(500)}
    stats = sample_statistics(
        by_kecamatan=every_kecamatan, per_day=year, by_occupation=occupations
    )

    text = format_statistics(stats, lambda message: message * 3, regions)

    assert len(text) <= 4096
    assert text.count("<b>") == text.count("</b>")


def test_chart_is_a_png_that_matplotlib_reads_back() -> None:
    """Bytes with the PNG signature that decode into a picture of a sensible size."""
    from matplotlib.image import imread

    png = render_chart(sample_statistics(), lambda message: message, load_regions())

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = imread(io.BytesIO(png), format="png")
    height, width = pixels.shape[:2]
    assert width >= 600
    assert height >= 600


def test_chart_of_an_empty_programme_still_renders() -> None:
    """No applications yet is a picture too, not an error."""
    empty = sample_statistics(
        by_status={status.value: 0 for status in Status},
        by_occupation={},
        by_kecamatan={},
        by_desil={},
        per_day=tuple((date(2026, 11, 12) + timedelta(days=n), 0) for n in range(14)),
        quota_used=0,
        budget_committed_idr=0,
    )

    assert render_chart(empty, lambda message: message, load_regions()).startswith(b"\x89PNG")


def test_stats_command_prints_the_tables_in_bahasa(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rentan-bot stats` reads the database and prints quota, budget and breakdowns."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def seed() -> None:
        db = Database.from_url(url)
        try:
            await upgrade(db)
            await add(db, application(Status.APPROVED), application(Status.PENDING))
        finally:
            await db.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PII_SECRET", TEST_PII_SECRET)
    # A programme year ahead of the wall clock: every month of it is still to buy.
    monkeypatch.setenv("PROGRAM_YEAR", str(date.today().year + 1))

    assert cli.main(["stats", "--days", "3"]) == 0
    out = capsys.readouterr().out
    assert "1 / 9.920" in out
    assert "Rp201.600 / Rp2.000.000.000" in out
    assert "Sisa" in out or "sisa" in out
    assert "Ojek online" in out
