"""The family file of a DTSEN V3 pair: streamed out of DuckDB in file order (so the n-th row is
on line n + 1) into numpy, the first row of each KK kept for the persons' join (FamilyIndex,
sorted by KK), checked against the first persons, and its own skipped rows reported once the
persons are all read.

DuckDB streams a scan on both cores and keeps the file's order; a table made from it in order
was filled on one core, and numbering or ranking rows in SQL (window functions) too.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from domain.regions import load_regions
from storage.dtsen.contract import BadRow, DtsenImportError
from storage.dtsen.v3_pack import FamilyIndex
from storage.dtsen.v3_sql import WORK_COLUMNS

# Below this share of persons finding their family, the files do not belong together.
MIN_MATCHED_SHARE = 0.5


@dataclass(frozen=True)
class Families:
    """Every row of the family file in file order (row n is on line n + 2), and the index of
    the first row of each KK."""

    sci: npt.NDArray[np.bool_]  # the KK in scientific notation
    first: npt.NDArray[np.bool_]  # the first row of its KK, or a row without a KK
    index: FamilyIndex
    regencies: Counter[str]  # families by the first four digits of their kelurahan code

    @property
    def rows(self) -> int:
        return len(self.sci)


def read_families(batches: Iterable[Any], path: Path, region_code: str) -> Families:
    """The families from the batches of v3_sql.families, in file order; DtsenImportError when
    there are none."""
    read = list(batches)
    table = pa.Table.from_batches(read).combine_chunks() if read else None
    if table is None or table.num_rows == 0:
        raise DtsenImportError(
            f"{path.name} has no family rows: nothing imported, the previous table stays"
        )
    kk = table.column("kk").fill_null(0).to_numpy()
    kode = pc.dictionary_encode(_with_codes_from_names(table, region_code).combine_chunks())
    values: list[str | None] = kode.dictionary.to_pylist()
    kode_at = kode.indices.fill_null(len(values)).to_numpy().astype(np.int32)
    numbered = np.flatnonzero(kk != 0)
    keys, at = np.unique(kk[numbered], return_index=True)  # sorted; each KK's first row
    firsts = numbered[at]
    first = kk == 0
    first[firsts] = True
    desils = tuple(table.column(name).to_numpy().astype(np.int8)[firsts]
                   for name in ("d1", "d2", "d3"))  # fmt: skip
    index = FamilyIndex(kk=keys, line=(firsts + 2).astype(np.int32), kode_values=values,
                        kode_at=kode_at[firsts], desils=desils)  # fmt: skip
    counts = np.bincount(kode_at, minlength=len(values) + 1)[: len(values)]
    regencies: Counter[str] = Counter()
    for value, count in zip(values, counts.tolist(), strict=True):
        if value is not None:
            regencies[value[:4]] += count
    return Families(table.column("sci").to_numpy(), first, index, regencies)


def _with_codes_from_names(table: Any, region_code: str) -> Any:
    """The kode column, each missing code looked up by the kecamatan and kelurahan names."""
    kode, name_key = table.column("kode"), table.column("name_key")
    if name_key.null_count == len(name_key):
        return kode
    names = _names(region_code)
    keys = pc.dictionary_encode(name_key.combine_chunks())
    codes = pa.array([names.get(key) for key in keys.dictionary.to_pylist()], pa.string())
    return pc.coalesce(kode, pc.take(codes, keys.indices))


def check_head(head: Any, families: Families, book: dict[str, dict[str, str]], persons: Path,
               family_path: Path) -> None:  # fmt: skip
    """DtsenImportError when the first persons (`head`, columns of v3_sql.persons_pass) show
    that the files do not belong together (fewer than half have their KK in the family file),
    or that the codebook does not fit them (none of their codes of a work variable in it)."""
    kk = head.column("kk").combine_chunks()
    count = len(kk)
    matched = int((families.index.find(kk) >= 0).sum())
    if count and matched < MIN_MATCHED_SHARE * count:
        regency = families.regencies.most_common(1)[0][0] if families.regencies else "?"
        issued = Counter(str(number)[:4] for number in kk.drop_null().to_pylist())
        raise DtsenImportError(
            f"{persons.name} and {family_path.name} do not belong together: only {matched:,} "
            f"of the first {count:,} persons have their KK in the family file (families of "
            f"{regency}, persons' KKs from {issued.most_common(1)[0][0] if issued else '?'}): "
            "nothing imported, the previous table stays"
        )
    for name in WORK_COLUMNS:
        if name not in book:
            continue
        found = pc.unique(head.column(name).combine_chunks()).drop_null().to_pylist()
        if found and not any(code in book[name] for code in found):
            raise DtsenImportError(
                f"codebook does not match the files: none of the {len(found):,} codes of "
                f"{name} in {persons.name} is in it"
            )


def family_rows(families: Families, found: npt.NDArray[np.bool_]) -> list[BadRow]:
    """Skipped rows of the family file: KK in scientific notation, KK listed again, and
    families none of whose lines is marked in `found` (nobody in the persons file)."""
    sci, first = families.sci, families.first
    lines = np.arange(2, families.rows + 2)
    nobody = ~found[np.minimum(lines, len(found) - 1)]
    rows: list[BadRow] = []
    for at in np.flatnonzero(sci | ~first | nobody).tolist():
        if sci[at]:
            rows.append((at + 2, "scientific_notation", "family_file", ""))
        elif not first[at]:
            rows.append((at + 2, "duplicate_kk", "family_file", ""))
        else:
            rows.append((at + 2, "family_without_persons", "family_file", ""))
    return rows


def return_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc): the family file's batches and
    their copies, freed once the index is made, stayed in this process's heap (~80 MB of its
    RSS for Kota Bekasi) in pieces too small for malloc to return on its own."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _names(region_code: str) -> dict[str, str]:
    """kecamatan/kelurahan name keys -> kelurahan code, for files that carry only names."""
    regions = load_regions()
    keys: dict[str, str] = {}
    for kecamatan in regions.kecamatan_of(region_code):
        for village in regions.kelurahan_of(kecamatan.code):
            keys.setdefault(f"{_key(kecamatan.name)}/{_key(village.name)}", village.code)
    return keys


def _key(name: str) -> str:
    """A region name as the SQL name key compares it."""
    return re.sub(r"[^a-z0-9]", "", name.lower())
