"""CSV and XLSX files read as rows of cells, with one set of rules for every import (DTSEN, KPJ):
encodings, delimiters, header names, numbers typed as floats, and the line, row and size bounds.
"""

from __future__ import annotations

import contextlib
import csv
import io
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# Longest line (with its newline) of a CSV: a DTSEN row is ~100-300 bytes, a KPJ row less.
# Anything longer is another kind of file, and unbounded it cost memory: a 300 MB header line
# took 949 MB, a 2 GB one ran out of memory.
MAX_LINE_BYTES = 64 * 1024
# What separates cells, guessed from the header line: the most frequent of these (Excel on
# Indonesian Windows writes ";"); a tie or none of them means ",".
DELIMITERS = (",", ";", "\t", "|")
_UTF8_BOM = b"\xef\xbb\xbf"
_ZIP_MAGIC = b"PK\x03\x04"
# Integral floats below this are exact: a NIK typed into Excel as a number can be trusted only
# there (provinces 91-94 lie above it and keep their `.0`, which no NIK check accepts).
_EXACT_FLOATS = 2**53

Cells = list[object]
# A row of the file: the line it starts on (the first line is 1) and its cells.
Row = tuple[int, Cells]


class SpreadsheetError(Exception):
    """The file cannot be read on; each import words the reason for its own audience."""


class LineTooLong(SpreadsheetError):
    """A CSV line is longer than MAX_LINE_BYTES."""

    def __init__(self, line: int) -> None:
        super().__init__(f"line {line} is longer than {MAX_LINE_BYTES // 1024} KiB")
        self.line = line


class NotUtf8(SpreadsheetError):
    """Bytes that are not UTF-8, where no other encoding was allowed."""

    def __init__(self, line: int) -> None:
        super().__init__(f"not UTF-8 text (line {line})")
        self.line = line


class Unreadable(SpreadsheetError):
    """Not a CSV or XLSX file at all (a broken archive, CSV that never closes a quote)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"cannot read the file as {kind}: {detail}")
        self.kind = kind
        self.detail = detail


class TooManyRows(SpreadsheetError):
    """More data rows than the caller's bound."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} rows")
        self.limit = limit


class TooLargeUnpacked(SpreadsheetError):
    """An XLSX whose parts unpack to more than the caller's bound (a zip bomb, or a mistake)."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"unpacks to more than {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


@dataclass
class Sheet:
    """A header row and the data rows under it, blank rows left out, each with its line."""

    header: Cells
    rows: Iterator[Row]
    declared_rows: int | None = None  # what an XLSX says it holds (it may lie): for progress


def normalise_header(name: object) -> str:
    """A column name as compared: case, spaces, dots, dashes and a byte order mark ignored
    (`No. KPJ` and `no_kpj`, `Tanggal Lahir` and `TANGGAL_LAHIR` are one name)."""
    text = "" if name is None else str(name)
    text = text.replace("\ufeff", "").strip().casefold().replace(".", " ").replace("-", " ")
    return "_".join(text.split())


def cell_text(value: object) -> str:
    """A spreadsheet cell as the text a CSV export would hold: dates in ISO form, whole numbers
    without `.0` (a NIK typed as a number) where exact, other floats as Python writes them
    (`9175011708850000.0`, `1e+16`: refused wherever digits are expected)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return (
            str(int(value)) if value.is_integer() and abs(value) < _EXACT_FLOATS else repr(value)
        )
    return str(value)


def is_blank(cells: Sequence[object]) -> bool:
    """Whether a row holds nothing but empty cells and spaces."""
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a CSV, from its header line."""
    return max(DELIMITERS, key=header_line.count)


def is_xlsx(head: bytes) -> bool:
    """Whether a file starting with these bytes is a zip archive: XLSX whatever its name."""
    return head.startswith(_ZIP_MAGIC)


def decode(data: bytes, *, first_line: int = 1, ansi_fallback: bool = False) -> str:
    """UTF-8 text, with or without a byte order mark; else, with `ansi_fallback`, Windows-1252
    (Excel's plain "CSV" on Windows); else NotUtf8 naming the line of the first bad byte."""
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    try:
        return data[start:].decode("utf-8") if start else data.decode("utf-8")
    except UnicodeDecodeError as error:
        if ansi_fallback:
            return data.decode("cp1252", errors="replace")
        raise NotUtf8(first_line + data.count(b"\n", 0, start + error.start)) from None


def line_ends(data: bytes, *, first_line: int) -> npt.NDArray[np.intp]:
    """Where each line of `data` ends (its newline); LineTooLong for the first line, the
    unfinished last one included, longer than MAX_LINE_BYTES."""
    import numpy as np  # not at import time: the bot itself never loads numpy

    # numpy finds a byte ~5x faster than bytes.count (~0.25 s over Kota Bekasi).
    newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
    lengths = np.diff(newlines, prepend=-1, append=len(data) - 1)
    too_long = np.flatnonzero(lengths > MAX_LINE_BYTES)
    if len(too_long):
        raise LineTooLong(first_line + int(too_long[0]))
    return newlines


@dataclass(frozen=True)
class CsvHeader:
    """The first line of a CSV and a sample of what follows, both within the line bound."""

    cells: list[str]
    delimiter: str
    data_offset: int  # bytes of the header line: where the data starts
    sample: bytes  # up to MAX_LINE_BYTES after the header line


def read_csv_header(handle: BinaryIO, *, ansi_fallback: bool = False) -> CsvHeader:
    """Read the header line and a sample from the start of a CSV, never more than the bound."""
    first = handle.readline(MAX_LINE_BYTES + 1)
    if len(first) > MAX_LINE_BYTES:
        raise LineTooLong(1)
    sample = handle.read(MAX_LINE_BYTES)
    if len(sample) == MAX_LINE_BYTES and b"\n" not in sample:
        raise LineTooLong(2)
    text = decode(first, ansi_fallback=ansi_fallback)
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    cells = next(csv.reader([text], delimiter=delimiter), [])
    return CsvHeader(cells=cells, delimiter=delimiter, data_offset=len(first), sample=sample)


def read_csv(data: bytes, *, max_rows: int | None = None, ansi_fallback: bool = False) -> Sheet:
    """A whole CSV held in memory, as a Sheet; the errors above for a file out of bounds."""
    delimiter = read_csv_header(io.BytesIO(data), ansi_fallback=ansi_fallback).delimiter
    line_ends(data, first_line=1)
    text = decode(data, ansi_fallback=ansi_fallback)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def rows() -> Iterator[Row]:
        try:
            for cells in reader:  # numbered by the line each row ends on
                yield reader.line_num, list(cells)
        except csv.Error as error:
            raise Unreadable("CSV", str(error)) from None

    return _sheet(rows(), max_rows=max_rows, declared_rows=None)


@contextlib.contextmanager
def open_xlsx(
    source: Path | bytes,
    *,
    max_rows: int | None = None,
    max_uncompressed_bytes: int | None = None,
) -> Iterator[Sheet]:
    """The first sheet of an XLSX, streamed; the errors above for a file out of bounds.

    The unpacked size is checked from the sizes the zip directory declares, before anything is
    decompressed; the row bound first against the sheet's own `<dimension>` (which may lie),
    then while reading.
    """
    from openpyxl import load_workbook

    file: Path | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes) else source
    if max_uncompressed_bytes is not None:
        try:
            with zipfile.ZipFile(file) as archive:
                declared = sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise Unreadable("XLSX", str(error)) from None
        if declared > max_uncompressed_bytes:
            raise TooLargeUnpacked(max_uncompressed_bytes)
    with warnings.catch_warnings():
        # Files from other tools lack openpyxl's default style; the data reads fine.
        warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")
        try:
            # Read-only mode streams the sheet's XML instead of building it in memory.
            workbook = load_workbook(file, read_only=True, data_only=True)
        except Exception as error:  # a broken archive raises many different types
            raise Unreadable("XLSX", str(error)) from None
    try:
        worksheet = workbook.worksheets[0]
        declared_rows = worksheet.max_row
        if max_rows is not None and (declared_rows or 0) > max_rows + 1:
            raise TooManyRows(max_rows)

        def rows() -> Iterator[Row]:
            try:
                for line, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
                    yield line, list(values)
            except SpreadsheetError:
                raise
            except Exception as error:  # openpyxl and zipfile raise a dozen kinds
                raise Unreadable("XLSX", str(error)) from None

        yield _sheet(rows(), max_rows=max_rows, declared_rows=declared_rows)
    finally:
        workbook.close()


def _sheet(rows: Iterator[Row], *, max_rows: int | None, declared_rows: int | None) -> Sheet:
    """The first non-blank row as the header, the non-blank rows after it as data."""
    header: Cells = []
    for _line, cells in rows:
        if not is_blank(cells):
            header = cells
            break
    return Sheet(header=header, rows=_data_rows(rows, max_rows), declared_rows=declared_rows)


def _data_rows(rows: Iterator[Row], max_rows: int | None) -> Iterator[Row]:
    count = 0
    for line, cells in rows:
        if is_blank(cells):
            continue
        count += 1
        if max_rows is not None and count > max_rows:
            raise TooManyRows(max_rows)
        yield line, cells


def parse_field_map(text: str, fields: Sequence[str]) -> dict[str, str]:
    """An import's `--map`: `nik=NIK_ART,nama=NAMA` -> {"nik": "NIK_ART", "nama": "NAMA"}, each
    field one of `fields`; ValueError when malformed."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        field, sep, column = part.partition("=")
        field = field.strip().casefold()
        if not sep or not column.strip():
            raise ValueError(f"expected FIELD=COLUMN, got {part.strip()!r}")
        if field not in fields:
            raise ValueError(f"unknown field {field!r}; fields are {', '.join(fields)}")
        mapping[field] = column.strip()
    return mapping
