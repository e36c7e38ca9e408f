"""The importing process's side of a DTSEN V3 pair's chunks: each Arrow batch of DuckDB's pass
checked further in numpy (the NIK's province and birth date fields) and packed in C for a
writer process (see v3_rows.unpack), with each NIK's keyed hash made here.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from domain.nik import nik_fast_sets
from storage.dtsen.v3_rows import SEPARATOR, Packed, keyed_digests
from storage.dtsen.validate import KeyedHash, LineArray, NikArray

_POWERS = 10 ** np.arange(15, -1, -1, dtype=np.int64)
_BEFORE_NIK_FIELDS = pa.array(["scientific_notation", "bad_nik"])  # reasons checked earlier


class NikFields:
    """`check_nik`'s fast sets as tables by number: province code (2 digits), birth field
    (DDMMYY)."""

    def __init__(self, today: date) -> None:
        provinces, births = nik_fast_sets(today)
        self.provinces = np.zeros(100, np.bool_)
        self.provinces[[int(code) for code in provinces]] = True
        self.births = np.zeros(1_000_000, np.bool_)
        self.births[[int(field) for field in births]] = True

    def check(self, reason: Any, nik: Any) -> Any:
        """`reason` with bad_nik for the NIKs whose province or birth date field is not valid
        (`check_nik`'s fast sets, as tables here: two joins fewer in DuckDB). Rows refused for
        an earlier reason keep it; the others' NIKs are 16 digits (checked in SQL)."""
        later = pc.invert(pc.is_in(reason, _BEFORE_NIK_FIELDS))  # NULL (loadable) included
        if not pc.any(later).as_py():
            return reason
        ascii_niks = _join(nik.filter(later), "").encode("ascii")
        digits = np.frombuffer(ascii_niks, np.uint8).reshape(-1, 16).astype(np.int64) - 48
        valid = self.provinces[digits[:, :2] @ _POWERS[-2:]]
        valid &= self.births[digits[:, 6:12] @ _POWERS[-6:]]
        if valid.all():
            return reason
        wrong = np.zeros(len(reason), np.bool_)
        wrong[np.flatnonzero(later.to_numpy(zero_copy_only=False))[~valid]] = True
        return pc.if_else(pa.array(wrong), pa.scalar("bad_nik"), reason)


def pack(batch: Any, books: list[dict[str, str] | None], hasher: KeyedHash
         ) -> tuple[Packed, NikArray, LineArray]:  # fmt: skip
    """The loadable rows of an Arrow batch of `PairReader.chunks` (line, reason, NIK, nama,
    born, then codes and desils, the work variables, the family's line) packed in COLUMNS_V3
    as `unpack` reads them: each NIK's keyed hash (`hasher`), numbers as bytes, names joined
    into one text, the other columns as their distinct values and an index, the work
    variables decoded through `books` (their codebook entries); and the NIKs and lines.
    Python objects only for the hashes: the rest is Arrow's and numpy's C."""
    line, _reason, nik, nama, born, *coded = batch.columns[:-1]
    lines = line.cast(pa.int32()).to_numpy()
    ascii_niks = _join(nik, "").encode("ascii")  # 16 digits each: checked in SQL
    digests = keyed_digests(ascii_niks, hasher)
    keys = np.frombuffer(digests, ">i8")[::4].astype(np.int64)  # digest_key of each row
    digits = np.frombuffer(ascii_niks, np.uint8).reshape(-1, 16).astype(np.int64) - 48
    plain = coded[: -len(books)]
    packed = (
        batch.num_rows,
        ("ints", lines.tobytes()),
        ("digests", digests),
        ("keys", keys.tobytes()),
        _joined(nama, batch.num_rows),
        ("days", born.cast(pa.int32()).to_numpy(zero_copy_only=False).tobytes()),
        *(_coded(column) for column in plain),
        *(_coded(column, book) for column, book in zip(coded[len(plain) :], books, strict=True)),
    )
    return packed, digits @ _POWERS, lines


def _joined(column: Any, count: int) -> tuple[Any, ...]:
    if column.null_count or (count and pc.any(pc.match_substring(column, SEPARATOR)).as_py()):
        return ("list", column.to_pylist())
    return ("joined", _join(column, SEPARATOR))


def _join(column: Any, separator: str) -> str:
    """The values of an Arrow string array without NULLs, joined into one text (in C)."""
    whole = pa.ListArray.from_arrays(pa.array([0, len(column)], pa.int32()), column)
    text: str = pc.binary_join(whole, separator)[0].as_py()
    return text


def _coded(column: Any, book: dict[str, str] | None = None) -> tuple[Any, ...]:
    encoded = pc.dictionary_encode(column)
    values = encoded.dictionary.to_pylist()
    if book:
        values = [book.get(value, value) for value in values]
    at = encoded.indices.fill_null(pa.scalar(len(values), pa.int32()))
    return ("coded", values, at.to_numpy().tobytes())
