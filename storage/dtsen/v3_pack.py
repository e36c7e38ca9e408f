"""The importing process's side of a DTSEN V3 pair's persons: each Arrow batch of DuckDB's pass
checked further in numpy (the NIK's province and birth-date fields) and its NIKs' keyed hashes
made (`hash_batch`, while the family file may still be read), then joined to the families and
packed in C for a writer process (`join_batch`; see v3_rows.unpack).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from domain.nik import check_nik, nik_fast_sets
from domain.pii import mask_nik
from storage.dtsen.contract import BadRow
from storage.dtsen.v3_rows import SEPARATOR, Chunk, Packed, keyed_digests
from storage.dtsen.validate import KeyedHash

_POWERS = 10 ** np.arange(15, -1, -1, dtype=np.int64)
# A desil as packed: its value indexes this list; NULL (-2 in FamilyIndex) is the index past it.
_DESILS = list(range(11))


class Reason(IntEnum):
    """Why a person is skipped, as a number a row, in the order they are tested (the first that
    applies is reported); the names are SkipReason's values."""

    SCIENTIFIC_NOTATION = 1
    BAD_NIK = 2
    NO_FAMILY = 3
    MISSING_NAMA = 4
    BAD_DATE = 5
    BAD_JENIS_KELAMIN = 6
    BAD_KODE_WILAYAH = 7
    BAD_DESIL = 8


_REASON_NAMES = [""] + [reason.name.lower() for reason in Reason]


class NikFields:
    """`check_nik`'s fast sets as tables by number: province code (2 digits), birth field
    (DDMMYY)."""

    def __init__(self, today: date) -> None:
        provinces, births = nik_fast_sets(today)
        self.provinces = np.zeros(100, np.bool_)
        self.provinces[[int(code) for code in provinces]] = True
        self.births = np.zeros(1_000_000, np.bool_)
        self.births[[int(field) for field in births]] = True

    def valid(self, digits: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Whether each NIK (a row of 16 digits) has a valid province and birth date field."""
        valid: npt.NDArray[np.bool_] = self.provinces[digits[:, :2] @ _POWERS[-2:]]
        valid &= self.births[digits[:, 6:12] @ _POWERS[-6:]]
        return valid


@dataclass(frozen=True)
class FamilyIndex:
    """The families persons join, one a KK (its first row in the file), sorted by KK."""

    kk: npt.NDArray[np.uint64]
    line: npt.NDArray[np.int32]  # the family's line in its file
    kode_values: list[str | None]
    kode_at: npt.NDArray[np.int32]  # index into kode_values; len(kode_values): no code
    desils: tuple[npt.NDArray[np.int8], ...]  # nasional, provinsi, kabupaten/kota; -2: NULL

    def find(self, kk: Any) -> npt.NDArray[np.int64]:
        """The index of each KK's family (an Arrow column of numbers, NULL where the KK is
        not one), -1 where there is none."""
        return self.positions(kk.fill_null(0).to_numpy())

    def positions(self, wanted: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """`find` of KKs as numbers (0: none). A family's persons follow each other in the
        file: each run of one KK is looked up once (~3 times fewer binary searches)."""
        if not len(self.kk) or not len(wanted):
            return np.full(len(wanted), -1, np.int64)
        starts = np.flatnonzero(np.concatenate(([True], wanted[1:] != wanted[:-1])))
        runs = wanted[starts]
        at = np.minimum(np.searchsorted(self.kk, runs), len(self.kk) - 1)
        found = np.where((self.kk[at] == runs) & (runs != 0), at, -1)
        return np.repeat(found, np.diff(np.append(starts, len(wanted))))


@dataclass(frozen=True)
class Hashed:
    """A batch of the persons' pass (columns: reason, NIK, KK, nama, born, sex, KTP regency, the
    work variables) numbered from its first line, with the reasons found so far and, for each
    row whose NIK has 16 digits, the NIK's keyed hash and the NIK as a number."""

    batch: Any
    lines: npt.NDArray[np.int32]
    reason: npt.NDArray[np.int8]
    digests: npt.NDArray[np.uint8]  # (rows, 32)
    numbers: npt.NDArray[np.int64]


def hash_batch(batch: Any, first_line: int, fields: NikFields, hasher: KeyedHash) -> Hashed:
    """Number a batch, refuse the NIKs whose fields are not valid, hash the others."""
    count = batch.num_rows
    reason = batch.column(0).fill_null(0).to_numpy().astype(np.int8)
    digests = np.zeros((count, 32), np.uint8)
    numbers = np.zeros(count, np.int64)
    sixteen = reason > Reason.BAD_NIK
    sixteen |= reason == 0
    at = np.flatnonzero(sixteen)
    if len(at):
        niks = batch.column(1)
        ascii_niks = _join(niks if len(at) == count else niks.filter(pa.array(sixteen)), "")
        encoded = ascii_niks.encode("ascii")
        digits = np.frombuffer(encoded, np.uint8).reshape(-1, 16).astype(np.int64) - 48
        reason[at[~fields.valid(digits)]] = Reason.BAD_NIK
        digests[at] = np.frombuffer(keyed_digests(encoded, hasher), np.uint8).reshape(-1, 32)
        numbers[at] = digits @ _POWERS
    lines = np.arange(first_line, first_line + count, dtype=np.int32)
    return Hashed(batch, lines, reason, digests, numbers)


def join_batch(hashed: Hashed, families: FamilyIndex, books: list[dict[str, str] | None],
               today: date, found: npt.NDArray[np.bool_]) -> Chunk:  # fmt: skip
    """The Chunk of a hashed batch: each person joined to their family, the reasons that depend
    on it (no family, no kelurahan code, a desil not 1-10), the loadable rows packed in
    COLUMNS_V3 order and the others listed for the report (NIK masked). Marks in `found` (by
    the family's line) each family someone joined."""
    batch, reason = hashed.batch, hashed.reason
    at = families.find(batch.column(2))
    joined = at >= 0
    found[families.line[at[joined]]] = True
    later = (reason > Reason.BAD_NIK) | (reason == 0)
    reason[later & ~joined] = Reason.NO_FAMILY
    clean = np.flatnonzero(reason == 0)
    family = at[clean]
    nasional, provinsi, kabupaten = (desil[family] for desil in families.desils)
    bad_desil = (nasional < 0) | (provinsi == -1) | (kabupaten == -1)
    reason[clean[bad_desil]] = Reason.BAD_DESIL
    reason[clean[families.kode_at[family] == len(families.kode_values)]] = Reason.BAD_KODE_WILAYAH
    keep = reason == 0
    bad: list[BadRow] = []
    if not keep.all():
        skipped = ~keep
        niks = batch.column(1).filter(pa.array(skipped)).to_pylist()
        for line, code, nik in zip(hashed.lines[skipped].tolist(), reason[skipped].tolist(), niks,
                                   strict=True):  # fmt: skip
            why = _REASON_NAMES[code]
            detail = str(check_nik(nik, today) or "invalid") if code == Reason.BAD_NIK else ""
            bad.append((line, why, detail, mask_nik(nik)))
    packed = pack(hashed, keep, at[keep], families, books)
    return Chunk(packed, bad, hashed.numbers[keep], hashed.lines[keep])


def pack(hashed: Hashed, keep: npt.NDArray[np.bool_], family: npt.NDArray[np.int64],
         families: FamilyIndex, books: list[dict[str, str] | None]) -> Packed:  # fmt: skip
    """The rows of `hashed` marked in `keep` (each of `family`) in COLUMNS_V3 order as
    `unpack` reads them: numbers as bytes, names joined into one text, the other columns as
    their distinct values and an index, the work variables decoded through `books` (their
    codebook entries). No Python object a row: Arrow's and numpy's C."""
    batch = hashed.batch
    count = int(keep.sum())
    whole = count == batch.num_rows
    digests = hashed.digests[keep].tobytes()
    nama = batch.column(3) if whole else batch.column(3).filter(pa.array(keep))
    born = batch.column(4).cast(pa.int32()).fill_null(0).to_numpy()[keep]
    desils = (np.where(d[family] >= 0, d[family], len(_DESILS)) for d in families.desils)
    sex, ktp, *work = (batch.column(i) for i in range(5, batch.num_columns))
    return (
        count,
        ("ints", hashed.lines[keep].tobytes()),
        ("digests", digests),
        ("keys", np.frombuffer(digests, ">i8")[::4].astype(np.int64).tobytes()),
        _joined(nama, count),
        ("days", born.tobytes()),
        _coded(sex, keep),
        ("coded", families.kode_values, families.kode_at[family].tobytes()),
        *(("coded", _DESILS, desil.astype(np.int32).tobytes()) for desil in desils),
        _coded(ktp, keep),
        *(_coded(column, keep, book) for column, book in zip(work, books, strict=True)),
    )


def _joined(column: Any, count: int) -> tuple[Any, ...]:
    if column.null_count or (count and pc.any(pc.match_substring(column, SEPARATOR)).as_py()):
        return ("list", column.to_pylist())
    return ("joined", _join(column, SEPARATOR))


def _join(column: Any, separator: str) -> str:
    """The values of an Arrow string array without NULLs, joined into one text (in C)."""
    whole = pa.ListArray.from_arrays(pa.array([0, len(column)], pa.int32()), column)
    text: str = pc.binary_join(whole, separator)[0].as_py()
    return text


def _coded(column: Any, keep: npt.NDArray[np.bool_], book: dict[str, str] | None = None
           ) -> tuple[Any, ...]:  # fmt: skip
    """A column as its distinct values (decoded through `book`) and each kept row's index."""
    encoded = pc.dictionary_encode(column)
    values = encoded.dictionary.to_pylist()
    if book:
        values = [book.get(value, value) for value in values]
    at = encoded.indices.fill_null(pa.scalar(len(values), pa.int32())).to_numpy()[keep]
    return ("coded", values, at.astype(np.int32).tobytes())
