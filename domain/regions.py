"""Kemendagri region codes (province, regency/city, kecamatan, kelurahan/desa), shipped as data.

Codes are handled without dots: `32`, `3275`, `327501`, `3275011001`.
"""

from __future__ import annotations

import bisect
import csv
import functools
import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources


class Level(StrEnum):
    """How deep a region sits; the values are the `tingkat` column of the data file."""

    PROVINCE = "provinsi"
    REGENCY = "kabkota"
    DISTRICT = "kecamatan"
    VILLAGE = "desa_kelurahan"


# Digits in an undotted code for each level (2/2/2/4 per part).
CODE_LENGTHS: dict[Level, int] = {
    Level.PROVINCE: 2,
    Level.REGENCY: 4,
    Level.DISTRICT: 6,
    Level.VILLAGE: 10,
}
_LEVEL_OF_LENGTH = {length: level for level, length in CODE_LENGTHS.items()}
_PARENT_LENGTH = {4: 2, 6: 4, 10: 6}


@dataclass(frozen=True, slots=True)
class Region:
    """One region: its undotted code, its official name and its level."""

    code: str
    name: str
    level: Level

    @property
    def parent_code(self) -> str | None:
        """The code of the region one level up, or None for a province."""
        parent_length = _PARENT_LENGTH.get(len(self.code))
        return None if parent_length is None else self.code[:parent_length]


def normalize_code(code: str) -> str:
    """Drop dots and surrounding spaces: `32.75.01` -> `327501` (no other validation)."""
    return code.strip().replace(".", "")


class Regions:
    """Every region of Indonesia, looked up by undotted (or dotted) code."""

    def __init__(self, names_by_level: dict[Level, dict[str, str]]) -> None:
        self._names = names_by_level
        # Codes of one level all have the same width, so once sorted the children of a parent
        # form one contiguous run that bisect finds without scanning the 84k villages.
        self._sorted_codes = {level: list(names) for level, names in names_by_level.items()}
        for codes in self._sorted_codes.values():
            codes.sort()
        self.province_codes: frozenset[str] = frozenset(names_by_level[Level.PROVINCE])

    def __len__(self) -> int:
        return sum(len(names) for names in self._names.values())

    def _get(self, level: Level, code: str) -> Region | None:
        key = normalize_code(code)
        name = self._names[level].get(key)
        return None if name is None else Region(key, name, level)

    def province(self, code2: str) -> Region | None:
        """The province with this 2-digit code."""
        return self._get(Level.PROVINCE, code2)

    def regency(self, code4: str) -> Region | None:
        """The regency (kabupaten) or city (kota) with this 4-digit code."""
        return self._get(Level.REGENCY, code4)

    def district(self, code6: str) -> Region | None:
        """The kecamatan with this 6-digit code."""
        return self._get(Level.DISTRICT, code6)

    def village(self, code10: str) -> Region | None:
        """The kelurahan or desa with this 10-digit code."""
        return self._get(Level.VILLAGE, code10)

    def get(self, code: str) -> Region | None:
        """The region with this code at whatever level its length implies."""
        level = _LEVEL_OF_LENGTH.get(len(normalize_code(code)))
        return None if level is None else self._get(level, code)

    def name(self, code: str) -> str | None:
        """The name of the region with this code, at any level."""
        region = self.get(code)
        return None if region is None else region.name

    def is_province_code(self, code2: str) -> bool:
        """Whether this is one of the 38 current province codes."""
        return normalize_code(code2) in self.province_codes

    def _children(self, level: Level, parent: str) -> list[Region]:
        parent = normalize_code(parent)
        if len(parent) != _PARENT_LENGTH[CODE_LENGTHS[level]]:
            return []
        codes = self._sorted_codes[level]
        names = self._names[level]
        # The village list holds all of Indonesia; walk from the first child, never slice it.
        children = []
        for index in range(bisect.bisect_left(codes, parent), len(codes)):
            code = codes[index]
            if not code.startswith(parent):
                break
            children.append(Region(code, names[code], level))
        return children

    def regencies_of(self, province_code2: str) -> list[Region]:
        """The regencies and cities of a province, sorted by code."""
        return self._children(Level.REGENCY, province_code2)

    def kecamatan_of(self, regency_code4: str) -> list[Region]:
        """The kecamatan of a regency or city, sorted by code."""
        return self._children(Level.DISTRICT, regency_code4)

    def kelurahan_of(self, kecamatan_code6: str) -> list[Region]:
        """The kelurahan and desa of a kecamatan, sorted by code."""
        return self._children(Level.VILLAGE, kecamatan_code6)


def _name_key(name: str) -> str:
    """A name compared loosely: any case, spaces and punctuation ignored (`Bantar Gebang`)."""
    return "".join(char for char in name.casefold() if char.isalnum())


def match_kecamatan(text: str, choices: Sequence[Region]) -> tuple[list[Region], list[str]]:
    """The kecamatan among `choices` named in `text`, and the parts that name none of them.

    Parts are separated by commas; each is a name (any case, several words: `bekasi utara`) or
    codes with or without dots (`3275.03`, `327503`; several codes may be separated by spaces).
    """
    by_code = {region.code: region for region in choices}
    by_name = {_name_key(region.name): region for region in choices}
    found: list[Region] = []
    unknown: list[str] = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        named = by_name.get(_name_key(part))
        tokens = part.split()
        if named is not None:
            matched = [named]
        elif all(normalize_code(token).isdigit() for token in tokens):
            matched = [by_code[code] for t in tokens if (code := normalize_code(t)) in by_code]
            unknown.extend(t for t in tokens if normalize_code(t) not in by_code)
        else:
            matched = []
            unknown.append(part)
        found.extend(region for region in matched if region not in found)
    return found, unknown


def _read_rows(text: str) -> dict[Level, dict[str, str]]:
    lines = text.splitlines()
    if lines[0] != "kode,nama,tingkat":
        raise RuntimeError(f"unexpected header in wilayah.csv.gz: {lines[0]!r}")
    names: dict[Level, dict[str, str]] = {level: {} for level in Level}
    by_length = {length: names[level] for level, length in CODE_LENGTHS.items()}
    for line in lines[1:]:
        # Only two names contain commas (and so quotes); splitting by hand is ~3x faster than
        # running csv.reader over all 91k rows.
        if '"' in line:
            code, name, _level = next(csv.reader([line]))
        else:
            code, name, _level = line.split(",")
        key = code.replace(".", "")
        # Five source names end with a space; nobody wants it in a message.
        by_length[len(key)][key] = name.strip()
    return names


@functools.cache
def load_regions() -> Regions:
    """All regions from the packaged `bot/data/wilayah.csv.gz`, read once per process."""
    raw = (resources.files("domain") / "data" / "wilayah.csv.gz").read_bytes()
    return Regions(_read_rows(gzip.decompress(raw).decode("utf-8")))
