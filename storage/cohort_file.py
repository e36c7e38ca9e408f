"""Last year's participants as a file (`rentan-bot import-cohort`): CSV or XLSX with at least NIK
and name, and KPJ, phone and birth date when present; read through the shared spreadsheet
reader, header names matched as the other imports match them, `--map FIELD=COLUMN` for others.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

from domain.dates import InvalidDate, parse_date
from domain.names import parse_name
from domain.nik import InvalidNik, Nik, parse_nik
from domain.parsing import ParseError
from domain.phones import parse_phone
from storage.spreadsheets import (
    Sheet,
    SpreadsheetError,
    TooLargeUnpacked,
    TooManyRows,
    cell_text,
    normalise_header,
    open_xlsx,
    parse_field_map,
    read_csv,
)

# Header spellings per field, compared after `normalise_header`; --map names any other.
HEADERS: Mapping[str, tuple[str, ...]] = {
    "nik": ("nik", "nik_art", "nomor_induk_kependudukan", "no_nik"),
    "nama": ("nama", "nama_lengkap", "nama_peserta", "name"),
    "kpj": ("kpj", "no_kpj", "nomor_kpj"),
    "phone": ("phone", "hp", "no_hp", "nomor_hp", "telepon", "no_telp", "telp"),
    "tanggal_lahir": ("tanggal_lahir", "tgl_lahir", "birth_date"),
}
REQUIRED = ("nik", "nama")
FIELDS = tuple(HEADERS)
KPJ_DIGITS = 11
# Last year's list was 11.666 people; a file far larger is another file (or a zip bomb).
MAX_ROWS = 100_000
MAX_UNCOMPRESSED_BYTES = 50 * 1024 * 1024


class RowProblem(StrEnum):
    """Why a row of a cohort file was not imported (counted and reported, never applied)."""

    BAD_NIK = "bad_nik"  # not a valid NIK
    MISSING_NAME = "missing_name"
    DUPLICATE_NIK = "duplicate_nik"  # more than once in the file: none of its rows is taken
    NOT_IN_DTSEN = "not_in_dtsen"  # imported anyway, as ineligible for staff: counted apart
    ALREADY_REGISTERED = "already_registered"  # a live application holds the NIK this year
    ALREADY_IMPORTED = "already_imported"  # this NIK of this cohort year is in already
    KPJ_TAKEN = "kpj_taken"  # the KPJ number belongs to another application


class CohortFileError(Exception):
    """The file as a whole cannot be used (type, header, size); nothing was imported."""


def parse_cohort_map(text: str) -> dict[str, str]:
    """`nik=NIK_ART,nama=NAMA` -> {"nik": "NIK_ART", ...}; ValueError when malformed."""
    return parse_field_map(text, FIELDS)


@dataclass(frozen=True)
class CohortRow:
    """One participant as the file gives them; `problem` set when the row cannot be used."""

    line: int
    nik_text: str
    nik: Nik | None
    nama: str | None
    kpj: str | None
    phone: str | None
    tanggal_lahir: date | None
    problem: RowProblem | None = None


def _open(data: bytes, kind: str) -> contextlib.AbstractContextManager[Sheet]:
    if kind == "CSV":
        return contextlib.nullcontext(read_csv(data, max_rows=MAX_ROWS, ansi_fallback=True))
    return open_xlsx(data, max_rows=MAX_ROWS, max_uncompressed_bytes=MAX_UNCOMPRESSED_BYTES)


def _positions(header: Sequence[object], column_map: Mapping[str, str]) -> dict[str, int]:
    names = [normalise_header(cell) for cell in header]
    found: dict[str, int] = {}
    missing: list[str] = []
    for field, spellings in HEADERS.items():
        wanted = (normalise_header(column_map[field]),) if field in column_map else spellings
        position = next((names.index(name) for name in wanted if name in names), None)
        if position is not None:
            found[field] = position
        elif field in column_map:
            missing.append(f"{column_map[field]} (for {field})")
        elif field in REQUIRED:
            missing.append(field)
    if missing:
        shown = ", ".join(name for name in names if name)[:300] or "none"
        raise CohortFileError(
            f"the header lacks {', '.join(missing)}; columns found: {shown} "
            "(map other names with --map FIELD=COLUMN)"
        )
    return found


def read_cohort(
    data: bytes, *, filename: str, column_map: Mapping[str, str], today: date
) -> list[CohortRow]:
    """Every data row of a cohort file, each checked on its own and against the others.

    CohortFileError, one line, for a file that is not CSV/XLSX, lacks NIK or name, or has no
    rows. An unreadable optional value (KPJ, phone, birth date) is left out, not fatal: the
    person is last year's participant whatever the state of their phone number.
    """
    suffix = Path(filename).suffix.casefold()
    if suffix == ".csv":
        kind = "CSV"
    elif suffix in (".xlsx", ".xlsm"):
        kind = "XLSX"
    else:
        raise CohortFileError(f"{filename}: only .csv and .xlsx files can be imported")
    try:
        with _open(data, kind) as sheet:
            header = sheet.header
            rows = list(sheet.rows)
    except TooManyRows:
        raise CohortFileError(f"more than {MAX_ROWS:,} rows: not a cohort file") from None
    except TooLargeUnpacked:
        raise CohortFileError("the XLSX unpacks to more than 50 MB: not a cohort file") from None
    except SpreadsheetError as error:
        raise CohortFileError(f"cannot read the file as {kind}: {error}") from None
    if not header:
        raise CohortFileError("the file is empty")
    at = _positions(header, column_map)
    if not rows:
        raise CohortFileError("the file has a header but no data rows")

    def text(cells: list[object], field: str) -> str:
        position = at.get(field)
        if position is None or position >= len(cells):
            return ""
        return cell_text(cells[position]).strip()

    parsed: list[CohortRow] = []
    for line, cells in rows:
        nik_text = text(cells, "nik")
        problem: RowProblem | None = None
        nik: Nik | None = None
        try:
            nik = parse_nik(nik_text, today=today)
        except InvalidNik:
            problem = RowProblem.BAD_NIK
        nama: str | None = None
        try:
            nama = parse_name(text(cells, "nama"))
        except ParseError:
            problem = problem or RowProblem.MISSING_NAME
        kpj = re.sub(r"[\s.\-]", "", text(cells, "kpj"))
        kpj_ok = len(kpj) == KPJ_DIGITS and kpj.isascii() and kpj.isdigit()
        phone: str | None = None
        with contextlib.suppress(ParseError):
            phone = parse_phone(text(cells, "phone")) if text(cells, "phone") else None
        birth: date | None = None
        raw_birth = text(cells, "tanggal_lahir")
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[ T][0-9:.]+", raw_birth):
            raw_birth = raw_birth[:10]  # a date cell exported to CSV with its time
        with contextlib.suppress(InvalidDate):
            birth = parse_date(raw_birth, today=today) if raw_birth else None
        parsed.append(
            CohortRow(line, nik_text, nik, nama, kpj if kpj_ok else None, phone, birth, problem)
        )
    counts = Counter(row.nik.digits for row in parsed if row.nik is not None)
    kpj_counts = Counter(row.kpj for row in parsed if row.kpj is not None)
    return [
        CohortRow(
            row.line,
            row.nik_text,
            row.nik,
            row.nama,
            # A KPJ number twice in the file belongs to nobody for sure: left out of both.
            row.kpj if row.kpj is not None and kpj_counts[row.kpj] == 1 else None,
            row.phone,
            row.tanggal_lahir,
            RowProblem.DUPLICATE_NIK
            if row.problem is None and row.nik is not None and counts[row.nik.digits] > 1
            else row.problem,
        )
        for row in parsed
    ]
