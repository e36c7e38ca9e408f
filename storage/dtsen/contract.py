"""What a DTSEN import reads and writes: the fields, header matching and --map, the skip
reasons, the staging table's columns, the loaders' interface and the import's errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from storage.spreadsheets import normalise_header, parse_field_map

TABLE = "dtsen_record"
STAGING_TABLE = "dtsen_record__staging"
OLD_TABLE = "dtsen_record__old"  # only inside the swap's transaction
NIK_INDEX = "ix_dtsen_record_nik_key"

REQUIRED_FIELDS = ("nik", "nama", "tanggal_lahir", "jenis_kelamin", "kode_wilayah", "desil")
# Columns extracts often carry and --map accepts, but that are not stored: eligibility does not
# use them, and the city has no reason to keep every resident's address or family card number.
OPTIONAL_FIELDS = ("no_kk", "alamat")
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
MAX_NAMA = 200


class SkipReason(StrEnum):
    """Why a row of the extract was not loaded (the `reason` column of the report)."""

    SHORT_ROW = "short_row"
    BAD_NIK = "bad_nik"
    MISSING_NAMA = "missing_nama"
    BAD_DATE = "bad_date"
    BAD_JENIS_KELAMIN = "bad_jenis_kelamin"
    BAD_KODE_WILAYAH = "bad_kode_wilayah"
    BAD_DESIL = "bad_desil"
    DUPLICATE_NIK = "duplicate_nik"
    # The two-file (V3) extract: a NIK or KK number a spreadsheet turned into `3.27501E+15` has
    # lost digits; a person whose KK is not in the family file; a family listed twice (the first
    # row stays) or with nobody in the persons file (rows of the family file).
    SCIENTIFIC_NOTATION = "scientific_notation"
    NO_FAMILY = "no_family"
    DUPLICATE_KK = "duplicate_kk"
    FAMILY_WITHOUT_PERSONS = "family_without_persons"


# The reasons only a two-file (V3) import gives.
PAIR_REASONS = frozenset({SkipReason.SCIENTIFIC_NOTATION, SkipReason.NO_FAMILY,
                          SkipReason.DUPLICATE_KK, SkipReason.FAMILY_WITHOUT_PERSONS})  # fmt: skip


class DtsenImportError(Exception):
    """The import was aborted and the previous table is still in service; one-line message."""


class Cancelled(Exception):
    """The import task was cancelled; raised on the import's thread."""


def parse_column_map(text: str) -> dict[str, str]:
    """`nik=NIK_ART,nama=NAMA` -> {"nik": "NIK_ART", "nama": "NAMA"}; ValueError when malformed."""
    return parse_field_map(text, FIELDS)


# A loaded row, in staging-table column order: id (the source line), nik_hash (the 32-byte
# HMAC; a bytearray because Python 3.11's sqlite3 binds bytes through its adapter lookup, ~20 %
# of a row's insert cost), nik_key (its first 8 bytes as an integer), nama, tanggal_lahir
# (ISO), jenis_kelamin, kode_wilayah, desil.
Row = tuple[int, bytearray, int, str, str, str, str, int]
# A skipped row for the report: line, reason, detail (a code, never the value), masked NIK.
BadRow = tuple[int, str, str, str]
# A data row of the source: the line it starts on (the header is line 1) and its cells as text.
Record = tuple[int, list[str]]


@dataclass(frozen=True)
class Columns:
    """Where each stored field sits in a row of the source file."""

    required: tuple[int, ...]  # indexes of REQUIRED_FIELDS, in that order

    @property
    def width(self) -> int:
        """Cells a row is split into before the rest of the line, which is never read."""
        return max(self.required) + 1

    @classmethod
    def resolve(cls, header: Sequence[object], column_map: Mapping[str, str]) -> Columns:
        """Find every field in the header row; DtsenImportError naming what is missing."""
        names = [normalise_header(cell) for cell in header]
        position: dict[str, int] = {}
        for index, name in enumerate(names):
            position.setdefault(name, index)
        found: dict[str, int] = {}
        missing: list[str] = []
        for field in REQUIRED_FIELDS:  # the optional ones are not stored: nothing to find
            wanted = normalise_header(column_map.get(field, field))
            if wanted in position:
                found[field] = position[wanted]
            elif field in column_map:
                missing.append(f"{column_map[field]} (for {field})")
            else:
                missing.append(field)
        if missing:
            shown = ", ".join(name for name in names if name)[:300] or "none"
            raise DtsenImportError(
                f"the header lacks {', '.join(missing)}; columns found: {shown} "
                "(map other names with --map FIELD=COLUMN)"
            )
        return cls(tuple(found[f] for f in REQUIRED_FIELDS))


class Loader(Protocol):
    """Stages rows and swaps them in. Blocking calls, made from the import's thread."""

    def prepare(self) -> None: ...

    def write(self, rows: list[Row]) -> None: ...  # or V3 rows (COLUMNS_V3), per loader

    def remove(self, lines: list[int]) -> None: ...

    def rows_in_service(self) -> int: ...

    def swap(self, *, source_name: str, loaded: int, skipped: int, actor: str) -> None: ...

    def interrupt(self) -> None: ...

    def discard(self) -> None: ...


# The staging table's columns, in Row order.
COLUMNS = ("id", "nik_hash", "nik_key", "nama", "tanggal_lahir", "jenis_kelamin",
            "kode_wilayah", "desil")  # fmt: skip
# What a two-file (V3) import writes: the same, then the family's other desils, the KTP
# regency and the work variables (a V3Row).
COLUMNS_V3 = (*COLUMNS, "desil_provinsi", "desil_kabupaten_kota", "kode_kabupaten_kota_ktp",
              "status_bekerja", "status_dalam_pekerjaan", "lapangan_usaha")  # fmt: skip
