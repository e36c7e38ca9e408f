"""Enrolment from BPJS Ketenagakerjaan's answer: a CSV/XLSX of NIK, KPJ number and cover start.

Each good row moves an approved application to `enrolled`, with an audit event and a notification
for the worker (the outbox row; the sender delivers it). Bad rows are reported with their line
and a masked NIK, never applied. Running the same file twice applies nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from domain.dates import InvalidDate, parse_date
from domain.i18n import N_
from domain.lifecycle import LIVE_STATUSES, Status
from domain.nik import clean_nik_digits
from domain.pii import hash_identifier, mask_nik
from domain.reports import STATUS_LABELS
from storage.engine import Database
from storage.models import Application, AuditEvent, Notification, utcnow
from storage.spreadsheets import (
    Sheet,
    SpreadsheetError,
    TooLargeUnpacked,
    TooManyRows,
    cell_text,
    normalise_header,
    open_xlsx,
    read_csv,
)

Translate = Callable[[str], str]

# Header spellings, compared after `normalise_header` (case, spaces, dots and dashes ignored).
NIK_HEADERS = ("nik",)
KPJ_HEADERS = ("kpj", "no_kpj", "nomor_kpj")
START_HEADERS = ("tgl_mulai", "mulai", "coverage_start", "tanggal_kepesertaan")
KPJ_DIGITS = 11
# Applications per write transaction: short enough that reviewers' clicks wait milliseconds,
# long enough that 10,000 rows take a couple of dozen transactions.
BATCH_ROWS = 500
# A cover start further than this from today is a column mix-up (a birth date) or a typo; BPJS
# usually starts cover on the first of next month.
COVERAGE_WINDOW = timedelta(days=366)
# Defaults of KPJ_MAX_ROWS and KPJ_MAX_UNCOMPRESSED_MB: BPJS answers in batches of thousands,
# and a file past these is a mistake or a zip bomb (memory and minutes of CPU in the bot).
MAX_ROWS = 100_000
MAX_UNCOMPRESSED_BYTES = 50 * 1024 * 1024
# A batch that lost a race for a KPJ number (the unique index) is read and applied again.
BATCH_ATTEMPTS = 3
NOTIFICATION_KIND = "enrolled"
AUDIT_ACTION = "enroll"


class ProblemReason(StrEnum):
    """Why a row of the file was not applied."""

    BAD_NIK = "bad_nik"
    DUPLICATE_NIK = "duplicate_nik"
    BAD_KPJ = "bad_kpj"
    DUPLICATE_KPJ = "duplicate_kpj"
    BAD_DATE = "bad_date"
    UNKNOWN_NIK = "unknown_nik"
    NOT_APPROVED = "not_approved"
    ALREADY_ENROLLED = "already_enrolled"
    KPJ_TAKEN = "kpj_taken"


PROBLEM_MESSAGES: dict[ProblemReason, str] = {
    ProblemReason.BAD_NIK: N_("NIK is not 16 digits"),
    ProblemReason.DUPLICATE_NIK: N_(
        "NIK appears more than once in the file; none of its rows was applied"
    ),
    ProblemReason.BAD_KPJ: N_("KPJ number is not 11 digits"),
    ProblemReason.DUPLICATE_KPJ: N_(
        "KPJ number appears more than once in the file; none of its rows was applied"
    ),
    ProblemReason.BAD_DATE: N_(
        "coverage start date is missing, unreadable or more than a year away from today"
    ),
    ProblemReason.UNKNOWN_NIK: N_("no application with this NIK"),
    ProblemReason.NOT_APPROVED: N_("application is not approved (status: {status})"),
    ProblemReason.ALREADY_ENROLLED: N_("already enrolled"),
    ProblemReason.KPJ_TAKEN: N_("KPJ number already belongs to another enrolled worker"),
}

UNSUPPORTED_FILE = N_("Only .csv and .xlsx files can be imported.")
UNREADABLE_FILE = N_("The file could not be read as {kind}.")
MISSING_COLUMNS = N_(
    "Missing column(s): {missing}. The first row must name the columns NIK, KPJ and the "
    "coverage start date (tgl_mulai)."
)
NO_ROWS = N_("The file has no data rows.")
TOO_MANY_ROWS = N_(
    "The file has more than {limit} rows, so it was not read. Split it into smaller files "
    "and send them one by one."
)
TOO_LARGE_UNPACKED = N_(
    "The file unpacks to more than {limit} MB, so it was not read. Send the KPJ list only "
    "(NIK, KPJ, tgl_mulai), or split it into smaller files."
)
IMPORT_SUMMARY = N_("{applied} of {rows} rows applied; {problems} not applied.")
LINE = N_("Line")
REASON = N_("Reason")


class KpjFileError(Exception):
    """The whole file was refused (type, encoding, header); nothing was applied."""

    def __init__(self, template: str, **params: str) -> None:
        super().__init__(template.format(**params))
        self.template = template
        self.params = params

    def message(self, translate: Translate) -> str:
        """The reason in the reader's language."""
        return translate(self.template).format(**self.params)


@dataclass(frozen=True)
class Problem:
    """One row that was not applied: where, why, and whose (masked) NIK."""

    line: int
    reason: ProblemReason
    masked_nik: str
    status: str | None = None  # the application's status, for NOT_APPROVED

    def message(self, translate: Translate) -> str:
        """Why, in the reader's language."""
        status = self.status or ""
        label = translate(STATUS_LABELS[status]) if status in STATUS_LABELS else status
        return translate(PROBLEM_MESSAGES[self.reason]).format(status=label)


@dataclass(frozen=True)
class EnrollmentReport:
    """What an import did: data rows read, applications enrolled, rows not applied."""

    rows: int
    applied: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Every row was applied."""
        return not self.problems


# --- Reading the file -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """A data row, checked on its own; `problem` is set when it cannot be applied."""

    line: int
    nik: str
    kpj: str
    start: date | None
    problem: ProblemReason | None


def _cell_text(value: object) -> str:
    return cell_text(value).strip()


def kpj_digits(value: object) -> str:
    """A KPJ cell as its digits: BPJS files group them with spaces, dots or dashes."""
    return re.sub(r"[\s.\-]", "", cell_text(value))


def is_kpj(text: str) -> bool:
    """Whether `text` (from `kpj_digits`) is a KPJ number: 11 ASCII digits."""
    return len(text) == KPJ_DIGITS and text.isascii() and text.isdigit()


def _open_sheet(
    data: bytes, kind: str, max_rows: int, max_uncompressed_bytes: int
) -> contextlib.AbstractContextManager[Sheet]:
    if kind == "CSV":
        # Excel's "CSV" (not "CSV UTF-8") saves in the Windows ANSI code page; a KPJ file holds
        # digits and dates, so reading it as such cannot garble what is applied.
        return contextlib.nullcontext(read_csv(data, max_rows=max_rows, ansi_fallback=True))
    return open_xlsx(data, max_rows=max_rows, max_uncompressed_bytes=max_uncompressed_bytes)


def read_columns(
    data: bytes,
    *,
    filename: str,
    columns: Sequence[tuple[str, Sequence[str]]],
    missing_message: str,
    max_rows: int = MAX_ROWS,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
) -> list[tuple[int, list[object]]]:
    """The data rows of a file from BPJS (the KPJ list, the member list), each as its line and
    the cells of `columns` in their order (None past a short row's end).

    `columns` are (label, header spellings) pairs; a column none of whose spellings the header
    holds is named by its label in `missing_message` ({missing}). Raises `KpjFileError` for a
    file that cannot be used at all: not CSV or XLSX, unreadable, over `max_rows` data rows or
    (XLSX) over `max_uncompressed_bytes` unpacked, a column missing, no data rows.
    """
    suffix = Path(filename).suffix.casefold()
    if suffix == ".csv":
        kind = "CSV"
    elif suffix in (".xlsx", ".xlsm"):
        kind = "XLSX"
    else:
        raise KpjFileError(UNSUPPORTED_FILE)
    try:
        with _open_sheet(data, kind, max_rows, max_uncompressed_bytes) as sheet:
            header = sheet.header
            rows = list(sheet.rows)
    except TooManyRows:
        raise KpjFileError(TOO_MANY_ROWS, limit=str(max_rows)) from None
    except TooLargeUnpacked:
        limit = str(max_uncompressed_bytes // (1024 * 1024))
        raise KpjFileError(TOO_LARGE_UNPACKED, limit=limit) from None
    except SpreadsheetError as error:
        raise KpjFileError(UNREADABLE_FILE, kind=kind) from error
    if not header:
        raise KpjFileError(NO_ROWS)
    keys = [normalise_header(cell) for cell in header]
    positions = [
        next((keys.index(name) for name in names if name in keys), None)
        for _label, names in columns
    ]
    missing = [
        label
        for (label, _names), position in zip(columns, positions, strict=True)
        if position is None
    ]
    if missing:
        raise KpjFileError(missing_message, missing=", ".join(missing))
    if not rows:
        raise KpjFileError(NO_ROWS)
    found = [position for position in positions if position is not None]
    return [
        (line, [cells[position] if position < len(cells) else None for position in found])
        for line, cells in rows
    ]


def _coverage_start(value: object, today: date) -> date | None:
    if isinstance(value, datetime):
        start = value.date()
    elif isinstance(value, date):
        start = value
    else:
        text = _cell_text(value)
        # "2026-12-01 00:00:00", as spreadsheets export date cells to CSV.
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[ T][0-9:.]+", text):
            text = text[:10]
        try:
            # parse_date refuses future dates (it reads birth dates); a cover start may lie
            # ahead, so "today" is moved to the end of the window.
            start = parse_date(text, today=today + COVERAGE_WINDOW)
        except InvalidDate:
            return None
    if abs(start - today) > COVERAGE_WINDOW:
        return None
    return start


def _read_entries(
    data: bytes,
    *,
    filename: str,
    today: date,
    max_rows: int = MAX_ROWS,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
) -> list[_Entry]:
    """Every data row of a KPJ file, each checked on its own and against the others.

    Raises `KpjFileError` for a file over `max_rows` data rows or (XLSX) over
    `max_uncompressed_bytes` unpacked, before reading further.
    """
    rows = read_columns(
        data,
        filename=filename,
        columns=(("NIK", NIK_HEADERS), ("KPJ", KPJ_HEADERS), ("tgl_mulai", START_HEADERS)),
        missing_message=MISSING_COLUMNS,
        max_rows=max_rows,
        max_uncompressed_bytes=max_uncompressed_bytes,
    )
    parsed: list[tuple[int, str, str, date | None]] = []
    for line, (nik_cell, kpj_cell, start_cell) in rows:
        nik = clean_nik_digits(_cell_text(nik_cell))
        parsed.append((line, nik, kpj_digits(kpj_cell), _coverage_start(start_cell, today)))
    nik_counts = Counter(nik for _line, nik, _kpj, _start in parsed)
    kpj_counts = Counter(kpj for _line, _nik, kpj, _start in parsed)

    entries = []
    for line, nik, kpj, start in parsed:
        problem: ProblemReason | None = None
        if not (len(nik) == 16 and nik.isascii() and nik.isdigit()):
            problem = ProblemReason.BAD_NIK
        elif nik_counts[nik] > 1:
            problem = ProblemReason.DUPLICATE_NIK
        elif not is_kpj(kpj):
            problem = ProblemReason.BAD_KPJ
        elif kpj_counts[kpj] > 1:
            problem = ProblemReason.DUPLICATE_KPJ
        elif start is None:
            problem = ProblemReason.BAD_DATE
        entries.append(_Entry(line, nik, kpj, start, problem))
    return entries


# --- Applying it ------------------------------------------------------------------------------


def _problem(entry: _Entry, reason: ProblemReason, status: str | None = None) -> Problem:
    return Problem(entry.line, reason, mask_nik(entry.nik), status)


async def _apply_batch(
    database: Database,
    batch: Sequence[_Entry],
    *,
    secret: bytes,
    actor_id: int | None,
    reason: str,
) -> tuple[int, list[Problem]]:
    """Enrol one batch in one transaction; the rows that cannot be applied come back."""
    by_hash = {hash_identifier(entry.nik, secret): entry for entry in batch}
    problems: list[Problem] = []
    async with database.write() as session, session.begin():
        # Live applications first: the partial unique index on nik_hash answers this. FOR UPDATE
        # holds them on PostgreSQL until the commit (SQLite's BEGIN IMMEDIATE already does).
        live = await session.execute(
            select(
                col(Application.id),
                col(Application.nik_hash),
                col(Application.status),
                col(Application.chat_id),
            )
            .where(col(Application.nik_hash).in_(by_hash), _live_clause())
            .with_for_update()
        )
        found: dict[str, tuple[int, str, int]] = {
            row.nik_hash: (row.id, row.status, row.chat_id) for row in live
        }
        unmatched = [h for h in by_hash if h not in found]
        closed: dict[str, str] = {}
        if unmatched:
            # Only closed applications (rejected, withdrawn...) are left to tell apart from
            # strangers; the newest one of each NIK says what happened.
            rows = await session.execute(
                select(col(Application.nik_hash), col(Application.status))
                .where(col(Application.nik_hash).in_(unmatched))
                .order_by(col(Application.id))
            )
            closed = {row.nik_hash: row.status for row in rows}

        approved: list[tuple[_Entry, int, int]] = []
        for nik_hash, entry in by_hash.items():
            if nik_hash in found:
                application_id, status, chat_id = found[nik_hash]
                if status == Status.APPROVED:
                    approved.append((entry, application_id, chat_id))
                elif status == Status.ENROLLED:
                    problems.append(_problem(entry, ProblemReason.ALREADY_ENROLLED))
                else:
                    problems.append(_problem(entry, ProblemReason.NOT_APPROVED, status))
            elif nik_hash in closed:
                problems.append(_problem(entry, ProblemReason.NOT_APPROVED, closed[nik_hash]))
            else:
                problems.append(_problem(entry, ProblemReason.UNKNOWN_NIK))

        if approved:
            # Any application holding the number counts (a withdrawn enrolment keeps it): the
            # unique index on kpj_number answers this and refuses a second holder anyway.
            taken_rows = await session.execute(
                select(col(Application.kpj_number)).where(
                    col(Application.kpj_number).in_([entry.kpj for entry, _id, _chat in approved]),
                )
            )
            taken = {kpj for (kpj,) in taken_rows}
            problems += [
                _problem(entry, ProblemReason.KPJ_TAKEN)
                for entry, _id, _chat in approved
                if entry.kpj in taken
            ]
            approved = [item for item in approved if item[0].kpj not in taken]

        if approved:
            now = utcnow()
            await session.execute(
                update(Application),
                [
                    {
                        "id": application_id,
                        "status": Status.ENROLLED,
                        "kpj_number": entry.kpj,
                        "coverage_start": entry.start,
                        "updated_at": now,
                    }
                    for entry, application_id, _chat in approved
                ],
            )
            # Bulk inserts skip the models' default factories, so every column is given.
            await session.execute(
                insert(AuditEvent),
                [
                    {
                        "at": now,
                        "actor_id": actor_id,
                        "action": AUDIT_ACTION,
                        "application_id": application_id,
                        "from_status": Status.APPROVED,
                        "to_status": Status.ENROLLED,
                        "reason": reason,
                    }
                    for _entry, application_id, _chat in approved
                ],
            )
            # Workers an operator registered who have not taken over on Telegram have no chat.
            notices = [
                {
                    "application_id": application_id,
                    "chat_id": chat_id,
                    "kind": NOTIFICATION_KIND,
                    "created_at": now,
                    "attempts": 0,
                }
                for _entry, application_id, chat_id in approved
                if chat_id is not None
            ]
            if notices:
                await session.execute(insert(Notification), notices)
    return len(approved), problems


def _live_clause() -> sa.TextClause:
    # Spelled as literals, exactly like the partial index's WHERE: SQLite only uses a partial
    # index when the query repeats its condition, and cannot see through bound parameters.
    return sa.text("status IN (" + ", ".join(f"'{status}'" for status in LIVE_STATUSES) + ")")


async def import_kpj(
    database: Database,
    source: Path | bytes,
    *,
    filename: str,
    secret: bytes,
    actor_id: int | None,
    today: date,
    max_rows: int = MAX_ROWS,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES,
) -> EnrollmentReport:
    """Enrol the approved applications a BPJS KPJ file names; report every row not applied.

    Raises `KpjFileError` when the file as a whole cannot be used (nothing is applied then),
    among others when it is over `max_rows` rows or unpacks to over `max_uncompressed_bytes`.
    """
    data = source if isinstance(source, bytes) else await asyncio.to_thread(source.read_bytes)
    # Parsing a 10,000-row XLSX takes about a second: off the event loop, so the bot keeps
    # answering workers meanwhile.
    entries = await asyncio.to_thread(
        _read_entries,
        data,
        filename=filename,
        today=today,
        max_rows=max_rows,
        max_uncompressed_bytes=max_uncompressed_bytes,
    )
    problems = [_problem(e, e.problem) for e in entries if e.problem is not None]
    good = [entry for entry in entries if entry.problem is None]
    reason = f"KPJ file {Path(filename).name}"[:500]
    applied = 0
    for start in range(0, len(good), BATCH_ROWS):
        for attempt in range(BATCH_ATTEMPTS):
            try:
                done, batch_problems = await _apply_batch(
                    database,
                    good[start : start + BATCH_ROWS],
                    secret=secret,
                    actor_id=actor_id,
                    reason=reason,
                )
                break
            except IntegrityError:
                # Another import gave one of these KPJ numbers away after this batch looked
                # (PostgreSQL; SQLite writes one at a time). The batch was rolled back whole;
                # read again, that number is now reported as taken.
                if attempt == BATCH_ATTEMPTS - 1:
                    raise
        applied += done
        problems += batch_problems
    problems.sort(key=lambda problem: problem.line)
    return EnrollmentReport(rows=len(entries), applied=applied, problems=tuple(problems))
