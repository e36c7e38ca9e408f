"""The two files of a DTSEN V3 extract and its codebook as given: each CSV's header (delimiter,
normalised names), the checks that the right files came in the right order with the columns
the import needs, and the codebook workbook (kolom, kode, keterangan).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from domain.eligibility import normalize_gender
from storage.dtsen.contract import DtsenImportError
from storage.spreadsheets import SpreadsheetError, cell_text, normalise_header, open_xlsx

PERSON_REQUIRED = ("nomor_induk_kependudukan", "nomor_kartu_keluarga", "nama", "tanggal_lahir",
                   "jenis_kelamin")  # fmt: skip
FAMILY_REQUIRED = ("nomor_kartu_keluarga", "desil_nasional", "desil_provinsi",
                   "desil_kabupaten_kota")  # fmt: skip
# Headers that only the other file has: a family file given as the persons file, or the reverse.
FAMILY_ONLY = ("desil_nasional", "jumlah_anggota_keluarga", "nama_kepala_keluarga")
PERSON_ONLY = ("nomor_induk_kependudukan", "status_hubungan_keluarga")
DELIMITERS = ("|", ",", ";", "\t")


@dataclass(frozen=True)
class Header:
    """A CSV's header: the delimiter and the normalised column names, in file order."""

    delimiter: str
    names: tuple[str, ...]

    @classmethod
    def read(cls, path: Path, role: str) -> Header:
        if not path.is_file():
            raise DtsenImportError(f"cannot read {path}: no such file")
        with path.open("rb") as handle:
            first = handle.readline(1 << 16)
        if not first.strip():
            raise DtsenImportError(f"{path.name} ({role}) is empty: nothing imported")
        try:
            line = first.decode("utf-8-sig").rstrip("\r\n")
        except UnicodeDecodeError:
            raise DtsenImportError(f"{path.name} is not UTF-8 text (line 1)") from None
        delimiter = max(DELIMITERS, key=line.count)
        names: list[str] = []
        for cell in line.split(delimiter):
            name = normalise_header(cell.strip().strip('"')) or f"column{len(names)}"
            names.append(name if name not in names else f"{name}_{len(names)}")
        return cls(delimiter, tuple(names))


def check_headers(persons: Path, p: Header, families: Path, f: Header) -> None:
    """One line for the first thing wrong with the two headers: swapped files, missing columns."""
    if "nomor_induk_kependudukan" not in p.names and any(n in p.names for n in FAMILY_ONLY):
        raise DtsenImportError(
            f"{persons.name} is a family file (it has desil_nasional and no "
            "nomor_induk_kependudukan): give the persons file first, then the family file"
        )
    if any(n in f.names for n in PERSON_ONLY):
        raise DtsenImportError(
            f"{families.name} is a persons file (it has nomor_induk_kependudukan): give the "
            "persons file first, then the family file"
        )
    for path, header, required in ((persons, p, PERSON_REQUIRED), (families, f, FAMILY_REQUIRED)):
        missing = [name for name in required if name not in header.names]
        if missing:
            raise DtsenImportError(f"{path.name} lacks the column {', '.join(missing)}")
    if "kode_kelurahan_desa" not in f.names and not {"kecamatan", "kelurahan_desa"} <= set(
        f.names
    ):
        raise DtsenImportError(
            f"{families.name} lacks the column kode_kelurahan_desa (or the names kecamatan and "
            "kelurahan_desa)"
        )


def read_codebook(path: Path, p: Header, f: Header) -> dict[str, dict[str, str]]:
    """kolom -> {kode: keterangan} of a `Kode_DTSEN_*.xlsx`; DtsenImportError if it does not
    fit the files."""
    if not path.is_file():
        raise DtsenImportError(f"cannot read {path}: no such file")
    book: dict[str, dict[str, str]] = {}
    try:
        with open_xlsx(path) as sheet:
            names = [normalise_header(cell) for cell in sheet.header]
            if not {"kolom", "kode", "keterangan"} <= set(names):
                raise DtsenImportError(
                    f"codebook {path.name} lacks the columns kolom, kode, keterangan"
                )
            at = [names.index(name) for name in ("kolom", "kode", "keterangan")]
            for _line, values in sheet.rows:
                kolom, kode, keterangan = (cell_text(values[i]) if i < len(values) else ""
                                           for i in at)  # fmt: skip
                if kolom and kode:
                    book.setdefault(normalise_header(kolom), {})[_code(kode)] = keterangan.strip()
    except SpreadsheetError as error:
        raise DtsenImportError(f"cannot open codebook {path.name}: {error}") from None
    if not set(book) & (set(p.names) | set(f.names)):
        shown = ", ".join(sorted(book)[:5]) or "none"
        raise DtsenImportError(
            f"codebook {path.name} does not match the files: none of its columns ({shown}) "
            "is in them"
        )
    for kode, meaning in book.get("jenis_kelamin", {}).items():
        if normalize_gender(meaning) is None:
            raise DtsenImportError(
                f"codebook {path.name} does not match the files: jenis_kelamin {kode} means "
                f"{meaning[:40]!r}, not a gender"
            )
    return book


def _code(text: str) -> str:
    """A code as a spreadsheet may have turned it: `1.0` -> `1`."""
    return re.sub(r"\.0+$", "", text.strip())
