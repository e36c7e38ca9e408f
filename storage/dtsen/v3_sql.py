"""The SQL DuckDB runs on a DTSEN V3 pair: each file's CSV scan with its values normalised (NIK
and KK numbers, codes, desils, dates, the domicile from a whole code, its parts or the names),
the persons' pass with each row's reason to be skipped, and the family table.

Neither query joins or numbers rows: DuckDB then scans a file on all its threads and still
hands the rows over in file order, which is what numbers them. DuckDB guarantees that order for
SELECT, WHERE and subqueries of one table, not for joins (duckdb.org/docs/2.0/sql/dialect/
order_preservation; tests/test_dtsen_v3.py checks it on a file scanned in ~25 pieces); numbering
in SQL (row_number() OVER ()) made the pass single-threaded. The join to the families is
v3_pack's, in numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path

from storage.dtsen.v3_files import Header
from storage.dtsen.v3_pack import Reason

# A NIK or KK number as text: spaces and a leading apostrophe gone, a float's `.0` dropped. Each
# expression tests the usual forms first (and an empty cell): a regular expression per cell cost
# ~1 µs a row.
_ID = (
    "CASE WHEN length({0}) = 16 THEN {0} ELSE regexp_replace(regexp_replace("
    r"coalesce({0}, ''), '[\s'']', '', 'g'), '\.0*$', '') END"
)
_SCI = (
    "CASE WHEN length({0}) = 16 THEN false ELSE "
    r"regexp_matches(coalesce({0}, ''), '^\s*[0-9.,]+[eE][+]?[0-9]+\s*$') END"
)
_CODE = (
    "CASE WHEN length({0}) BETWEEN 1 AND 2 THEN {0} WHEN coalesce({0}, '') = '' THEN NULL ELSE "
    r"nullif(regexp_replace(trim(coalesce({0}, '')), '\.0+$', ''), '') END"
)
_DIGITS = (
    "CASE WHEN length({0}) = {1} THEN {0} WHEN coalesce({0}, '') = '' THEN '' ELSE "
    r"regexp_replace(regexp_replace(trim(coalesce({0}, '')), '\.0+$', ''), '[^0-9]', '', 'g') END"
)
_NAME_KEY = r"regexp_replace(lower(coalesce({0}, '')), '[^a-z0-9]', '', 'g')"
# A desil as text: NULL when empty, -1 when not an integer 1-10 (the row is then refused).
_DESIL = (
    "CASE WHEN coalesce(trim({0}), '') = '' THEN NULL "
    "WHEN try_cast(trim({0}) AS DOUBLE) BETWEEN 1 AND 10 "
    "AND try_cast(trim({0}) AS DOUBLE) = floor(try_cast(trim({0}) AS DOUBLE)) "
    "THEN try_cast(trim({0}) AS DOUBLE)::INTEGER ELSE -1 END"
)
_DATE = (
    "coalesce(try_cast({0} AS DATE), coalesce(try_strptime(trim({0}), '%d-%m-%Y'), "
    "try_strptime(trim({0}), '%d/%m/%Y'), try_strptime(trim({0}), '%d.%m.%Y'))::DATE)"
)
# The work variables, decoded through the codebook, and the column each is stored in.
WORK_COLUMNS = {
    "status_bekerja": "status_bekerja",
    "status_dalam_pekerjaan_utama": "status_dalam_pekerjaan",
    "lapangan_usaha_dari_pekerjaan_utama": "lapangan_usaha",
}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def scan(path: Path, header: Header, buffer_size: int) -> str:
    """read_csv of a whole file, every column as text, named as `header` normalised them."""
    names = ", ".join(literal(name) for name in header.names)
    return (
        f"read_csv({literal(str(path))}, delim={literal(header.delimiter)}, header=true, "
        f"all_varchar=true, null_padding=true, buffer_size={buffer_size}, quote='\"', "
        f"escape='\"', names=[{names}])"
    )


def column(header: Header, name: str) -> str:
    return quote(name) if name in header.names else "NULL::VARCHAR"


def persons(source: str, header: Header, genders: Mapping[str, str]) -> str:
    """The persons of `source` (a scan) as a subquery, values normalised; `genders` maps each
    lower-cased spelling (and codebook code) of jenis_kelamin to L or P."""
    nik = column(header, "nomor_induk_kependudukan")
    kk = column(header, "nomor_kartu_keluarga")
    work = ", ".join(f"{_CODE.format(column(header, name))} AS {name}" for name in WORK_COLUMNS)
    ktp = _DIGITS.format(column(header, "kode_kabupaten_kota_ktp"), 4)
    ktp_province = _DIGITS.format(column(header, "kode_provinsi_ktp"), 2)
    spellings = " ".join(
        f"WHEN {literal(raw)} THEN {literal(sex)}" for raw, sex in genders.items() if sex
    )
    return (
        f"(SELECT {_ID.format(nik)} AS nik, {_SCI.format(nik)} OR {_SCI.format(kk)} AS sci, "
        f"{_ID.format(kk)} AS kk, trim(coalesce(nama, '')) AS nama, "
        f"{_DATE.format('tanggal_lahir')} AS born, "
        f"CASE lower(trim(coalesce(jenis_kelamin, ''))) {spellings} END AS sex, "
        f"CASE WHEN length({ktp}) = 4 THEN {ktp} WHEN length({ktp}) = 2 "
        f"AND length({ktp_province}) = 2 THEN {ktp_province} || {ktp} END AS ktp, {work} "
        f"FROM {source})"
    )


def persons_pass(persons_subquery: str, today: date) -> str:
    """The columns of v3_pack.PersonsColumns: the reason a person is skipped whatever their
    family (NULL: none yet), then the values. Reasons are tested in Reason's order; the ones
    that depend on the family come after the join."""
    return (
        "SELECT CASE "
        f"WHEN p.sci THEN {Reason.SCIENTIFIC_NOTATION} "
        "WHEN NOT (length(p.nik) = 16 AND regexp_full_match(p.nik, '[0-9]{16}') "
        f"AND right(p.nik, 4) <> '0000') THEN {Reason.BAD_NIK} "
        f"WHEN p.nama = '' THEN {Reason.MISSING_NAMA} "
        f"WHEN p.born IS NULL OR year(p.born) < 1900 OR p.born > DATE '{today}' "
        f"THEN {Reason.BAD_DATE} "
        f"WHEN p.sex IS NULL THEN {Reason.BAD_JENIS_KELAMIN} "
        "END::TINYINT AS reason, p.nik, try_cast(p.kk AS UBIGINT) AS kk, "
        "left(p.nama, 200) AS nama, p.born, p.sex, p.ktp, "
        f"{', '.join(f'p.{name}' for name in WORK_COLUMNS)} "
        f"FROM {persons_subquery} p"
    )


def families(source: str, header: Header) -> str:
    """The families of `source` (a scan), in file order: the KK as a number (NULL in
    scientific notation or not a number), whether it was in scientific notation, the desils as
    bytes (-2: empty, -1: not 1-10), the kelurahan code from the whole code or its parts per
    level, else (no code) the key of the kecamatan and kelurahan names."""
    kel = _DIGITS.format(column(header, "kode_kelurahan_desa"), 10)
    # Each level's own two digits, however much of the code the column repeats.
    parts = " || ".join(
        f"lpad(right({_DIGITS.format(column(header, name), 2)}, 2), 2, '0')"
        for name in ("kode_provinsi", "kode_kabupaten_kota", "kode_kecamatan")
    )
    has_parts = {"kode_provinsi", "kode_kabupaten_kota", "kode_kecamatan"} <= set(header.names)
    by_parts = f"WHEN length({kel}) BETWEEN 1 AND 4 THEN {parts} || lpad({kel}, 4, '0')"
    # Names only where there is no code: two regular expressions a family otherwise.
    by_name = f"{_NAME_KEY.format('s.kecamatan')} || '/' || {_NAME_KEY.format('s.kelurahan')}"
    desils = ", ".join(f"coalesce(s.{d}, -2)::TINYINT AS {d}" for d in ("d1", "d2", "d3"))
    kk = column(header, "nomor_kartu_keluarga")
    return (
        "SELECT CASE WHEN s.sci THEN NULL ELSE try_cast(s.kk AS UBIGINT) END AS kk, s.sci, "
        f"{desils}, s.kode, CASE WHEN s.kode IS NULL THEN {by_name} END AS name_key "
        f"FROM (SELECT {_ID.format(kk)} AS kk, {_SCI.format(kk)} AS sci, "
        f"{_DESIL.format('desil_nasional')} AS d1, {_DESIL.format('desil_provinsi')} AS d2, "
        f"{_DESIL.format('desil_kabupaten_kota')} AS d3, "
        f"CASE WHEN length({kel}) = 10 THEN {kel} {by_parts if has_parts else ''} END AS kode, "
        f"{column(header, 'kecamatan')} AS kecamatan, "
        f"{column(header, 'kelurahan_desa')} AS kelurahan FROM {source}) s"
    )
