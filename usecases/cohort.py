"""Last year's cohort: import and assess it (`rentan-bot import-cohort`), renew the still
eligible in bulk (/perpanjang), and list those who are not, with the reason."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from domain.budget import Budget
from domain.eligibility import Claim, ReasonCode, Rules, assess, decode_reasons
from domain.lifecycle import RENEWAL_STATUS, Status
from domain.pii import BlindIndex, mask_nik
from domain.regions import normalize_code
from storage.cohort import CohortRepository, RenewalResult
from storage.cohort_file import CohortRow, RowProblem, read_cohort
from storage.engine import Database
from storage.models import Application
from storage.review import ReviewRepository
from usecases.registration import assessment_values

# A concurrent registration (PostgreSQL) can take a NIK between the import's check and its
# insert: the transaction is rolled back whole and run again, which then counts that NIK.
IMPORT_ATTEMPTS = 3


@dataclass(frozen=True)
class CohortProblem:
    """A row counted apart: its line, the masked NIK and why."""

    line: int
    masked_nik: str
    problem: RowProblem


@dataclass(frozen=True)
class CohortReport:
    """What an import did."""

    year: int
    rows: int
    renewing: int  # still eligible: awaiting renewal
    not_eligible: int  # imported as ineligible, listed for staff with the reason
    reasons: Mapping[str, int]  # reason code -> people no longer eligible for it
    problems: tuple[CohortProblem, ...]  # NOT_IN_DTSEN rows are imported and also listed here

    @property
    def skipped(self) -> int:
        """Rows not imported at all."""
        return sum(1 for p in self.problems if p.problem is not RowProblem.NOT_IN_DTSEN)

    def counts(self) -> Counter[RowProblem]:
        """Problems by kind."""
        return Counter(problem.problem for problem in self.problems)


def _values(
    row: CohortRow,
    index: BlindIndex,
    record: Any,
    *,
    year: int,
    rules: Rules,
    today: date,
    now: datetime,
    code_prefix: str,
) -> dict[str, Any]:
    """The application of one participant, assessed as the registration assesses a worker."""
    assert row.nik is not None
    assert row.nama is not None
    # The file's birth date when it has one; otherwise DTSEN's (last year's list was drawn
    # from it), else the one inside the NIK: the age rule still applies to it.
    birth = row.tanggal_lahir or (record.tanggal_lahir if record else row.nik.birth_date)
    decision = assess(Claim(nik=row.nik, name=row.nama, birth_date=birth), record, rules, today)
    values = assessment_values(decision, record)
    status = RENEWAL_STATUS if decision.eligible else Status.INELIGIBLE
    region = normalize_code(record.kode_wilayah) if record else ""
    # Plain column values over a template: building 12.000 model objects took longer than
    # the rest of the import together.
    return {
        **_template(now),
        "code": code_prefix,  # replaced by a drawn number in the transaction
        "status": status,
        "nik": row.nik.digits,
        "nik_hash": index.hex,
        "nama": row.nama,
        "tanggal_lahir": birth,
        "jenis_kelamin": row.nik.gender,
        "phone": row.phone,
        "kpj_number": row.kpj,
        "kecamatan_code": region[:6] if len(region) == 10 else None,
        "kelurahan_code": region if len(region) == 10 else None,
        "cohort_year": year,
        "submitted_at": now if decision.eligible else None,
        **values,
    }


@functools.lru_cache(maxsize=4)
def _template(now: datetime) -> dict[str, Any]:
    """Every column of an application with its default, created and updated `now`."""
    return Application(created_at=now, updated_at=now).model_dump(exclude={"id"})


async def import_cohort(
    database: Database,
    source: Path | bytes,
    *,
    filename: str,
    column_map: Mapping[str, str],
    year: int,
    secret: bytes,
    rules: Rules,
    now: datetime,
    code_prefix: str,
) -> CohortReport:
    """Load last year's participants: each assessed against the DTSEN table in service and the
    rules, all stored in one transaction. Raises CohortFileError for a wrong file."""
    data = source if isinstance(source, bytes) else await asyncio.to_thread(source.read_bytes)
    today = now.date()
    rows = await asyncio.to_thread(
        read_cohort, data, filename=filename, column_map=column_map, today=today
    )
    problems = [
        CohortProblem(row.line, mask_nik(row.nik.digits if row.nik else row.nik_text), row.problem)
        for row in rows
        if row.problem is not None
    ]
    good = [row for row in rows if row.problem is None and row.nik is not None]
    indexes = [BlindIndex.of(row.nik.digits, secret) for row in good if row.nik is not None]
    repository = CohortRepository(database)
    dtsen = await repository.dtsen_rows(indexes)
    reason = f"cohort {year} file {Path(filename).name}"[:500]
    prepared = [
        (
            row,
            _values(
                row,
                index,
                dtsen.get(index.digest),
                year=year,
                rules=rules,
                today=today,
                now=now,
                code_prefix=code_prefix,
            ),
        )
        for row, index in zip(good, indexes, strict=True)
    ]
    for attempt in range(IMPORT_ATTEMPTS):
        try:
            stored = await repository.store(
                rows=[dict(values) for _row, values in prepared], year=year, reason=reason
            )
            break
        except IntegrityError:
            if attempt == IMPORT_ATTEMPTS - 1:
                raise
    held = {
        **dict.fromkeys(stored.kpj_taken, RowProblem.KPJ_TAKEN),
        **dict.fromkeys(stored.already_imported, RowProblem.ALREADY_IMPORTED),
        **dict.fromkeys(stored.already_registered, RowProblem.ALREADY_REGISTERED),
    }
    renewing = not_eligible = 0
    reasons: Counter[str] = Counter()
    for row, values in prepared:
        masked = mask_nik(values["nik"])
        if values["nik_hash"] in held:
            problems.append(CohortProblem(row.line, masked, held[values["nik_hash"]]))
            continue
        if values["status"] == RENEWAL_STATUS:
            renewing += 1
            continue
        not_eligible += 1
        codes = [r.code for r in decode_reasons(values["eligibility_reasons"]) if r.blocking]
        reasons.update(str(code) for code in codes)
        if ReasonCode.NOT_IN_DTSEN in codes:
            problems.append(CohortProblem(row.line, masked, RowProblem.NOT_IN_DTSEN))
    problems.sort(key=lambda problem: problem.line)
    return CohortReport(
        year=year,
        rows=len(rows),
        renewing=renewing,
        not_eligible=not_eligible,
        reasons=dict(reasons),
        problems=tuple(problems),
    )


# --- renewal (/perpanjang) -----------------------------------------------------------------------


@dataclass(frozen=True)
class RenewalOverview:
    """What /perpanjang shows before the admin confirms."""

    waiting: int
    places_free: int
    not_renewable: int
    not_renewable_shown: tuple[Application, ...]


async def renewal_overview(
    database: Database, review: ReviewRepository, *, budget: Budget, today: date, shown: int
) -> RenewalOverview:
    """Renewals waiting, places free (what the money left buys), and the cohort members no
    longer eligible."""
    repository = CohortRepository(database)
    total, listed = await repository.not_renewable(limit=shown)
    ledger = (await review.ledger(budget=budget)).ledger
    return RenewalOverview(
        waiting=await repository.waiting(),
        places_free=ledger.available(today),
        not_renewable=total,
        not_renewable_shown=tuple(listed),
    )


async def renew_all(
    database: Database,
    *,
    actor_id: int,
    budget: Budget,
    today: date,
    expected: int,
    update_id: int,
) -> RenewalResult:
    """Approve the waiting renewals that fit the money left and the headcount, after the admin
    confirmed `expected` of them."""
    return await CohortRepository(database).renew(
        actor_id=actor_id, budget=budget, today=today, expected=expected, update_id=update_id
    )
