"""The one CSV/XLSX reader both imports use: encodings, delimiters, headers, numbers, bounds."""

from __future__ import annotations

import io
from datetime import date, datetime

import pytest
from openpyxl import Workbook

from storage.spreadsheets import (
    MAX_LINE_BYTES,
    LineTooLong,
    NotUtf8,
    TooManyRows,
    Unreadable,
    cell_text,
    normalise_header,
    open_xlsx,
    read_csv,
)


@pytest.mark.parametrize(
    "delimiter", [",", ";", "\t", "|"], ids=["comma", "semicolon", "tab", "bar"]
)
def test_delimiter_is_sniffed_from_the_header(delimiter: str) -> None:
    """Any of , ; tab | separates cells; the header line tells which."""
    data = delimiter.join(["nik", "kpj", "tgl mulai"]) + "\n" + delimiter.join("123") + "\n"
    sheet = read_csv(data.encode())
    assert sheet.header == ["nik", "kpj", "tgl mulai"]
    assert list(sheet.rows) == [(2, ["1", "2", "3"])]


def test_byte_order_mark_is_not_part_of_the_first_column() -> None:
    """Excel's "CSV UTF-8" starts with a BOM."""
    sheet = read_csv(b"\xef\xbb\xbfnik;kpj\n1;2\n")
    assert sheet.header == ["nik", "kpj"]


def test_windows_1252_is_read_only_where_allowed() -> None:
    """Excel's plain "CSV" is Windows-1252: read with ansi_fallback, else refused by line."""
    data = "nik,nama\n1,JOSÉ\n".encode("cp1252")
    assert list(read_csv(data, ansi_fallback=True).rows) == [(2, ["1", "JOSÉ"])]
    with pytest.raises(NotUtf8) as refused:
        read_csv(data)
    assert refused.value.line == 2


def test_overlong_line_is_refused_by_number() -> None:
    """No CSV line may be longer than MAX_LINE_BYTES, the header included."""
    data = b"nik,nama\n1,A\n2," + b"x" * MAX_LINE_BYTES + b"\n"
    with pytest.raises(LineTooLong) as refused:
        read_csv(data)
    assert refused.value.line == 3
    with pytest.raises(LineTooLong) as refused:
        read_csv(b"n" * (MAX_LINE_BYTES + 1) + b"\n1\n")
    assert refused.value.line == 1


def test_blank_rows_are_left_out_and_rows_are_bounded() -> None:
    """Blank lines are not rows; more data rows than max_rows refuse the file."""
    sheet = read_csv(b"\nnik,kpj\n\n1,2\n ,\n3,4\n", max_rows=2)
    assert sheet.header == ["nik", "kpj"]
    assert list(sheet.rows) == [(4, ["1", "2"]), (6, ["3", "4"])]
    with pytest.raises(TooManyRows):
        list(read_csv(b"nik\n1\n2\n3\n", max_rows=2).rows)


@pytest.mark.parametrize(
    ("name", "key"),
    [("No. KPJ", "no_kpj"), ("\ufeffNIK", "nik"), (" Tanggal  Lahir ", "tanggal_lahir"),
     ("jenis-kelamin", "jenis_kelamin"), ("KODE_WILAYAH", "kode_wilayah"), (None, "")],
)  # fmt: skip
def test_header_names_ignore_case_spaces_dots_and_dashes(name: object, key: str) -> None:
    """One rule for every import's column names."""
    assert key == normalise_header(name)


@pytest.mark.parametrize(
    ("value", "text"),
    [(3275011708850001.0, "3275011708850001"), (9175011708850001.0, "9175011708850000.0"),
     (12345678901, "12345678901"), (2.5, "2.5"), (None, ""), ("'3275", "'3275"),
     (datetime(2026, 12, 1, 8, 30), "2026-12-01"), (date(1990, 1, 2), "1990-01-02")],
)  # fmt: skip
def test_cells_read_as_a_csv_export_would_hold_them(value: object, text: str) -> None:
    """Whole floats lose their `.0` only where they are exact (below 2**53)."""
    assert text == cell_text(value)


def test_xlsx_first_sheet_is_read_with_lines_and_bounds() -> None:
    """The first non-blank row is the header; rows keep their sheet line; bounds refuse."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append([None, None])
    sheet.append(["NIK", "KPJ"])
    sheet.append([3275011708850001.0, 12345678901])
    stream = io.BytesIO()
    workbook.save(stream)
    with open_xlsx(stream.getvalue()) as read:
        assert read.header == ["NIK", "KPJ"]
        assert list(read.rows) == [(3, [3275011708850001.0, 12345678901])]
    with pytest.raises(TooManyRows), open_xlsx(stream.getvalue(), max_rows=0) as read:
        list(read.rows)
    with pytest.raises(Unreadable):  # noqa: SIM117 (the error comes from opening)
        with open_xlsx(b"PK\x03\x04 not a zip", max_uncompressed_bytes=1_000):
            pass
