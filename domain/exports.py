"""The approved list for BPJS Ketenagakerjaan collective BPU registration, as CSV or XLSX.

Pure: no telegram, no sqlalchemy; `storage/exports.py` reads the rows. Every row holds a full NIK
and phone number because BPJS needs them: the file is for admins only and rows are never logged.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import html
import io
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

from domain.i18n import N_
from domain.names import strip_titles
from domain.program import OTHER_OCCUPATION, occupation_label, relation_label
from domain.regions import Regions, load_regions

Translate = Callable[[str], str]

# Bahasa headers, as the BPJS Ketenagakerjaan collective registration forms name them.
# No TEMPAT_LAHIR: no source holds the place of birth (the bot does not ask it, the DTSEN
# extract does not carry it and the NIK does not encode it), and an always-empty column looked
# like data lost on the way; BPJS reads it from Dukcapil by the NIK.
COLUMNS = (
    "NIK",
    "NO_KPJ",
    "NAMA",
    "TANGGAL_LAHIR",
    "JENIS_KELAMIN",
    "ALAMAT",
    "KELURAHAN",
    "KECAMATAN",
    "KABUPATEN_KOTA",
    "NO_HP",
    "PEKERJAAN",
    "PROGRAM",
    "PERIODE",
    "AHLI_WARIS",
    "HUBUNGAN_AHLI_WARIS",
    "NOMOR_PENDAFTARAN",
)
PROGRAM = "JKK+JKM"
DEFAULT_PERIOD = "12 bulan"
SHEET_TITLE = "Peserta BPU"
EXPORT_DONE = N_("{count} rows written to {path}.")
# Columns Excel must never read as numbers (16-digit NIKs lose their last digit as floats; phone
# numbers and dates lose their leading zero): the XLSX gives them the Text format '@'.
TEXT_COLUMNS = frozenset({"NIK", "NO_KPJ", "TANGGAL_LAHIR", "NO_HP", "NOMOR_PENDAFTARAN"})
# Character widths that show a whole NIK, name or address without resizing.
COLUMN_WIDTHS = {"NIK": 19, "NO_KPJ": 13, "NAMA": 28, "ALAMAT": 40, "NO_HP": 15, "AHLI_WARIS": 24}
# A cell starting with one of these is a formula to Excel and LibreOffice; workers type names
# and addresses, so a CSV cell that starts so gets a leading apostrophe (OWASP CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One worker as stored (codes, E.164 phone); `RowFormatter.cells()` makes the columns."""

    nik: str
    nama: str
    tanggal_lahir: date | None
    jenis_kelamin: str  # L or P
    alamat: str
    kecamatan_code: str
    kelurahan_code: str
    phone: str  # E.164, +62...
    occupation: str
    occupation_other: str
    heir_name: str
    heir_relation: str
    code: str  # the application number, BKS-4F7K2Q
    kpj: str = ""  # the BPJS membership number, once enrolled (or carried over from last year)
    # The name in DTSEN (the KTP spelling), preferred over the worker's typing; empty when the
    # extract no longer holds the NIK.
    nama_dtsen: str = ""


_TAG = re.compile(r"<[^<>]{0,200}>")
# Symbols kept although their category is "other symbol": degrees and the numero sign.
_KEPT_SYMBOLS = frozenset("°№")
# Joiners and selectors that only glue emoji together.
_EMOJI_GLUE = frozenset("\u200d\ufe0e\ufe0f\u20e3")


def export_text(value: str) -> str:
    """Free text as it goes to BPJS: HTML tags and entities and emoji (pictographs, flags, skin
    tones and their joiners) removed, spaces collapsed."""
    if value.isascii() and "<" not in value and "&" not in value:
        return " ".join(value.split())  # nearly every row: no tag, entity or emoji possible
    text = html.unescape(_TAG.sub(" ", value))
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in _EMOJI_GLUE or (
            char not in _KEPT_SYMBOLS
            and (category == "So" or (category == "Sk" and not char.isascii()))
        ):
            continue
        kept.append(char)
    return " ".join("".join(kept).split())


def export_name(row: ExportRow) -> str:
    """The name as in DTSEN (else as typed), cleaned and without titles ("Bpk", "Hj.", "S.Pd.")."""
    return strip_titles(export_text(row.nama_dtsen or row.nama))


def national_phone(e164: str) -> str:
    """`+6281234567890` -> `081234567890`: digits only, as forms and upload tools expect."""
    # Stored numbers are all Indonesian E.164 (domain/phones.py), so no parsing is needed.
    return "0" + e164[3:] if e164.startswith("+62") else e164


def format_birth_date(value: date | None) -> str:
    """`17-08-1985` (dd-mm-yyyy), or empty when unknown."""
    return "" if value is None else f"{value.day:02d}-{value.month:02d}-{value.year:04d}"


class RowFormatter:
    """Turns stored rows into the export cells, with region and label look-ups cached."""

    def __init__(self, *, period: str, translate: Translate, regions: Regions | None) -> None:
        self.period = period
        self._translate = translate
        self._regions = regions or load_regions()
        # A few dozen distinct codes repeat over thousands of rows.
        self._region_name = functools.lru_cache(maxsize=4096)(self._lookup_region)
        self._label = functools.lru_cache(maxsize=256)(self._lookup_label)

    def _lookup_region(self, code: str) -> str:
        if not code:
            return ""
        return self._regions.name(code) or code

    def _lookup_label(self, untranslated: str) -> str:
        return self._translate(untranslated) if untranslated else ""

    def occupation(self, row: ExportRow) -> str:
        """The worker's own words for "other", else the translated occupation label."""
        if row.occupation == OTHER_OCCUPATION and row.occupation_other:
            return export_text(row.occupation_other)
        return self._label(occupation_label(row.occupation)) or row.occupation

    def cells(self, row: ExportRow) -> list[str]:
        """The row as text cells, in `COLUMNS` order."""
        return [
            row.nik,
            row.kpj,
            export_name(row),
            format_birth_date(row.tanggal_lahir),
            row.jenis_kelamin,
            export_text(row.alamat),
            self._region_name(row.kelurahan_code),
            self._region_name(row.kecamatan_code),
            self._region_name(row.kecamatan_code[:4]),
            national_phone(row.phone),
            self.occupation(row),
            PROGRAM,
            self.period,
            strip_titles(export_text(row.heir_name)),
            self._label(relation_label(row.heir_relation)) or row.heir_relation,
            row.code,
        ]


def csv_safe(cell: str) -> str:
    """The cell with a leading apostrophe when Excel would run it as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


@contextlib.contextmanager
def _private_file(path: Path) -> Iterator[IO[bytes]]:
    """A file only its owner can read, written beside `path` and renamed into place at the end.

    A crash or an error never leaves half a list behind, and the personal data in it is not
    readable by other accounts on the server (mode 0600).
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "wb") as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _write_csv_stream(
    rows: Iterable[ExportRow], stream: IO[bytes], formatter: RowFormatter
) -> int:
    # utf-8-sig writes the BOM Excel needs to read UTF-8 (names with é, ñ...) on Indonesian
    # Windows. Comma-separated: Excel with an Indonesian locale expects ";", but BPJS upload
    # tools and every other program read commas, and with the BOM Excel's import wizard does.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        count = 0
        for row in rows:
            writer.writerow([csv_safe(cell) for cell in formatter.cells(row)])
            count += 1
        text.flush()
    finally:
        # Hand the caller's stream back open (a BytesIO for a Telegram document).
        text.detach()
    return count


def write_csv(
    rows: Iterable[ExportRow],
    target: Path | IO[bytes],
    *,
    period: str = DEFAULT_PERIOD,
    translate: Translate,
    regions: Regions | None = None,
) -> int:
    """Write the BPJS list as UTF-8 CSV with a BOM; returns the number of rows written."""
    formatter = RowFormatter(period=period, translate=translate, regions=regions)
    if isinstance(target, Path):
        with _private_file(target) as stream:
            return _write_csv_stream(rows, stream, formatter)
    return _write_csv_stream(rows, target, formatter)


def write_xlsx(
    rows: Iterable[ExportRow],
    target: Path | IO[bytes],
    *,
    period: str = DEFAULT_PERIOD,
    translate: Translate,
    regions: Regions | None = None,
) -> int:
    """Write the BPJS list as one XLSX sheet, every cell text; returns the number of rows."""
    # Imported here: openpyxl takes ~0.2 s to import and only exports need it.
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    formatter = RowFormatter(period=period, translate=translate, regions=regions)
    # Write-only mode streams rows to disk instead of building every cell object in memory.
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(SHEET_TITLE)
    for index, name in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = COLUMN_WIDTHS.get(name, 16)
    sheet.freeze_panes = "A2"
    header = []
    for name in COLUMNS:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)
    text_format = [name in TEXT_COLUMNS for name in COLUMNS]
    count = 0
    for row in rows:
        cells: list[object] = []
        for value, as_text in zip(formatter.cells(row), text_format, strict=True):
            if not value:
                cells.append(None)  # no cell at all: smaller and faster than an empty one
                continue
            # Control characters are illegal in XLSX; a worker's paste could hold one.
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
            if as_text or value.startswith("=") or value.startswith("#"):
                # openpyxl would read "=..." as a formula and "#N/A" as an error: a cell of our
                # own forces plain text. Only these get one, as each costs a second type check.
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"
                if as_text:
                    cell.number_format = "@"
                cells.append(cell)
            else:
                cells.append(value)
        sheet.append(cells)
        count += 1
    if isinstance(target, Path):
        with _private_file(target) as stream:
            workbook.save(stream)
    else:
        workbook.save(target)
    return count
