"""DTSEN extract import (stream, validate, stage, swap atomically) and the NIK lookup repository.

An import never touches the table the bot is serving until the very end: rows stream into an
unindexed staging table (SQLite: written by parser processes; PostgreSQL: COPY), bad rows are
skipped and reported, and one transaction drops the old table and renames the staging table into
its place, with the index on `nik_key` (built inside that transaction on SQLite, which cannot
rename an index; before it on PostgreSQL).
Readers see the old table or the new one, never a mix; a failed, cancelled or killed import
leaves the old table serving, and the next import drops what it left behind.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import csv
import fcntl
import gc
import hashlib
import heapq
import io
import itertools
import logging
import marshal
import os
import queue
import re
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Protocol

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from domain.dates import InvalidDate, parse_date
from domain.nik import check_nik, clean_nik_digits, nik_fast_sets
from domain.pii import digest_key, mask_nik, redact_text

# Parser processes import this module; SQLAlchemy, the models and rich would add ~0.6 s to each
# start-up, so they are imported inside the functions that use them.
if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from storage.engine import Database

log = logging.getLogger(__name__)

TABLE = "dtsen_record"
STAGING_TABLE = "dtsen_record__staging"
OLD_TABLE = "dtsen_record__old"  # only inside the swap's transaction
NIK_INDEX = "ix_dtsen_record_nik_key"
# Rows per chunk (one commit each): per-chunk costs vanish, memory stays flat (~10 MB a chunk).
CHUNK_ROWS = 25_000
# Parser processes take ~0.9 s to start (imports, NIK tables) and save ~15 µs a row (their
# numpy path, two cores): below ~60k rows (~7 MB) parsing in this process is as fast. 50k rows:
# 1.1-1.2 s here, 1.3-1.4 s with processes; 200k rows: 4.3-4.8 s here, 2.1-2.3 s with them.
PARALLEL_MIN_BYTES = 8_000_000
SQLITE_BUSY_TIMEOUT_S = 15.0  # as storage.engine, without importing SQLAlchemy here

REQUIRED_FIELDS = ("nik", "nama", "tanggal_lahir", "jenis_kelamin", "kode_wilayah", "desil")
# Columns extracts often carry and --map accepts, but that are not stored: eligibility does not
# use them, and the city has no reason to keep every resident's address or family card number.
OPTIONAL_FIELDS = ("no_kk", "alamat")
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
MAX_NAMA = 200
# Longest line (with its newline) of a CSV extract: a DTSEN row is ~100-300 bytes. Anything
# longer is another kind of file, and unbounded it cost memory: a 300 MB header line took
# 949 MB, a 2 GB one ran out of memory.
MAX_LINE_BYTES = 64 * 1024
# Largest block handed to a parser process (a block is sized to CHUNK_ROWS average lines).
_MAX_BLOCK_BYTES = 1 << 24


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


class DtsenImportError(Exception):
    """The import was aborted and the previous table is still in service; one-line message."""


@dataclass(frozen=True)
class ImportSummary:
    """What an import did: rows loaded, rows skipped and why, and how long it took."""

    source_name: str
    rows_loaded: int
    rows_skipped: int
    skipped_by_reason: Mapping[SkipReason, int]
    seconds: float
    report_path: Path | None

    @property
    def rows_read(self) -> int:
        """Data rows in the file (blank lines not counted)."""
        return self.rows_loaded + self.rows_skipped

    @property
    def rows_per_second(self) -> float:
        """Data rows handled per second, end to end."""
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for a terminal or a log (counts only, no personal data)."""
        reasons = ", ".join(
            f"{reason} {count:,}" for reason, count in self.skipped_by_reason.items()
        )
        return (
            f"loaded {self.rows_loaded:,} rows from {self.source_name}, "
            f"skipped {self.rows_skipped:,}{f' ({reasons})' if reasons else ''}, "
            f"in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)"
        )


def parse_column_map(text: str) -> dict[str, str]:
    """`nik=NIK_ART,nama=NAMA` -> {"nik": "NIK_ART", "nama": "NAMA"}; ValueError when malformed."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        field, sep, column = part.partition("=")
        field = field.strip().casefold()
        if not sep or not column.strip():
            raise ValueError(f"expected FIELD=COLUMN, got {part.strip()!r}")
        if field not in FIELDS:
            raise ValueError(f"unknown field {field!r}; fields are {', '.join(FIELDS)}")
        mapping[field] = column.strip()
    return mapping


# --- Reading and validating rows (in parser processes, or in a thread for small files) --------

# A loaded row, in staging-table column order: id (the source line), nik_hash (the 32-byte
# HMAC; a bytearray because Python 3.11's sqlite3 binds bytes through its adapter lookup, ~20 %
# of a row's insert cost), nik_key (its first 8 bytes as an integer), nama, tanggal_lahir
# (ISO), jenis_kelamin, kode_wilayah, desil.
Row = tuple[int, bytearray, int, str, str, str, str, int]
# A skipped row for the report: line, reason, detail (a code, never the value), masked NIK.
BadRow = tuple[int, str, str, str]
# A data row of the source: the line it starts on (the header is line 1) and its cells as text.
Record = tuple[int, list[str]]
NikArray = npt.NDArray[np.int64]
LineArray = npt.NDArray[np.int32]


@dataclass
class _Parsed:
    """One chunk after validation: rows to load, rows skipped, and the NIKs for de-duplication."""

    rows: list[Row]
    bad: list[BadRow]
    niks: NikArray
    lines: LineArray


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class _KeyedHash:
    """HMAC-SHA256 digests equal to `domain.pii.identifier_digest`, at less than half the cost.

    The keyed inner and outer states are computed once and copied per value; `hmac.new` redoes
    the key schedule every time (~2 µs vs ~0.8 µs a value: 3 s over Kota Bekasi).
    """

    def __init__(self, secret: bytes) -> None:
        key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
        key = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(key.translate(_IPAD))
        self.outer = hashlib.sha256(key.translate(_OPAD))

    def __call__(self, value: str) -> bytes:
        inner = self.inner.copy()
        inner.update(value.encode("ascii"))
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _normalise_header(name: object) -> str:
    text = "" if name is None else str(name)
    return text.replace("\ufeff", "").strip().casefold().replace(" ", "_").replace("-", "_")


@dataclass(frozen=True)
class _Columns:
    """Where each stored field sits in a row of the source file."""

    required: tuple[int, ...]  # indexes of REQUIRED_FIELDS, in that order

    @property
    def width(self) -> int:
        """Cells a row is split into before the rest of the line, which is never read."""
        return max(self.required) + 1

    @classmethod
    def resolve(cls, header: Sequence[object], column_map: Mapping[str, str]) -> _Columns:
        """Find every field in the header row; DtsenImportError naming what is missing."""
        names = [_normalise_header(cell) for cell in header]
        position: dict[str, int] = {}
        for index, name in enumerate(names):
            position.setdefault(name, index)
        found: dict[str, int] = {}
        missing: list[str] = []
        for field in REQUIRED_FIELDS:  # the optional ones are not stored: nothing to find
            wanted = _normalise_header(column_map.get(field, field))
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


# Spellings of jenis_kelamin in extracts, matched as is and after strip().casefold().
_GENDERS = {
    "L": "L", "P": "P", "l": "L", "lk": "L", "laki-laki": "L", "laki laki": "L", "lakilaki": "L",
    "laki": "L", "pria": "L", "m": "L", "male": "L", "1": "L",
    "p": "P", "pr": "P", "perempuan": "P", "wanita": "P", "f": "P", "female": "P", "2": "P",
}  # fmt: skip
_DESILS = {str(n): n for n in range(1, 11)}
# Caches of normalised cell texts are cleared past this size, so memory stays flat. Birth
# dates repeat across the file (~40k distinct).
_CACHE_LIMIT = 100_000
# Reason codes as plain str: marshal (the parser processes' wire format) refuses str subclasses.
_SHORT_ROW = SkipReason.SHORT_ROW.value
_BAD_NIK = SkipReason.BAD_NIK.value
_MISSING_NAMA = SkipReason.MISSING_NAMA.value
_BAD_DATE = SkipReason.BAD_DATE.value
_BAD_JENIS_KELAMIN = SkipReason.BAD_JENIS_KELAMIN.value
_BAD_KODE_WILAYAH = SkipReason.BAD_KODE_WILAYAH.value
_BAD_DESIL = SkipReason.BAD_DESIL.value
_DUPLICATE_NIK = SkipReason.DUPLICATE_NIK.value
_POWERS_OF_TEN = 10 ** np.arange(15, -1, -1, dtype=np.int64)
# For `_Validator.block`: digits as numbers, and where the digits of a date are.
_BIRTH_FIELD_WEIGHTS = 10 ** np.arange(5, -1, -1, dtype=np.int32)
_YEAR_WEIGHTS = 10 ** np.arange(3, -1, -1, dtype=np.int32)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int32)
_DATE_SEPARATORS = np.array([ord("-"), ord("/"), ord(".")], np.uint8)
_DMY_DIGITS = [0, 1, 3, 4, 6, 7, 8, 9]
_YMD_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]
_DMY_TO_ISO = [6, 7, 8, 9, 2, 3, 4, 5, 0, 1]  # DD-MM-YYYY -> YYYY?MM?DD (separators reset)
_Bytes = npt.NDArray[np.uint8]


class _Validator:
    """Turns records into rows for the staging table, or into skipped rows with a reason."""

    def __init__(self, columns: _Columns, *, secret: bytes, today: date) -> None:
        self.columns = columns
        self.today = today
        self.hash = _KeyedHash(secret)
        self._dates: dict[str, str] = {}
        self._codes: dict[str, str] = {}
        # check_nik's sets as lookup tables for `block`: province code and DDMMYY -> valid.
        provinces, births = nik_fast_sets(today)
        self._provinces = np.zeros(100, np.bool_)
        self._provinces[[int(code) for code in provinces if len(code) == 2]] = True
        self._births = np.zeros(1_000_000, np.bool_)
        self._births[[int(field) for field in births]] = True
        self._today = today.year * 10_000 + today.month * 100 + today.day

    def chunks(self, records: Iterable[Record], chunk_rows: int) -> Iterator[_Parsed]:
        """The hot loop: common values hit dicts, anything odd takes a slow path."""
        required = itemgetter(*self.columns.required)
        # check_nik's fast path, inlined (one Python call fewer per row); failures take the
        # full decoder in _slow_nik for their reason.
        provinces, births = nik_fast_sets(self.today)
        nik_at = self.columns.required[0]
        inner_copy = self.hash.inner.copy
        outer_copy = self.hash.outer.copy
        dates = self._dates
        genders = _GENDERS
        desils = _DESILS
        rows: list[Row] = []
        bad: list[BadRow] = []
        niks: list[str] = []
        for line, cells in records:
            try:
                nik, nama, born, gender, code, desil_text = required(cells)
            except IndexError:
                if not _blank(cells):  # a blank line is not a row
                    nik_text = cells[nik_at].strip() if len(cells) > nik_at else ""
                    bad.append((line, _SHORT_ROW, f"{len(cells)}_cells", mask_nik(nik_text)))
                continue
            if not (
                len(nik) == 16
                and nik.isdigit()
                and nik.isascii()
                and nik[:2] in provinces
                and nik[6:12] in births
                and nik[12:] != "0000"
            ):
                reason, nik = self._slow_nik(nik)
                if reason is not None:
                    if not _blank(cells):  # a row of empty cells is not a row either
                        bad.append((line, _BAD_NIK, reason, nik))
                    continue
            nama = nama.strip()
            if not nama:
                bad.append((line, _MISSING_NAMA, "empty", mask_nik(nik)))
                continue
            iso = dates.get(born)
            if iso is None:
                iso, detail = self._slow_date(born)
                if iso is None:
                    bad.append((line, _BAD_DATE, detail, mask_nik(nik)))
                    continue
            sex = genders.get(gender)
            if sex is None:
                sex = genders.get(gender.strip().casefold())
                if sex is None:
                    bad.append((line, _BAD_JENIS_KELAMIN, "unknown", mask_nik(nik)))
                    continue
            # A fresh 10-character string costs more to hash for a dict than to check.
            kode = code if len(code) == 10 and code.isdigit() and code.isascii() else None
            if kode is None:
                kode = self._slow_code(code)
                if kode is None:
                    bad.append((line, _BAD_KODE_WILAYAH, "not_10_digits", mask_nik(nik)))
                    continue
            desil = desils.get(desil_text)
            if desil is None:
                desil, detail = _slow_desil(desil_text)
                if desil is None:
                    bad.append((line, _BAD_DESIL, detail, mask_nik(nik)))
                    continue
            # HMAC-SHA256 inlined (see _KeyedHash): a method call per row is measurable here.
            inner = inner_copy()
            inner.update(nik.encode())
            outer = outer_copy()
            outer.update(inner.digest())
            digest = outer.digest()
            key = digest_key(digest)
            rows.append((line, bytearray(digest), key, nama[:MAX_NAMA], iso, sex, kode, desil))
            niks.append(nik)
            if len(rows) >= chunk_rows:
                yield _chunk(rows, bad, niks)
                rows, bad, niks = [], [], []
        yield _chunk(rows, bad, niks)

    def block(self, text: str, *, delimiter: str, width: int, first_line: int) -> _Parsed:
        """Validate a block of whole CSV lines. numpy checks every row in the usual form at
        once; only the others (other spellings, bad rows, quoted fields) go through `chunks`.

        Per row, Python then only hashes and builds the tuple. `chunks` spends ~1 µs a row on
        each of two lookups that miss the CPU caches (40k birth dates, 73k NIK birth fields);
        here a block of 25k rows takes ~3 µs a row instead of ~10.
        """
        if "\r" in text:  # Windows line ends
            text = text.replace("\r\n", "\n")
            if "\r" in text:  # a lone CR: only the line-by-line reader knows what it means
                return self._by_row(text, delimiter, width, first_line)
        if not text.endswith("\n"):  # the last line of a file without a final newline
            text += "\n"
        data = np.frombuffer(text.encode(), np.uint8)
        if len(data) < 64:  # too short to be worth it (and shorter than a window below)
            return self._by_row(text, delimiter, width, first_line)
        ends = np.flatnonzero(data == 10)  # line ends
        starts = np.concatenate(([0], ends[:-1] + 1))
        # The cells a row is cut into: cell k runs from after the k-th delimiter of its line to
        # the next one, the last of `width` cells to the next delimiter or the line end.
        cuts = np.flatnonzero(data == ord(delimiter))
        first = np.searchsorted(cuts, starts)
        found = np.searchsorted(cuts, ends) - first
        if not len(cuts):
            return self._by_row(text, delimiter, width, first_line)
        nth = np.minimum(first[:, None] + np.arange(width), len(cuts) - 1)
        cell_end = np.where(np.arange(width) < found[:, None], cuts[nth], ends[:, None])
        cell_start = np.empty_like(cell_end)
        cell_start[:, 0] = starts
        cell_start[:, 1:] = cell_end[:, :-1] + 1
        fast = found >= width - 1
        quotes = np.flatnonzero(data == ord('"'))
        if len(quotes):
            quote_first = np.searchsorted(quotes, starts)
            quoted = np.searchsorted(quotes, ends) - quote_first
            if (quoted % 2).any():  # a quoted field runs over a line end
                return self._by_row(text, delimiter, width, first_line)
            # A quote after the last stored cell (an address) changes none of them.
            first_quote = quotes[np.minimum(quote_first, len(quotes) - 1)]
            fast &= (quoted == 0) | (first_quote > cell_end[:, width - 1])

        def cells(column: int, size: int) -> tuple[npt.NDArray[np.bool_], _Bytes]:
            """Whether each row's cell has `size` bytes, and those bytes (rows x size)."""
            begin = cell_start[:, column]
            # A gather of whole rows from a view of every `size`-byte window: ~10x faster
            # than indexing each byte.
            windows = sliding_window_view(data, size)
            return cell_end[:, column] - begin == size, windows[
                np.minimum(begin, len(windows) - 1)
            ]

        nik_at, nama_at, born_at, sex_at, code_at, desil_at = self.columns.required
        # NIK: check_nik's fast path, on every row at once.
        ok, nik = cells(nik_at, 16)
        digits = nik - 48  # uint8: anything but a digit wraps above 9
        ok &= (digits <= 9).all(axis=1)
        digits = np.minimum(digits, 9)  # rows with other bytes are out already; keep in range
        ok &= self._provinces[digits[:, 0] * 10 + digits[:, 1]]
        ok &= self._births[digits[:, 6:12].astype(np.int32) @ _BIRTH_FIELD_WEIGHTS]
        fast &= ok & digits[:, 12:].any(axis=1)
        # Birth date: DD-MM-YYYY (or with / or .) or YYYY-MM-DD, a real day from 1900 to today.
        ok, born = cells(born_at, 10)
        is_digit = (born - 48) <= 9
        dmy = (
            is_digit[:, _DMY_DIGITS].all(axis=1)
            & (born[:, 2] == born[:, 5])
            & np.isin(born[:, 2], _DATE_SEPARATORS)
        )
        ymd = is_digit[:, _YMD_DIGITS].all(axis=1) & (born[:, 4] == 45) & (born[:, 7] == 45)
        iso = np.where(dmy[:, None], born[:, _DMY_TO_ISO], born)
        iso[:, [4, 7]] = ord("-")
        numbers = (iso - 48).astype(np.int32)
        year = numbers[:, :4] @ _YEAR_WEIGHTS
        month = numbers[:, 5] * 10 + numbers[:, 6]
        day = numbers[:, 8] * 10 + numbers[:, 9]
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        last_day = _MONTH_DAYS[np.clip(month, 0, 12)] + ((month == 2) & leap)
        ok &= (dmy | ymd) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= last_day)
        fast &= ok & (year >= 1900) & (year * 10_000 + month * 100 + day <= self._today)
        # jenis_kelamin L or P, kode_wilayah ten digits, desil 1 to 10.
        ok, sex = cells(sex_at, 1)
        fast &= ok & ((sex[:, 0] == ord("L")) | (sex[:, 0] == ord("P")))
        ok, code = cells(code_at, 10)
        fast &= ok & ((code - 48) <= 9).all(axis=1)
        ok, desil = cells(desil_at, 1)
        ok2, desil2 = cells(desil_at, 2)
        fast &= (ok & (desil[:, 0] >= ord("1")) & (desil[:, 0] <= ord("9"))) | (
            ok2 & (desil2[:, 0] == ord("1")) & (desil2[:, 1] == ord("0"))
        )
        # nama: at most MAX_NAMA bytes (longer ones are cut on the slow path), starting with an
        # ASCII letter or sign, so that stripping it cannot leave it empty.
        name_bytes = cell_end[:, nama_at] - cell_start[:, nama_at]
        name_first = data[np.minimum(cell_start[:, nama_at], len(data) - 1)]
        fast &= (name_bytes >= 1) & (name_bytes <= MAX_NAMA)
        fast &= (name_first > ord(" ")) & (name_first < 128)

        picked = np.flatnonzero(fast)
        names = _names(text, data, cell_start[picked, nama_at], cell_end[picked, nama_at])
        line_numbers = (picked + first_line).tolist()
        digests = self._digests(np.ascontiguousarray(nik[picked]).view("S16").ravel().tolist())
        isos = _texts(iso[picked])
        sexes = np.where(sex[picked, 0] == ord("L"), "L", "P").tolist()
        codes = _texts(code[picked])
        desils = np.where(desil2[picked, 1] == ord("0"), 10, desil[picked, 0] - 48).tolist()
        # digest_key of every row at once: the first 8 of each 32 bytes, big-endian.
        keys = np.frombuffer(b"".join(digests), ">i8")[::4].tolist()
        rows = list(
            zip(line_numbers, digests, keys, names, isos, sexes, codes, desils, strict=True)
        )
        parsed = _Parsed(
            rows=rows,
            bad=[],
            niks=digits[picked].astype(np.int64) @ _POWERS_OF_TEN,
            lines=(picked + first_line).astype(np.int32),
        )
        slow = np.flatnonzero(~fast)
        if not len(slow):
            return parsed
        raw = text if text.isascii() else data.tobytes()
        records = [
            (first_line + index, _split(_text(raw[start:end]), delimiter, width))
            for index, start, end in zip(
                slow.tolist(), starts[slow].tolist(), ends[slow].tolist(), strict=True
            )
        ]
        return _merge(parsed, next(self.chunks(records, sys.maxsize)))

    def _by_row(self, text: str, delimiter: str, width: int, first_line: int) -> _Parsed:
        """A block the numpy path does not read, validated a row at a time."""
        records = _csv_records(text, delimiter, width=width, quoted=False, first_line=first_line)
        return next(self.chunks(records, sys.maxsize))

    def _digests(self, niks: list[bytes]) -> list[bytearray]:
        """The keyed hash of each NIK (the HMAC inlined, as in `chunks`)."""
        inner_copy = self.hash.inner.copy
        outer_copy = self.hash.outer.copy
        digests: list[bytearray] = []
        append = digests.append
        for nik in niks:
            inner = inner_copy()
            inner.update(nik)
            outer = outer_copy()
            outer.update(inner.digest())
            append(bytearray(outer.digest()))
        return digests

    def _slow_nik(self, text: str) -> tuple[str | None, str]:
        """(None, digits) for a valid NIK in an unusual form, else (reason, masked text)."""
        # A leading apostrophe is how spreadsheets are told to keep digits as text.
        digits = clean_nik_digits(text.lstrip("'’"))
        reason = check_nik(digits, self.today)
        if reason is None:
            return None, digits
        return str(reason), mask_nik(digits)

    def _slow_date(self, text: str) -> tuple[str | None, str]:
        """(ISO date, "") for a date in any accepted form, else (None, reason)."""
        value = text.strip()
        try:
            if len(value) == 10 and value[4] == "-":
                born = date.fromisoformat(value)
            elif len(value) == 10 and value[2] in "-/." and value[5] == value[2]:
                born = date(int(value[6:]), int(value[3:5]), int(value[:2]))
            else:
                born = parse_date(value, today=self.today)
        except InvalidDate as error:
            return None, str(error.reason)
        except ValueError:
            return None, "impossible"
        if born > self.today:
            return None, "future"
        if born.year < 1900:
            return None, "too_old"
        if len(self._dates) >= _CACHE_LIMIT:
            self._dates.clear()
        self._dates[text] = iso = born.isoformat()
        return iso, ""

    def _slow_code(self, text: str) -> str | None:
        """The 10 digits of a kelurahan code written with dots or spaces, or None."""
        code = self._codes.get(text)
        if code is not None:
            return code
        code = text.strip().replace(".", "").replace(" ", "")
        if len(code) != 10 or not (code.isascii() and code.isdigit()):
            return None
        if len(self._codes) >= _CACHE_LIMIT:
            self._codes.clear()
        self._codes[text] = code
        return code


def _chunk(rows: list[Row], bad: list[BadRow], niks: list[str]) -> _Parsed:
    """Package a chunk, turning its NIKs into int64s (12 bytes a row with the line)."""
    digits = np.frombuffer("".join(niks).encode("ascii"), dtype=np.uint8).reshape(-1, 16)
    return _Parsed(
        rows=rows,
        bad=bad,
        niks=(digits.astype(np.int64) - 48) @ _POWERS_OF_TEN,
        lines=np.fromiter(map(itemgetter(0), rows), np.int32, len(rows)),
    )


def _names(text: str, data: _Bytes, starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
           ) -> list[str]:  # fmt: skip
    """The cells between these byte offsets, stripped."""
    cuts = map(slice, starts.tolist(), ends.tolist())
    if text.isascii():  # byte offsets are character offsets
        return list(map(str.strip, map(text.__getitem__, cuts)))
    raw = data.tobytes()
    return [raw[cut].decode().strip() for cut in cuts]


def _texts(cells: _Bytes) -> list[str]:
    """Rows of ASCII bytes (rows x size) as strings."""
    return [
        cell.decode()
        for cell in np.ascontiguousarray(cells).view(f"S{cells.shape[1]}").ravel().tolist()
    ]


def _text(cell: str | bytes) -> str:
    return cell if isinstance(cell, str) else cell.decode()


def _split(line: str, delimiter: str, width: int) -> list[str]:
    """One line's cells, as `_csv_records` would cut them."""
    if '"' in line:
        return next(csv.reader([line], delimiter=delimiter), [])
    return line.split(delimiter, width)


def _merge(many: _Parsed, few: _Parsed) -> _Parsed:
    """Two validated parts of one block, back in line order (the second one small)."""
    at = np.searchsorted(many.lines, few.lines)
    rows = many.rows
    for position, row in zip(at.tolist()[::-1], few.rows[::-1], strict=True):
        rows.insert(position, row)  # from the end, so earlier positions stay right
    return _Parsed(
        rows=rows,
        bad=few.bad,
        niks=np.insert(many.niks, at, few.niks),
        lines=np.insert(many.lines, at, few.lines),
    )


def _blank(cells: Sequence[str]) -> bool:
    """Whether a record holds nothing but delimiters and spaces: a blank line, not a row."""
    return not "".join(cells).replace(",", "").replace(";", "").strip()


def _slow_desil(text: str) -> tuple[int | None, str]:
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        return None, "not_a_number" if value else "empty"
    if not number.is_integer():
        return None, "not_a_number"
    if not 1 <= number <= 10:
        return None, "out_of_range"
    return int(number), ""


def _csv_records(
    text: str, delimiter: str, *, width: int, quoted: bool, first_line: int
) -> Iterable[Record]:
    """Data rows of a block of CSV text, with the line each one starts on.

    A record may be cut after its first `width` cells: the rest of the line (often a quoted
    address) is never read, so it is not split either.
    """
    plain = text.replace("\r\n", "\n") if "\r" in text else text  # Windows line ends
    if not quoted and "\r" not in plain:
        # The usual block: split in C, with no generator frame per row (with the inlined NIK
        # check: 3.7 % fewer instructions a row under cachegrind). The piece after the last
        # "\n" is empty.
        lines = plain.split("\n")
        if lines and not lines[-1]:
            lines.pop()
        cells = list(map(str.split, lines, itertools.repeat(delimiter), itertools.repeat(width)))
        if '"' in plain and not _requote(lines, cells, delimiter, width):
            return _csv_lines(
                io.StringIO(text, newline="\n"), delimiter, quoted=False, first_line=first_line
            )
        return zip(itertools.count(first_line), cells)
    # Lines end at "\n" only (str.splitlines would also split at \x85 or U+2028 inside a name).
    return _csv_lines(
        io.StringIO(text, newline="\n"), delimiter, quoted=quoted, first_line=first_line
    )


def _requote(lines: list[str], cells: list[list[str]], delimiter: str, width: int) -> bool:
    """Re-read with csv the lines whose first `width` cells hold a quote; False if a quoted
    field runs over a line end (the block then needs the line-joining reader)."""
    for index in [index for index, line in enumerate(lines) if '"' in line]:
        line = lines[index]
        if line.count('"') % 2:  # RFC 4180 doubles quotes inside fields: odd means open
            return False
        if any('"' in cell for cell in cells[index][:width]):
            cells[index] = next(csv.reader([line], delimiter=delimiter))
    return True


def _csv_lines(
    lines: Iterator[str], delimiter: str, *, quoted: bool, first_line: int
) -> Iterator[Record]:
    """Data rows of CSV lines that may hold quotes or "\r\n" endings."""
    if quoted:
        # Mostly quoted files: the csv module's C parser is the fast way.
        reader = csv.reader(lines, delimiter=delimiter)
        start = first_line
        for cells in reader:
            yield start, cells
            start = first_line + reader.line_num
        return
    # Mostly unquoted files: str.split is twice as fast as csv.reader (~0.6 µs a row). A line
    # with a quote goes through csv, joined with the next lines while a quoted field is open (an
    # odd number of quotes so far: RFC 4180 doubles quotes inside fields).
    line = first_line - 1
    for text in lines:
        line += 1
        if '"' not in text:
            yield line, text.rstrip("\r\n").split(delimiter)
            continue
        start = line
        while text.count('"') % 2:
            more = next(lines, None)
            if more is None:
                break
            text += more
            line += 1
        # Usually one record; a stray quote can swallow several lines, which are all read.
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for cells in reader:
            yield start + reader.line_num - 1, cells


def _cell_text(value: object) -> str:
    """A spreadsheet cell as the text a CSV export would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        # Numbers typed into Excel arrive as floats; an integral float below 2**53 is exact, and
        # only there can a NIK typed as a number be trusted.
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


@dataclass(frozen=True)
class _CsvLayout:
    """What the header line of a CSV told: columns, delimiter, splitter, where data starts."""

    columns: _Columns
    delimiter: str
    quoted: bool
    data_offset: int
    line_bytes: float  # average, from the first 64 KB

    @classmethod
    def read(cls, path: Path, column_map: Mapping[str, str]) -> _CsvLayout:
        """Read the header and sample the first lines; DtsenImportError if unusable."""
        with path.open("rb") as handle:
            first = handle.readline(MAX_LINE_BYTES + 1)
            if len(first) > MAX_LINE_BYTES:
                raise DtsenImportError(_too_long(path, 1))
            sample = handle.read(MAX_LINE_BYTES)
        if len(sample) == MAX_LINE_BYTES and b"\n" not in sample:
            raise DtsenImportError(_too_long(path, 2))
        try:
            header_text = first.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DtsenImportError(_not_utf8(path, 1)) from None
        delimiter = ";" if header_text.count(";") > header_text.count(",") else ","
        header = next(csv.reader([header_text], delimiter=delimiter), [])
        columns = _Columns.resolve(header, column_map)
        lines = max(sample.count(b"\n"), 1)
        # Quotes only count where the stored fields are: a quoted address at the end of the
        # line is never split.
        width = columns.width
        quoted_lines = sum(
            1
            for line in sample.decode("utf-8", "replace").split("\n")
            if '"' in line and any('"' in cell for cell in line.split(delimiter, width)[:width])
        )
        return cls(
            columns=columns,
            delimiter=delimiter,
            # More than one line in twenty with quotes: csv.reader beats split-with-fallback.
            quoted=quoted_lines > lines / 20,
            data_offset=len(first),
            line_bytes=len(sample) / lines if sample else 100.0,
        )


def _not_utf8(path: Path, line: int) -> str:
    return f"{path.name} is not UTF-8 text (line {line}): save it as CSV UTF-8 or XLSX"


def _too_long(path: Path, line: int) -> str:
    return (
        f"{path.name}: line {line} is longer than {MAX_LINE_BYTES // 1024} KiB, which no DTSEN "
        "row is: nothing imported, the previous table stays"
    )


def _is_xlsx(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PK\x03\x04"  # a zip archive: XLSX whatever the file's name


def _csv_blocks(
    path: Path, layout: _CsvLayout, block_bytes: int
) -> Iterator[tuple[int, int, int]]:
    """(offset, length, first line) of consecutive blocks of whole CSV records.

    A block ends at a newline outside quotes (an even number of quotes before it), so parser
    processes can each take a block; counting newlines gives each block's first line number.
    """
    with path.open("rb") as handle:
        offset = layout.data_offset
        handle.seek(offset)
        line = 2
        carry = b""
        while True:
            data = carry + handle.read(block_bytes)
            if not data:
                return
            # numpy finds a byte ~5x faster than bytes.count, in this process that the
            # parser processes share the two cores with (~0.25 s over Kota Bekasi).
            view = np.frombuffer(data, np.uint8)
            newlines = np.flatnonzero(view == ord("\n"))
            # Every line starts in this data (carry begins at a line start): check them all,
            # the unfinished last one too, before reading any further.
            lengths = np.diff(newlines, prepend=-1, append=len(data) - 1)
            too_long = np.flatnonzero(lengths > MAX_LINE_BYTES)
            if len(too_long):
                raise DtsenImportError(_too_long(path, line + int(too_long[0])))
            end = len(data)
            if len(data) > len(carry):  # not at the end of the file: cut after a newline
                end = data.rfind(b"\n") + 1
                while end > 0 and np.count_nonzero(view[:end] == ord('"')) % 2:
                    end = data.rfind(b"\n", 0, end - 1) + 1
                if end == 0:  # one record longer than a block: read on
                    carry = data
                    if len(carry) > 64 * block_bytes:
                        raise DtsenImportError(f"{path.name}: a quoted field never ends")
                    continue
            yield offset, end, line
            line += int(np.searchsorted(newlines, end))
            offset += end
            carry = data[end:]


def _read_block(handle: BinaryIO, path: Path, offset: int, length: int, line: int) -> str:
    """The text of one block, decoded; DtsenImportError naming the line of bad bytes."""
    handle.seek(offset)
    data = handle.read(length)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DtsenImportError(_not_utf8(path, line + data.count(b"\n", 0, error.start))) from None
    return text


def _csv_chunks(path: Path, layout: _CsvLayout, validator: _Validator, chunk_rows: int
                ) -> Iterator[tuple[_Parsed, int]]:  # fmt: skip
    """Validated chunks of a whole CSV in this thread, with the byte position reached."""
    with path.open("rb") as handle:
        for offset, length, line in _csv_blocks(path, layout, 1 << 22):
            text = _read_block(handle, path, offset, length, line)
            records = _csv_records(
                text,
                layout.delimiter,
                width=layout.columns.width,
                quoted=layout.quoted,
                first_line=line,
            )
            for parsed in validator.chunks(records, chunk_rows):
                yield parsed, offset + length


def _xlsx_chunks(path: Path, column_map: Mapping[str, str], secret: bytes, today: date,
                 chunk_rows: int) -> Iterator[tuple[_Parsed, int, int | None]]:  # fmt: skip
    """Validated chunks of the first sheet of an XLSX, with rows read and the sheet's size."""
    from openpyxl import load_workbook

    with warnings.catch_warnings():
        # Files from other tools lack openpyxl's default style; the data reads fine.
        warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")
        try:
            # Read-only mode streams the sheet's XML instead of building it in memory.
            workbook = load_workbook(path, read_only=True, data_only=True)
        except Exception as error:  # a broken archive raises many different types
            raise DtsenImportError(f"cannot open {path.name} as XLSX: {error}") from None
    try:
        sheet = workbook.worksheets[0]
        total = sheet.max_row
        rows = sheet.iter_rows(values_only=True)
        header: tuple[object, ...] = ()
        line = 0
        for values in rows:
            line += 1
            if any(value is not None for value in values):
                header = values
                break
        validator = _Validator(_Columns.resolve(header, column_map), secret=secret, today=today)
        reached = [line]

        def records() -> Iterator[Record]:
            for number, values in enumerate(rows, start=line + 1):
                reached[0] = number
                yield number, [_cell_text(value) for value in values]

        for parsed in validator.chunks(records(), chunk_rows):
            yield parsed, reached[0], total
    finally:
        workbook.close()


# --- Loaders: one small strategy per database dialect ------------------------------------------


class _Loader(Protocol):
    """Stages rows and swaps them in. Blocking calls, made from the import's thread."""

    def prepare(self) -> None: ...

    def write(self, rows: list[Row]) -> None: ...

    def remove(self, lines: list[int]) -> None: ...

    def rows_in_service(self) -> int: ...

    def swap(self, *, source_name: str, loaded: int, skipped: int, actor: str) -> None: ...

    def interrupt(self) -> None: ...

    def discard(self) -> None: ...


_COLUMNS = ("id", "nik_hash", "nik_key", "nama", "tanggal_lahir", "jenis_kelamin",
            "kode_wilayah", "desil")  # fmt: skip
# Rows per INSERT statement. One statement a row spent ~25 % of the write (the single writer's
# share of the import) in sqlite3's per-statement work: step, reset, releasing the GIL. 64 rows
# of 8 values stay under the 999 variables of SQLite builds before 3.32.
_ROWS_PER_INSERT = 64
_PLACES = f"({', '.join('?' * len(_COLUMNS))})"
_INSERT_ONE = f"INSERT INTO {STAGING_TABLE} ({', '.join(_COLUMNS)}) VALUES {_PLACES}"
_INSERT_MANY = _INSERT_ONE + f", {_PLACES}" * (_ROWS_PER_INSERT - 1)


def _sqlite_connect(path: str) -> sqlite3.Connection:
    """A plain sqlite3 connection for staging writes, tuned like the engine's."""
    connection = sqlite3.connect(
        path,
        timeout=SQLITE_BUSY_TIMEOUT_S,
        isolation_level=None,  # explicit BEGIN IMMEDIATE / COMMIT
        check_same_thread=False,  # the import's thread; interrupt() comes from the event loop
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    # A checkpoint thread copies the WAL into the database file while parsing goes on; without
    # this every commit here would also checkpoint and wait for an fsync.
    connection.execute("PRAGMA wal_autocheckpoint=0")
    return connection


def _sqlite_write(connection: sqlite3.Connection, rows: list[Row]) -> None:
    # One short transaction per chunk, so the bot's own writes interleave with the import.
    # Line numbers are the ids and chunks arrive in file order: rows append to the b-tree.
    whole = len(rows) - len(rows) % _ROWS_PER_INSERT
    values = itertools.chain.from_iterable(itertools.islice(rows, whole))
    statements = zip(*[values] * (_ROWS_PER_INSERT * len(_COLUMNS)), strict=False)
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(_INSERT_MANY, statements)
        connection.executemany(_INSERT_ONE, rows[whole:])
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class _SqliteLoader:
    """Loads through the plain `sqlite3` module on the database file.

    SQLAlchemy Core executemany reaches ~155k rows/s on this machine and plain sqlite3 ~375k,
    and the async driver adds a thread hop per statement: the import is the one place where
    that ceiling matters. The import runs on a worker thread, never on the event loop, and big
    files are written by the parser processes themselves through the same `_sqlite_write`.

    The swap: SQLite keeps an index's name when its table is renamed and cannot rename an
    index, so an index built on the staging table would keep a staging name for good. Instead
    one transaction drops the old index, renames the old table aside and the staging table into
    place, only then creates `ix_dtsen_record_nik_key`, and drops the old table last: the live
    table always has the index under its real name and repeated imports never collide. The
    price is that the index is built inside the swap, holding the write lock ~0.8 s per million
    rows (~2-3 s for Kota Bekasi): bot writes wait (busy_timeout 15 s), readers do not (WAL) and
    see the old table until the commit.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._lock_file: IO[str] | None = None
        self._index_sql = ""
        self._swapped = False
        self._checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._connection is not None, "prepare() first"
        return self._connection

    @property
    def _lock_path(self) -> str:
        return f"{self.path}.dtsen-import.lock"

    def prepare(self) -> None:
        # One import at a time per database file. The kernel drops the lock if we are killed,
        # so any staging table found once it is held is a leftover.
        self._lock_file = _take_import_lock(self._lock_path)
        self._connection = db = _sqlite_connect(self.path)
        # The index build in the swap sorts every nik_key in this thread: with integer keys,
        # sorter threads (PRAGMA threads=2) made it slower here (3M keys: 2.4 s, 2.8 s CPU vs
        # 2.0 s, 1.9 s CPU), and a bigger cache_size too (3.9 s); mmap_size did not help.
        # This SQLite is built with SECURE_DELETE, which zero-fills every freed page: dropping a
        # 2,6 M-row table would write ~1 GB. FAST still purges live b-tree pages; the freed
        # pages of the previous extract are overwritten by the next import.
        db.execute("PRAGMA secure_delete=FAST")
        found = db.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        if found is None:
            raise DtsenImportError(f"table {TABLE} is missing: run `rentan-bot migrate` first")
        index = db.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND name = ?", (NIK_INDEX,)
        ).fetchone()
        self._index_sql = index[0] if index else f"CREATE INDEX {NIK_INDEX} ON {TABLE} (nik_key)"
        # The staging table is made from the live table's own DDL, so what gets renamed into
        # place is exactly what the migrations built.
        staging_sql = re.sub(
            rf'^CREATE TABLE\s+"?{TABLE}"?', f"CREATE TABLE {STAGING_TABLE}", found[0]
        )
        leftovers = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE ? ESCAPE '!'",
                (TABLE.replace("_", "!_") + "!_!_%",),
            )
        ]
        db.execute("BEGIN IMMEDIATE")
        for name in leftovers:
            log.info("dropping %s left by an interrupted import", name)
            db.execute(f'DROP TABLE "{name}"')
        db.execute(staging_sql)
        db.execute("COMMIT")
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copy committed pages from the WAL into the database file, beside the writers."""
        connection = sqlite3.connect(
            self.path, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None
        )
        try:
            # PASSIVE never blocks writers or readers; it copies what it can.
            while not self._checkpoints.wait(0.2):
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()

    def write(self, rows: list[Row]) -> None:
        _sqlite_write(self._db, rows)

    def remove(self, lines: list[int]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        db.executemany(f"DELETE FROM {STAGING_TABLE} WHERE id = ?", [(line,) for line in lines])
        db.execute("COMMIT")

    def rows_in_service(self) -> int:
        # Only imports change the table, and this one holds the import lock.
        (count,) = self._db.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        return int(count)

    def swap(self, *, source_name: str, loaded: int, skipped: int, actor: str) -> None:
        self._stop_checkpoints()
        db = self._db
        # Naive UTC in SQLAlchemy's SQLite DATETIME format, as models.UTCDateTime stores it.
        imported_at = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        db.execute("BEGIN IMMEDIATE")
        try:
            # The old table is dropped after the index is built: pages freed earlier in this
            # transaction would be reused for the index and read back first (a re-import's
            # index took 2.8-3.2 s that way, 2.1-2.9 s so).
            db.execute(f"DROP INDEX IF EXISTS {NIK_INDEX}")
            db.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD_TABLE}")
            db.execute(f"ALTER TABLE {STAGING_TABLE} RENAME TO {TABLE}")
            db.execute(self._index_sql)
            db.execute(f"DROP TABLE {OLD_TABLE}")
            db.execute(
                "INSERT INTO dtsen_import (imported_at, source_name, rows_loaded, rows_skipped, "
                "actor) VALUES (?, ?, ?, ?, ?)",
                (imported_at, source_name, loaded, skipped, actor),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._swapped = True
        # Copy the new table into the database file now rather than make the bot's next commit
        # pay for it, and shrink the WAL (it held the whole staging table). Readers get a second
        # to finish; if one holds on, the WAL is just truncated by a later checkpoint.
        db.execute("PRAGMA busy_timeout=1000")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def interrupt(self) -> None:
        # Stops a statement running on the import's thread (a chunk, or the index build in the
        # swap): its transaction rolls back and the old table stays. Thread-safe per sqlite3.
        if self._connection is not None:
            self._connection.interrupt()

    def _stop_checkpoints(self) -> None:
        self._checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
            self._checkpointer = None

    def discard(self) -> None:
        self._stop_checkpoints()
        try:
            if self._connection is not None:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                if not self._swapped:
                    self._connection.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
                self._connection.close()
        finally:
            self._connection = None
            if self._lock_file is not None:
                # Removed while still locked, so it is not left beside the database; an import
                # waiting to lock it notices (see _take_import_lock).
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._lock_path)
                self._lock_file.close()  # releases the flock
                self._lock_file = None


def _take_import_lock(path: str) -> IO[str]:
    """The import's lock file, opened and flocked; DtsenImportError if another import holds it.

    Its holder removes the file when done. Whoever opened the file just before that removal
    then locks a file no longer at `path`: so the locked file must still be the one there, or
    it is opened anew.
    """
    while True:
        handle = open(path, "a")  # noqa: SIM115 (held for the whole import)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise DtsenImportError("another DTSEN import is running on this database") from None
        try:
            current = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            return handle
        handle.close()


# Key of the session-level advisory lock that serialises PostgreSQL imports ("DTSEN" in ASCII).
PG_IMPORT_LOCK = 0x4454_5345_4E


class _PostgresLoader:
    """Loads PostgreSQL with COPY (asyncpg `copy_records_to_table`) on one dedicated connection.

    The import runs on a worker thread; each step is run on the event loop that owns the async
    engine. The connection holds a session-level advisory lock for the whole import, so a second
    import *waits* for the first to finish and then runs (serialised, never interleaved): the
    server drops the lock when the session ends, including when the importing process is killed,
    and waiting rather than refusing means an import started right after a crash is not turned
    away while the server notices the dead session. Its staging table is dropped first: holding
    the lock, any staging table found is a leftover.

    The staging table gets its primary key and index before the swap, under staging
    names; the swap transaction only drops the old table and renames (PostgreSQL can rename
    indexes), so lookups wait only for the drop and the renames, never for an index build.
    """

    def __init__(self, engine: AsyncEngine, loop: asyncio.AbstractEventLoop) -> None:
        self._engine = engine
        self._loop = loop
        self._connection: AsyncConnection | None = None
        self._pg: Any = None  # the asyncpg connection under `_connection`
        self._pending: concurrent.futures.Future[None] | None = None
        self._swapped = False

    def _run(self, step: Coroutine[Any, Any, None]) -> None:
        self._wait(asyncio.run_coroutine_threadsafe(step, self._loop))

    def _flush(self) -> None:
        """Wait for the COPY in flight, if any (its error surfaces here)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._wait(pending)

    @staticmethod
    def _wait(step: concurrent.futures.Future[None]) -> None:
        try:
            step.result()
        except DtsenImportError:
            raise
        except Exception as error:
            if not type(error).__module__.startswith("asyncpg"):
                raise
            # One line, without the server's detail: a COPY error quotes the row's values.
            first = str(error).splitlines()[0] if str(error) else ""
            message = redact_text(f"{type(error).__name__}: {first}")
            raise DtsenImportError(f"database error: {message}") from None

    def prepare(self) -> None:
        async def open_and_lock() -> None:
            self._connection = await self._engine.connect()
            raw = await self._connection.get_raw_connection()
            pg = raw.driver_connection
            assert pg is not None, "an open pooled connection has its driver connection"
            self._pg = pg
            if not await pg.fetchval("SELECT pg_try_advisory_lock($1)", PG_IMPORT_LOCK):
                log.warning("another DTSEN import is running on this database: waiting for it")
                await pg.execute("SELECT pg_advisory_lock($1)", PG_IMPORT_LOCK)
            found = await pg.fetchval("SELECT to_regclass($1)", TABLE)
            if found is None:
                raise DtsenImportError(f"table {TABLE} is missing: run `rentan-bot migrate` first")
            async with pg.transaction():
                await pg.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
                await pg.execute(
                    f"CREATE TABLE {STAGING_TABLE} (LIKE {TABLE} INCLUDING CONSTRAINTS)"
                )

        self._run(open_and_lock())

    def write(self, rows: list[Row]) -> None:
        # Dates as date objects (binary COPY), built here while the previous COPY runs: the
        # server stores one chunk while this thread parses the next.
        fromiso = date.fromisoformat
        records = [(r[0], r[1], r[2], r[3], fromiso(r[4]), r[5], r[6], r[7]) for r in rows]
        self._flush()

        async def copy() -> None:
            await self._pg.copy_records_to_table(STAGING_TABLE, records=records, columns=_COLUMNS)

        self._pending = asyncio.run_coroutine_threadsafe(copy(), self._loop)

    def remove(self, lines: list[int]) -> None:
        self._flush()

        async def delete() -> None:
            await self._pg.execute(f"DELETE FROM {STAGING_TABLE} WHERE id = ANY($1::int[])", lines)

        self._run(delete())

    def rows_in_service(self) -> int:
        self._flush()
        counted: list[int] = []

        async def count() -> None:
            counted.append(int(await self._pg.fetchval(f"SELECT count(*) FROM {TABLE}")))

        self._run(count())
        return counted[0]

    def swap(self, *, source_name: str, loaded: int, skipped: int, actor: str) -> None:
        self._flush()

        async def index_and_swap() -> None:
            pg = self._pg
            await pg.execute(
                f"ALTER TABLE {STAGING_TABLE} ADD CONSTRAINT {STAGING_TABLE}_pkey PRIMARY KEY (id)"
            )
            await pg.execute(f"CREATE INDEX {NIK_INDEX}__staging ON {STAGING_TABLE} (nik_key)")
            await pg.execute(f"ANALYZE {STAGING_TABLE}")
            async with pg.transaction():
                await pg.execute(f"DROP TABLE {TABLE}")
                await pg.execute(f"ALTER TABLE {STAGING_TABLE} RENAME TO {TABLE}")
                await pg.execute(f"ALTER INDEX {NIK_INDEX}__staging RENAME TO {NIK_INDEX}")
                await pg.execute(f"ALTER INDEX {STAGING_TABLE}_pkey RENAME TO {TABLE}_pkey")
                await pg.execute(
                    "INSERT INTO dtsen_import (imported_at, source_name, rows_loaded, "
                    "rows_skipped, actor) VALUES ($1, $2, $3, $4, $5)",
                    datetime.now(UTC),
                    source_name,
                    loaded,
                    skipped,
                    actor,
                )
            self._swapped = True

        self._run(index_and_swap())

    def interrupt(self) -> None:
        """Nothing to interrupt from outside: the thread stops at its next chunk."""

    def discard(self) -> None:
        async def close() -> None:
            connection, self._connection = self._connection, None
            if connection is None:
                return
            try:
                if self._pg is not None and not self._pg.is_closed():
                    if not self._swapped:
                        await self._pg.execute(f"DROP TABLE IF EXISTS {STAGING_TABLE}")
                    await self._pg.execute("SELECT pg_advisory_unlock_all()")
            finally:
                self._pg = None
                await connection.close()

        pending, self._pending = self._pending, None
        if pending is not None:
            with contextlib.suppress(BaseException):  # failed or cancelled: dropped below
                pending.result()
        self._run(close())


# --- Parser processes -------------------------------------------------------------------------

_FRAME = struct.Struct("<Q")
_WORKER_CODE = "import storage.dtsen as m; m._worker_main()"


def _send(channel: IO[bytes], message: tuple[Any, ...]) -> None:
    data = marshal.dumps(message)
    channel.write(_FRAME.pack(len(data)) + data)
    channel.flush()


def _receive(channel: IO[bytes]) -> tuple[Any, ...] | None:
    head = channel.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(head)
    data = channel.read(size)
    if len(data) < size:
        # The sender died half-way through (killed on Ctrl-C, say): that ends its stream too.
        # Unpacking the rest would raise EOFError, killing the listener thread (a traceback on
        # the terminal) before it reports the end, and the coordinator would wait for ever.
        return None
    message: tuple[Any, ...] = marshal.loads(data)
    return message


def _worker_main() -> None:
    """A parser process: validates, hashes and writes the blocks it is given, in turn.

    Messages (marshal frames) on stdin: the config, then ("block", seq, offset, length, line) to
    parse and ("write", seq) once every earlier block is in the staging table. Answers on stdout:
    ("parsed", seq), ("written", seq, loaded, bad rows, NIK bytes, line bytes) or ("error", text).
    The rows never cross a pipe (pickling them cost ~1 µs a row, a third of the budget).
    """
    # The frames own file descriptor 1; anything printed by accident goes to stderr instead.
    output = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    # The hot loop allocates ~10 containers a row and makes no reference cycles: the cyclic
    # collector's passes over them cost ~1 µs a row here and would free nothing.
    gc.disable()
    commands = sys.stdin.buffer
    try:
        config = _receive(commands)
        assert config is not None
        source, db_path, required, delimiter, quoted, secret, today = config
        path = Path(source)
        columns = _Columns(tuple(required))
        validator = _Validator(columns, secret=secret, today=date.fromordinal(today))
        connection = _sqlite_connect(db_path)
        parsed: dict[int, _Parsed] = {}
        with path.open("rb") as handle:
            while (message := _receive(commands)) is not None:
                if message[0] == "block":
                    _, seq, offset, length, line = message
                    text = _read_block(handle, path, offset, length, line)
                    # One chunk per block: the coordinator sizes blocks to CHUNK_ROWS rows.
                    if quoted:
                        records = _csv_records(
                            text, delimiter, width=columns.width, quoted=True, first_line=line
                        )
                        parsed[seq] = next(validator.chunks(records, sys.maxsize))
                    else:
                        parsed[seq] = validator.block(
                            text, delimiter=delimiter, width=columns.width, first_line=line
                        )
                    _send(output, ("parsed", seq))
                else:
                    seq = message[1]
                    chunk = parsed.pop(seq)
                    _sqlite_write(connection, chunk.rows)
                    _send(output, ("written", seq, len(chunk.rows), chunk.bad,
                                   chunk.niks.tobytes(), chunk.lines.tobytes()))  # fmt: skip
        connection.close()
    except DtsenImportError as error:
        _send(output, ("error", str(error)))
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(1)  # the importing process is gone or stopping: nobody to tell
    except Exception as error:  # reported, not printed: the parent decides what to show
        _send(output, ("error", redact_text(f"parser process: {type(error).__name__}: {error}")))


class _ParserProcesses:
    """Parser processes that validate, hash and write blocks of a CSV, turns kept in file order.

    Each process parses a block, waits until every earlier block is written, writes its own
    (one SQLite writer at a time, rows appended in id order), then gets the next block. With
    two processes one writes while the other parses, so both cores stay busy and no row is ever
    pickled between processes.
    """

    def __init__(self, count: int, config: tuple[Any, ...]) -> None:
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self._messages: queue.Queue[tuple[int, tuple[Any, ...] | None]] = queue.Queue()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._listeners: list[threading.Thread] = []
        for number in range(count):
            # The secret travels over stdin, never in argv or the environment. A session of
            # their own keeps the terminal's Ctrl-C away from them: it is the importing
            # process's to handle (it kills them), and one arriving while a process was still
            # starting up printed a KeyboardInterrupt traceback. Killed or not, they stop at
            # EOF on stdin once the importing process is gone.
            process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_CODE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
            self._processes.append(process)
            self.tell(number, config)
            listener = threading.Thread(target=self._listen, args=(number, process), daemon=True)
            listener.start()
            self._listeners.append(listener)

    def _listen(self, number: int, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with contextlib.suppress(ValueError, OSError):  # closed by kill()
            while (message := _receive(process.stdout)) is not None:
                self._messages.put((number, message))
        self._messages.put((number, None))

    def tell(self, number: int, message: tuple[Any, ...]) -> None:
        stdin = self._processes[number].stdin
        assert stdin is not None
        try:
            _send(stdin, message)
        except OSError:  # it died; its listener reports why, or that it stopped
            raise DtsenImportError("a parser process stopped unexpectedly") from None

    def next_message(self, stop: threading.Event) -> tuple[int, tuple[Any, ...]]:
        while True:
            if stop.is_set():
                raise _Cancelled
            with contextlib.suppress(queue.Empty):
                number, message = self._messages.get(timeout=0.1)
                if message is None:
                    raise DtsenImportError("a parser process stopped unexpectedly")
                if message[0] == "error":
                    raise DtsenImportError(message[1])
                return number, message

    def close(self) -> None:
        for process in self._processes:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()  # EOF: the process ends on its own
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for listener in self._listeners:
            listener.join(timeout=5)  # EOF once the process is gone
        for process in self._processes:
            if process.stdout is not None:
                process.stdout.close()

    def kill(self) -> None:
        for process in self._processes:
            with contextlib.suppress(OSError):
                process.kill()


class _Cancelled(Exception):
    """The import task was cancelled; raised on the import's thread."""


# --- The report of skipped rows and the duplicate check ---------------------------------------


class _Duplicates:
    """Finds repeated NIKs across the whole file, from the int64 NIKs of every loaded row.

    Memory is 12 bytes a loaded row (31 MB for Kota Bekasi) and one sort at the end; a set of
    NIK strings would take ten times that, and a non-unique index to search in SQL would cost
    a second index build.
    """

    def __init__(self) -> None:
        self._niks: list[NikArray] = []
        self._lines: list[LineArray] = []

    def add(self, niks: NikArray, lines: LineArray) -> None:
        self._niks.append(niks)
        self._lines.append(lines)

    def find(self) -> list[BadRow]:
        """Rows whose NIK is on an earlier loaded row (which stays), by line."""
        if not self._niks:
            return []
        niks = np.concatenate(self._niks)
        self._niks = []
        # Sort the values only (no permutation: ~0.2 s for Kota Bekasi), then find the rows of
        # the few repeated NIKs by binary search; np.isin would sort everything again and
        # double the peak memory.
        ordered = np.sort(niks)
        repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
        del ordered
        if not repeated.size:
            self._lines = []
            return []
        slots = np.searchsorted(repeated, niks)
        np.minimum(slots, len(repeated) - 1, out=slots)
        where = np.flatnonzero(repeated[slots] == niks)
        del slots
        lines = np.concatenate(self._lines)
        self._lines = []
        found: list[BadRow] = []
        first_seen: set[int] = set()
        for line, nik in sorted(zip(lines[where].tolist(), niks[where].tolist(), strict=True)):
            if nik in first_seen:
                found.append((line, _DUPLICATE_NIK, "earlier_row", mask_nik(f"{nik:016d}")))
            first_seen.add(nik)
        return found


class _Report:
    """Skipped rows as CSV (line, reason, detail, masked NIK), sorted by line.

    Rows are streamed to a side file while parsing; duplicates, found only at the end, are merged
    in by line when the report is finished.
    """

    HEADER = ("line", "reason", "detail", "nik")

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.counts: Counter[SkipReason] = Counter()
        self._pending: list[BadRow] = []
        self._partial = path.with_name(path.name + ".partial") if path is not None else None
        self._handle: IO[str] | None = None
        if self._partial is not None:
            self._handle = self._partial.open("w", encoding="utf-8", newline="")

    def add(self, bad: list[BadRow]) -> None:
        for row in bad:
            self.counts[SkipReason(row[1])] += 1
        if self._handle is not None:
            csv.writer(self._handle, lineterminator="\n").writerows(bad)

    def finish(self, duplicates: list[BadRow]) -> None:
        """Write the final file (sorted by line) and drop the side file."""
        self.counts[SkipReason.DUPLICATE_NIK] += len(duplicates)
        if not self.counts[SkipReason.DUPLICATE_NIK]:
            del self.counts[SkipReason.DUPLICATE_NIK]
        if self._handle is None or self._partial is None or self.path is None:
            return
        self._handle.close()
        self._handle = None
        with (
            self._partial.open(encoding="utf-8", newline="") as streamed,
            self.path.open("w", encoding="utf-8", newline="") as final,
        ):
            # Chunks are accounted in file order, so the side file is sorted already: a
            # streaming merge keeps memory flat even when every row of a wrong file is bad.
            earlier = ((int(r[0]), r[1], r[2], r[3]) for r in csv.reader(streamed))
            writer = csv.writer(final, lineterminator="\n")
            writer.writerow(self.HEADER)
            writer.writerows(heapq.merge(earlier, duplicates))
        self._partial.unlink()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._partial is not None:
            self._partial.unlink(missing_ok=True)


class _ProgressBar:
    """A rich progress bar over the file's bytes (or rows), with rows and rows/s; or nothing."""

    def __init__(self, enabled: bool, source_name: str) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = time.perf_counter()
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.table import Column

        console = Console(stderr=True)
        # Rich shares out a narrow terminal's width among all columns, so a long file name
        # squeezed the counts to "2,6…". The name gives way instead (cut with an ellipsis),
        # then the bar; the counts, percentage and time keep their ~48 columns.
        name = Column(no_wrap=True, overflow="ellipsis", max_width=max(12, console.width - 58))
        self._progress = Progress(
            TextColumn("[bold]{task.description}", table_column=name),
            BarColumn(),
            TaskProgressColumn(table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[rows]:>11,} rows", table_column=Column(no_wrap=True)),
            TextColumn("{task.fields[rate]:>9,.0f} rows/s", table_column=Column(no_wrap=True)),
            TimeElapsedColumn(table_column=Column(no_wrap=True)),
            console=console,
        )
        self._task = self._progress.add_task(source_name, total=None, rows=0, rate=0.0)
        self._progress.start()

    def update(self, *, rows: int, position: int, total: int | None) -> None:
        if self._progress is not None and self._task is not None:
            rate = rows / max(time.perf_counter() - self._started, 1e-9)
            self._progress.update(
                self._task, completed=position, total=total, rows=rows, rate=rate
            )

    def phase(self, description: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=description)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


# --- The import ---------------------------------------------------------------------------------


class _ImportJob:
    """One import, run start to finish on a worker thread; `cancel()` may come from any thread."""

    def __init__(
        self,
        *,
        loader: _Loader,
        source: Path,
        secret: bytes,
        column_map: Mapping[str, str],
        today: date,
        parallel: bool | None,
        chunk_rows: int,
        report: _Report,
        bar: _ProgressBar,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        self.loader = loader
        self.source = source
        self.secret = secret
        self.column_map = column_map
        self.today = today
        self.parallel = parallel
        self.chunk_rows = chunk_rows
        self.report = report
        self.bar = bar
        self.on_progress = on_progress
        self.duplicates = _Duplicates()
        self.loaded = 0
        self.read = 0
        self._stop = threading.Event()
        self._parsers: _ParserProcesses | None = None

    def cancel(self) -> None:
        self._stop.set()
        if self._parsers is not None:
            self._parsers.kill()
        self.loader.interrupt()

    def _account(self, parsed: _Parsed, position: int, total: int | None) -> None:
        self.loaded += len(parsed.rows)
        self.read += len(parsed.rows) + len(parsed.bad)
        self.duplicates.add(parsed.niks, parsed.lines)
        self.report.add(parsed.bad)
        self.bar.update(rows=self.read, position=position, total=total)
        if self.on_progress is not None:
            self.on_progress(self.read)
        if self._stop.is_set():
            raise _Cancelled

    def _check_shrink(self, max_shrink_share: float) -> None:
        """DtsenImportError when the new table would be more than `max_shrink_share` smaller
        than the one in service: a wrong or truncated file, most likely."""
        in_service = self.loader.rows_in_service()
        removed = in_service - self.loaded
        if removed > max_shrink_share * in_service:
            raise DtsenImportError(
                f"{self.source.name} would replace the {in_service:,} rows in service by "
                f"{self.loaded:,} ({removed / in_service:.1%} fewer, allowed "
                f"{max_shrink_share:.1%}): nothing imported, the previous table stays "
                "(--allow-shrink if the extract is meant to be that much smaller)"
            )

    def load(self) -> None:
        """Parse, validate and stage every row of the source."""
        if not self.source.is_file():
            raise DtsenImportError(f"cannot read {self.source}: no such file")
        if _is_xlsx(self.source):
            # openpyxl (~20 µs a row) dominates; XLSX is parsed in this thread.
            for parsed, reached, total in _xlsx_chunks(
                self.source, self.column_map, self.secret, self.today, self.chunk_rows
            ):
                self.loader.write(parsed.rows)
                self._account(parsed, reached, total)
            return
        layout = _CsvLayout.read(self.source, self.column_map)
        size = self.source.stat().st_size
        try:
            self._load_csv(layout, size)
        except csv.Error as error:
            raise DtsenImportError(f"{self.source.name} is not valid CSV: {error}") from None

    def _load_csv(self, layout: _CsvLayout, size: int) -> None:
        parallel = size >= PARALLEL_MIN_BYTES if self.parallel is None else self.parallel
        if parallel and isinstance(self.loader, _SqliteLoader):
            # Two processes keep two cores busy: one writes while the other parses. With more
            # cores, more parsers help until the single SQLite writer is the bottleneck.
            self._load_in_processes(layout, size, max(2, min(os.cpu_count() or 2, 4)))
            return
        validator = _Validator(layout.columns, secret=self.secret, today=self.today)
        for parsed, position in _csv_chunks(self.source, layout, validator, self.chunk_rows):
            self.loader.write(parsed.rows)
            self._account(parsed, position, size)

    def _load_in_processes(self, layout: _CsvLayout, size: int, processes: int) -> None:
        assert isinstance(self.loader, _SqliteLoader)
        # Absolute paths: the processes must open the same files whatever their working directory.
        config = (str(self.source.resolve()), str(Path(self.loader.path).resolve()),
                  layout.columns.required, layout.delimiter, layout.quoted, self.secret,
                  self.today.toordinal())  # fmt: skip
        block_bytes = max(1 << 16, min(int(self.chunk_rows * layout.line_bytes), _MAX_BLOCK_BYTES))
        blocks = enumerate(_csv_blocks(self.source, layout, block_bytes))
        self._parsers = parsers = _ParserProcesses(processes, config)
        if self._stop.is_set():  # cancelled while the processes started
            raise _Cancelled
        owner: dict[int, int] = {}  # block -> process
        ends: dict[int, int] = {}  # block -> byte offset after it, for progress
        parsed: set[int] = set()
        next_write = 0
        writing = False

        def hand_out(number: int) -> None:
            block = next(blocks, None)
            if block is not None:
                seq, (offset, length, line) = block
                owner[seq] = number
                ends[seq] = offset + length
                parsers.tell(number, ("block", seq, offset, length, line))

        for number in range(processes):
            hand_out(number)
        while owner:
            number, message = parsers.next_message(self._stop)
            if message[0] == "parsed":
                parsed.add(message[1])
            else:
                _, seq, loaded, bad, niks, lines = message
                chunk = _Parsed(
                    rows=[],
                    bad=bad,
                    niks=np.frombuffer(niks, dtype=np.int64),
                    lines=np.frombuffer(lines, dtype=np.int32),
                )
                self.loaded += loaded
                self.read += loaded
                del owner[seq]
                writing = False
                next_write = seq + 1
                hand_out(number)
                self._account(chunk, ends.pop(seq), size)
            if not writing and next_write in parsed:
                # Every earlier block is written: this one may append now.
                parsed.discard(next_write)
                writing = True
                parsers.tell(owner[next_write], ("write", next_write))
        parsers.close()
        self._parsers = None

    def run(self, *, max_bad_share: float, max_shrink_share: float | None, actor: str) -> None:
        """Load, check, report and swap; DtsenImportError leaves the old table in place."""
        started = time.perf_counter()
        try:
            self.loader.prepare()
            try:
                self.load()
            except _Cancelled:
                raise asyncio.CancelledError from None
            staged = time.perf_counter()
            duplicates = self.duplicates.find()
            if duplicates:
                self.loader.remove([line for line, *_ in duplicates])
                self.loaded -= len(duplicates)
            self.report.finish(duplicates)
            skipped = self.read - self.loaded
            if self.read == 0:
                raise DtsenImportError(f"{self.source.name} has a header but no data rows")
            if skipped > max_bad_share * self.read:
                raise DtsenImportError(
                    f"{skipped:,} of {self.read:,} rows are bad ({skipped / self.read:.1%}, "
                    f"allowed {max_bad_share:.1%}): nothing imported, the previous table stays"
                    + (f"; see {self.report.path}" if self.report.path is not None else "")
                )
            if max_shrink_share is not None:
                self._check_shrink(max_shrink_share)
            self.bar.phase(f"{self.source.name}: indexing and swapping")
            checked = time.perf_counter()
            self.loader.swap(
                source_name=self.source.name, loaded=self.loaded, skipped=skipped, actor=actor
            )
            log.info(
                "DTSEN import phases: staged %d rows in %.1f s, checked in %.1f s, "
                "indexed and swapped in %.1f s",
                self.read,
                staged - started,
                checked - staged,
                time.perf_counter() - checked,
            )
        except sqlite3.OperationalError as error:
            if self._stop.is_set():
                raise asyncio.CancelledError from None  # interrupted on purpose
            raise DtsenImportError(f"database error: {error}") from None
        finally:
            self.bar.stop()
            if self._parsers is not None:
                self._parsers.kill()
                self._parsers.close()
            self.report.close()
            self.loader.discard()


async def import_dtsen(
    database: Database,
    source: Path,
    *,
    secret: bytes,
    column_map: Mapping[str, str] | None = None,
    max_bad_share: float = 0.05,
    max_shrink_share: float | None = None,
    report_path: Path | None = None,
    today: date,
    progress: bool = False,
    actor: str = "cli",
    parallel: bool | None = None,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Replace the DTSEN table with the rows of `source` (CSV or XLSX), or leave it untouched.

    Raises DtsenImportError when the file cannot be read, its header lacks a field, or more
    than `max_bad_share` of its rows are bad, or (when given) it would remove more than
    `max_shrink_share` of the rows in service. `parallel` parses a CSV in processes (default: for
    files over 8 MB on SQLite); `on_progress(rows_read)` is called per chunk, from the import's
    thread. Cancelling the task stops the import and keeps the old table.
    """
    started = time.perf_counter()
    loader: _Loader
    if database.dialect == "sqlite":
        path = database.engine.url.database
        if not path or path == ":memory:":
            raise DtsenImportError("the DTSEN import needs a database file, not :memory:")
        loader = _SqliteLoader(path)
    else:
        loader = _PostgresLoader(database.engine, asyncio.get_running_loop())
    report = _Report(report_path)
    job = _ImportJob(
        loader=loader,
        source=source,
        secret=secret,
        column_map=dict(column_map or {}),
        today=today,
        parallel=parallel,
        chunk_rows=chunk_rows,
        report=report,
        bar=_ProgressBar(progress, source.name),
        on_progress=on_progress,
    )
    task = asyncio.ensure_future(
        asyncio.to_thread(
            job.run, max_bad_share=max_bad_share, max_shrink_share=max_shrink_share, actor=actor
        )
    )
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        job.cancel()  # the thread stops at its next chunk and drops the staging table
        with contextlib.suppress(BaseException):
            await task
        raise
    summary = ImportSummary(
        source_name=source.name,
        rows_loaded=job.loaded,
        rows_skipped=job.read - job.loaded,
        skipped_by_reason=dict(sorted(report.counts.items())),
        seconds=time.perf_counter() - started,
        report_path=report_path,
    )
    log.info("DTSEN import by %s: %s", actor, summary.describe())
    return summary


# --- Lookups ------------------------------------------------------------------------------------
