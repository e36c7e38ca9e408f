"""The decree's annex (lampiran SK): every participant the city pays for, numbered per
kecamatan and kelurahan, with totals per kelurahan, per kecamatan and for the city, and the
premium total of the cover period, as one XLSX sheet.

Pure: no telegram, no sqlalchemy; `storage/exports.py` reads the rows. Full NIKs: admins only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

from domain.budget import Budget, format_month
from domain.exports import _private_file  # the same 0600, all-or-nothing file as the list
from domain.i18n import N_
from domain.regions import Regions, load_regions
from domain.reports import format_idr, format_number

Translate = Callable[[str], str]

TITLE = N_("Annex to the decree: participants of the JKK and JKM premium programme")
PERIOD = N_("Cover {start} to {end}: {months} months at {premium} a month")
SHEET = N_("Annex")
HEADERS = (
    N_("No."),
    N_("No. in kecamatan"),
    N_("No. in kelurahan"),
    N_("Kecamatan"),
    N_("Kelurahan"),
    N_("Name"),
    "NIK",
    N_("Address"),
    "KPJ",
    N_("Months"),
    N_("Premium"),
)
KELURAHAN_TOTAL = N_("Total kelurahan {name}: {count} participants")
KECAMATAN_TOTAL = N_("Total kecamatan {name}: {count} participants")
CITY_TOTAL = N_("Total for the city: {count} participants")
PREMIUM_TOTAL = N_("Premium total for the cover period: {premium}")
ANNEX_DONE = N_("Annex: {count} participants, premium total {premium}, written to {path}.")
# Character widths that show a whole NIK, name or address without resizing.
WIDTHS = (7, 9, 9, 20, 20, 28, 19, 40, 13, 8, 14)


@dataclass(frozen=True, slots=True)
class AnnexRow:
    """One participant as stored, with what their months of cover are reckoned from."""

    nik: str
    nama: str
    alamat: str
    kecamatan_code: str
    kelurahan_code: str
    kpj_number: str
    approved_on: date | None  # local day of the approval
    coverage_start: date | None  # the month BPJS gave, when known
    lapsed_on: date | None


@dataclass(frozen=True)
class AnnexTotals:
    """What the annex lists: participants, their premiums, per kelurahan and for the city."""

    participants: int
    premium_idr: int
    per_kelurahan: dict[str, int]  # kelurahan code -> participants


def _line(row: AnnexRow, budget: Budget, names: Callable[[str], str]) -> tuple[str, str, str, int]:
    span = budget.span(
        approved_on=row.approved_on, coverage_start=row.coverage_start, ended_on=row.lapsed_on
    )
    months = span.months if span else 0
    return names(row.kecamatan_code), names(row.kelurahan_code), row.nama, months


def write_annex(
    rows: Iterable[AnnexRow],
    target: Path | IO[bytes],
    *,
    budget: Budget,
    translate: Translate,
    regions: Regions | None = None,
) -> AnnexTotals:
    """Write the annex: sorted by kecamatan, kelurahan and name (their names, not codes)."""
    # Imported here: openpyxl takes ~0.2 s to import and only exports need it.
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    _ = translate
    known = regions or load_regions()

    def names(code: str) -> str:
        return (known.name(code) or code) if code else "-"

    lines = sorted(
        ((row, *_line(row, budget, names)) for row in rows),
        key=lambda item: (
            item[1],
            item[0].kecamatan_code,
            item[2],
            item[0].kelurahan_code,
            item[3],
            item[0].nik,
        ),
    )
    premium = budget.monthly_premium_idr
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = _(SHEET)[:31]
    bold = Font(bold=True)
    sheet.append([_(TITLE)])
    sheet.append(
        [
            _(PERIOD).format(
                start=format_month(budget.start),
                end=format_month(budget.end),
                months=budget.months,
                premium=format_idr(premium),
            )
        ]
    )
    sheet.append([])
    sheet.append([_(header) if header not in ("NIK", "KPJ") else header for header in HEADERS])
    for cell in sheet[sheet.max_row]:
        cell.font = bold
    for index, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A5"

    def total(text: str, money: int) -> None:
        sheet.append([text, None, None, None, None, None, None, None, None, None, money])
        for cell in sheet[sheet.max_row]:
            cell.font = bold
        sheet.cell(sheet.max_row, 11).number_format = "#,##0"

    number = 0
    city_money = 0
    per_kelurahan: dict[str, int] = {}
    for kecamatan_name, in_kecamatan in itertools.groupby(lines, key=lambda item: item[1]):
        kecamatan_count = kecamatan_money = 0
        for (_code, kelurahan_name), in_kelurahan in itertools.groupby(
            in_kecamatan, key=lambda item: (item[0].kelurahan_code, item[2])
        ):
            kelurahan_count = kelurahan_money = 0
            for row, _kec, _kel, nama, months in in_kelurahan:
                number += 1
                kecamatan_count += 1
                kelurahan_count += 1
                money = premium * months
                kelurahan_money += money
                cells: list[object] = [
                    number,
                    kecamatan_count,
                    kelurahan_count,
                    kecamatan_name,
                    kelurahan_name,
                    ILLEGAL_CHARACTERS_RE.sub("", nama),
                    row.nik,
                    ILLEGAL_CHARACTERS_RE.sub("", row.alamat),
                    row.kpj_number or None,
                    months,
                    money,
                ]
                sheet.append(cells)
                at = sheet.max_row
                # NIK and KPJ are identifiers: text, or Excel drops a 16-digit NIK's last digit.
                for column in (7, 9):
                    sheet.cell(at, column).number_format = "@"
                    sheet.cell(at, column).data_type = "s"
                sheet.cell(at, 11).number_format = "#,##0"
            per_kelurahan[row.kelurahan_code] = kelurahan_count
            kecamatan_money += kelurahan_money
            total(
                _(KELURAHAN_TOTAL).format(name=kelurahan_name, count=kelurahan_count),
                kelurahan_money,
            )
        city_money += kecamatan_money
        total(
            _(KECAMATAN_TOTAL).format(name=kecamatan_name, count=kecamatan_count),
            kecamatan_money,
        )
    sheet.append([])
    total(_(CITY_TOTAL).format(count=format_number(number)), city_money)
    total(_(PREMIUM_TOTAL).format(premium=format_idr(city_money)), city_money)
    if isinstance(target, Path):
        with _private_file(target) as stream:
            workbook.save(stream)
    else:
        workbook.save(target)
    return AnnexTotals(number, city_money, per_kelurahan)
