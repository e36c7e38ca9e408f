"""The two-file DTSEN extract ("V3": persons and families, joined on the KK number): DuckDB reads
the family file into memory, then streams the persons file once, joined and checked in SQL,
as Arrow batches, packed with each NIK's keyed hash here (v3_pack); writer processes (v3_rows)
make the rows and write them on SQLite.

Only what a rule or a reviewer uses leaves DuckDB (see COLUMNS_V3); the other ~90 variables of
the two files are never read past the CSV scanner.
"""

from __future__ import annotations

import contextlib
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from domain.eligibility import GENDER_SPELLINGS, normalize_gender
from domain.nik import check_nik
from domain.pii import mask_nik
from domain.regions import load_regions
from storage.dtsen.contract import BadRow, Cancelled, DtsenImportError, SkipReason
from storage.dtsen.importer import PARALLEL_MIN_BYTES, ImportJob
from storage.dtsen.parsers import ParserProcesses
from storage.dtsen.sqlite_load import SqliteLoader
from storage.dtsen.v3_pack import NikFields, pack
from storage.dtsen.v3_rows import WORKER_CODE, Chunk, build_rows, read_ahead, write_in_turns
from storage.dtsen.validate import KeyedHash, Parsed
from storage.spreadsheets import SpreadsheetError, cell_text, normalise_header, open_xlsx

PERSON_REQUIRED = ("nomor_induk_kependudukan", "nomor_kartu_keluarga", "nama", "tanggal_lahir",
                   "jenis_kelamin")  # fmt: skip
FAMILY_REQUIRED = ("nomor_kartu_keluarga", "desil_nasional", "desil_provinsi",
                   "desil_kabupaten_kota")  # fmt: skip
# The work variables, decoded through the codebook, and the column each is stored in.
WORK_COLUMNS = {
    "status_bekerja": "status_bekerja",
    "status_dalam_pekerjaan_utama": "status_dalam_pekerjaan",
    "lapangan_usaha_dari_pekerjaan_utama": "lapangan_usaha",
}
# Headers that only the other file has: a family file given as the persons file, or the reverse.
FAMILY_ONLY = ("desil_nasional", "jumlah_anggota_keluarga", "nama_kepala_keluarga")
PERSON_ONLY = ("nomor_induk_kependudukan", "status_hubungan_keluarga")
# Below this share of persons finding their family, the files do not belong together.
MIN_MATCHED_SHARE = 0.5
DELIMITERS = ("|", ",", ";", "\t")
# DuckDB's memory: the join's build side (one row per family) and the scan's buffers; it spills
# to its temporary directory beyond this, so the import's RSS stays bounded. DuckDB keeps what
# it once used, so this is most of its share of the peak RSS. Kota Bekasi (2,6 M persons,
# 800.000 families, the KK as a number) runs at 64 MB (slower: it spills) and at 100 MB as fast
# as at 200 MB, ~35 MB smaller.
DUCKDB_MEMORY = "100MB"
# Bytes the CSV scanner reads at a time (DuckDB: 32 MB): a little slower, less memory. It goes
# with DUCKDB_MEMORY: each scanner thread pins a few buffers, so at 8 MB the family file's
# parallel scan ran out of 100 MB.
CSV_BUFFER = 4 << 20
# Bytes of finished batches DuckDB's stream may queue ahead of this process (DuckDB: 10 MB).
STREAM_BUFFER = "2MB"
# Rows per Arrow batch from DuckDB: each batch takes the GIL on DuckDB's side, which waits up
# to the switch interval (5 ms) while this process hashes: 4096 rows a batch cost ~3 s so.
FETCH_ROWS = 32_768
# Rows per chunk handed to a writer process, and per write (one transaction each).
CHUNK_ROWS = 8192
# Persons on which the files' match and the codebook are judged before the whole file is read.
HEAD_ROWS = 10_000
# Writer processes for a big pair on SQLite (~55 MB each): one makes the rows and writes them
# (~6 s of CPU for Kota Bekasi) while DuckDB and this process read, check, pack and hash; a
# second was no faster on 2 cores and took the peak RSS past 500 MB.
WRITERS = 1
# Chunks a writer process may hold at once: the next one waits in its pipe while it writes.
AHEAD = 2


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


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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


class PairReader:
    """The two files in an in-memory DuckDB of its own (memory capped, spilling to a temporary
    directory): checks that they belong together, then yields loadable and skipped rows."""

    def __init__(self, persons: Path, families: Path, *, codebook: Path | None, secret: bytes,
                 today: date, region_code: str) -> None:  # fmt: skip
        import duckdb

        self.persons, self.families = persons, families
        self.p = Header.read(persons, "persons")
        self.f = Header.read(families, "families")
        check_headers(persons, self.p, families, self.f)
        self.book = read_codebook(codebook, self.p, self.f) if codebook is not None else {}
        self.hasher = KeyedHash(secret)
        self.today = today
        self.region_code = region_code.replace(".", "")
        self.nik_fields = NikFields(today)
        self._dir = tempfile.mkdtemp(prefix="rentan-dtsen-")
        # In memory, spilling to the temporary directory past the memory limit.
        self.db = duckdb.connect()
        self.db.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
        self.db.execute(f"SET temp_directory = {_literal(str(Path(self._dir) / 'spill'))}")
        self.db.execute("SET preserve_insertion_order = true")
        self.db.execute(f"SET streaming_buffer_size = '{STREAM_BUFFER}'")

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def interrupt(self) -> None:
        self.db.interrupt()

    def _scan(self, path: Path, header: Header) -> str:
        names = ", ".join(_literal(name) for name in header.names)
        return (
            f"read_csv({_literal(str(path))}, delim={_literal(header.delimiter)}, header=true, "
            f"all_varchar=true, null_padding=true, buffer_size={CSV_BUFFER}, quote='\"', "
            f"escape='\"', names=[{names}])"
        )

    def _col(self, header: Header, name: str) -> str:
        return _quote(name) if name in header.names else "NULL::VARCHAR"

    def _persons(self, limit: int | None = None) -> str:
        """The persons file as a subquery, values normalised, numbered by line."""
        p = self.p
        nik, kk = self._col(p, "nomor_induk_kependudukan"), self._col(p, "nomor_kartu_keluarga")
        work = ", ".join(f"{_CODE.format(self._col(p, name))} AS {name}" for name in WORK_COLUMNS)
        ktp = _DIGITS.format(self._col(p, "kode_kabupaten_kota_ktp"), 4)
        ktp_province = _DIGITS.format(self._col(p, "kode_provinsi_ktp"), 2)
        return (
            f"(SELECT row_number() OVER () + 1 AS line, "
            f"{_ID.format(nik)} AS nik, {_SCI.format(nik)} OR {_SCI.format(kk)} AS sci, "
            f"{_ID.format(kk)} AS kk, trim(coalesce(nama, '')) AS nama, "
            f"{_DATE.format('tanggal_lahir')} AS born, "
            f"lower(trim(coalesce(jenis_kelamin, ''))) AS jk, "
            f"CASE WHEN length({ktp}) = 4 THEN {ktp} WHEN length({ktp}) = 2 "
            f"AND length({ktp_province}) = 2 THEN {ktp_province} || {ktp} END AS ktp, {work} "
            f"FROM {self._scan(self.persons, p)}{f' LIMIT {limit}' if limit else ''})"
        )

    def stage(self) -> int:
        """Read the family file into table f (one row per family, flagged: first row of its KK
        or not); the number of family rows."""
        f, db = self.f, self.db
        self._names_table()
        kel = _DIGITS.format(self._col(f, "kode_kelurahan_desa"), 10)
        # Each level's own two digits, however much of the code the column repeats.
        parts = " || ".join(
            f"lpad(right({_DIGITS.format(self._col(f, name), 2)}, 2), 2, '0')"
            for name in ("kode_provinsi", "kode_kabupaten_kota", "kode_kecamatan")
        )
        has_parts = {"kode_provinsi", "kode_kabupaten_kota", "kode_kecamatan"} <= set(f.names)
        by_parts = (
            f"WHEN length({kel}) BETWEEN 1 AND 4 THEN {parts} || lpad({kel}, 4, '0')"
            if has_parts
            else ""
        )
        by_name = (
            f"{_NAME_KEY.format(self._col(f, 'kecamatan'))} || '/' || "
            f"{_NAME_KEY.format(self._col(f, 'kelurahan_desa'))}"
        )
        fkk = self._col(f, "nomor_kartu_keluarga")
        db.execute(
            # The KK as a number and the desils as bytes: the join's hash table holds one
            # row a family (~800.000), 90 MB with the KK as text.
            "CREATE TABLE f AS SELECT s.line::INTEGER AS line, try_cast(s.kk AS UBIGINT) AS kk, "
            "s.sci, s.d1::TINYINT AS d1, s.d2::TINYINT AS d2, s.d3::TINYINT AS d3, "
            "coalesce(s.kode, names.code) AS kode, "
            "row_number() OVER (PARTITION BY s.kk ORDER BY s.line) = 1 AS first "
            "FROM (SELECT row_number() OVER () + 1 AS line, "
            f"{_ID.format(fkk)} AS kk, {_SCI.format(fkk)} AS sci, "
            f"{_DESIL.format('desil_nasional')} AS d1, {_DESIL.format('desil_provinsi')} AS d2, "
            f"{_DESIL.format('desil_kabupaten_kota')} AS d3, "
            f"CASE WHEN length({kel}) = 10 THEN {kel} {by_parts} END AS kode, "
            f"{by_name} AS name_key FROM {self._scan(self.families, f)}) s "
            "LEFT JOIN names ON names.name_key = s.name_key"
        )
        families = int(_one(db, "SELECT count(*) FROM f"))
        if families == 0:
            raise DtsenImportError(
                f"{self.families.name} has no family rows: nothing imported, the previous "
                "table stays"
            )
        return families

    def _names_table(self) -> None:
        """kecamatan/kelurahan name keys -> kelurahan code, for files that carry only names."""
        regions = load_regions()
        rows: dict[str, str] = {}
        for kecamatan in regions.kecamatan_of(self.region_code):
            for village in regions.kelurahan_of(kecamatan.code):
                key = f"{_key(kecamatan.name)}/{_key(village.name)}"
                rows.setdefault(key, village.code)
        self.db.execute("CREATE TABLE names (name_key VARCHAR, code VARCHAR)")
        if rows:
            self.db.executemany("INSERT INTO names VALUES (?, ?)", list(rows.items()))

    def check(self) -> None:
        """DtsenImportError when the files do not belong together or the codebook does not fit
        them, judged on the first HEAD_ROWS persons (the whole file is read only once)."""
        db = self.db
        db.execute(f"CREATE TABLE head AS SELECT * FROM {self._persons(HEAD_ROWS)}")
        persons = int(_one(db, "SELECT count(*) FROM head"))
        matched = int(_one(db, "SELECT count(*) FROM head WHERE try_cast(kk AS UBIGINT) IN "
                                "(SELECT kk FROM f)"))  # fmt: skip
        if persons and matched < MIN_MATCHED_SHARE * persons:
            regency = _one(db, "SELECT coalesce(mode(left(kode, 4)), '?') FROM f")
            issued = _one(db, "SELECT coalesce(mode(left(kk, 4)), '?') FROM head")
            raise DtsenImportError(
                f"{self.persons.name} and {self.families.name} do not belong together: only "
                f"{matched:,} of the first {persons:,} persons have their KK in the family file "
                f"(families of {regency}, persons' KKs from {issued}): nothing imported, the "
                "previous table stays"
            )
        self._codebook_tables()

    def _codebook_tables(self) -> None:
        db = self.db
        db.execute("CREATE TABLE cb (kolom VARCHAR, kode VARCHAR, keterangan VARCHAR)")
        entries = [(k, c, text) for k, codes in self.book.items() for c, text in codes.items()]
        if entries:
            db.executemany("INSERT INTO cb VALUES (?, ?, ?)", entries)
        for name in WORK_COLUMNS:
            if name not in self.book:
                continue
            found, known = db.execute(
                f"SELECT count(DISTINCT {name}), count(DISTINCT {name}) FILTER (WHERE {name} IN "
                f"(SELECT kode FROM cb WHERE kolom = {_literal(name)})) FROM head"
            ).fetchone() or (0, 0)
            if found and not known:
                raise DtsenImportError(
                    f"codebook does not match the files: none of the {found:,} codes of {name} "
                    f"in {self.persons.name} is in it"
                )
        genders: dict[str, str] = dict(GENDER_SPELLINGS)
        for code, meaning in self.book.get("jenis_kelamin", {}).items():
            genders[code.casefold()] = normalize_gender(meaning) or ""
        db.execute("CREATE TABLE g (raw VARCHAR, sex VARCHAR)")
        db.executemany("INSERT INTO g VALUES (?, ?)", list(genders.items()))

    def chunks(self) -> Generator[Chunk, None, None]:
        """One pass over the persons file joined to the families, checked, in file order, a
        Chunk at a time (rows are built by `build_rows`). NIKs listed twice are left to
        `Duplicates`."""
        inner = (  # the columns of Chunk, with the reason and the family's line
            "SELECT p.line, CASE "
            "WHEN p.sci THEN 'scientific_notation' "
            "WHEN NOT (length(p.nik) = 16 AND regexp_full_match(p.nik, '[0-9]{16}') "
            "AND right(p.nik, 4) <> '0000') THEN 'bad_nik' "
            "WHEN fam.kk IS NULL THEN 'no_family' "
            "WHEN p.nama = '' THEN 'missing_nama' "
            f"WHEN p.born IS NULL OR year(p.born) < 1900 OR p.born > DATE '{self.today}' "
            "THEN 'bad_date' "
            "WHEN coalesce(g.sex, '') = '' THEN 'bad_jenis_kelamin' "
            "WHEN fam.kode IS NULL THEN 'bad_kode_wilayah' "
            "WHEN fam.d1 IS NULL OR fam.d1 < 0 OR fam.d2 < 0 OR fam.d3 < 0 THEN 'bad_desil' "
            "END AS reason, p.nik, left(p.nama, 200) AS nama, p.born, g.sex, fam.kode, "
            f"fam.d1, fam.d2, fam.d3, p.ktp, {', '.join(f'p.{name}' for name in WORK_COLUMNS)}, "
            "fam.line "
            f"FROM {self._persons()} p "
            "LEFT JOIN (SELECT * FROM f WHERE first AND NOT sci) fam "
            "ON fam.kk = try_cast(p.kk AS UBIGINT) "
            "LEFT JOIN g ON g.raw = p.jk"
        )  # no ORDER BY: DuckDB keeps the file's order here (preserve_insertion_order)
        # Arrow batches, not tuples: fetchmany made ~15 Python objects a row holding the GIL
        # (~3 µs a row, as much as the SQLite write). Each batch is checked further and packed
        # in C and numpy (`pack`), and made into Python values by the writer processes on the
        # other core; DuckDB runs the query on a thread of its own (see read_ahead).
        books = [self.book.get(name) for name in WORK_COLUMNS]
        batches = read_ahead(self.db.sql(inner).to_arrow_reader(FETCH_ROWS))
        with contextlib.closing(batches):
            for whole in batches:
                for at in range(0, whole.num_rows, CHUNK_ROWS):
                    yield self._chunk(whole.slice(at, CHUNK_ROWS), books)

    def _chunk(self, batch: Any, books: list[dict[str, str] | None]) -> Chunk:
        """A checked slice of the pass as a Chunk."""
        reason = self.nik_fields.check(batch.column(1), batch.column(2))
        good, bad = batch, []
        if reason.null_count < len(reason):
            good = batch.filter(pc.is_null(reason))
            skipped = batch.filter(pc.is_valid(reason))
            lines, niks = skipped.column(0).to_pylist(), skipped.column(2).to_pylist()
            reasons = reason.filter(pc.is_valid(reason)).to_pylist()
            bad = [
                (line, why, self._detail(why, nik), mask_nik(nik))
                for line, why, nik in zip(lines, reasons, niks, strict=True)
            ]
        families = batch.column(batch.num_columns - 1).drop_null().to_numpy()
        packed, niks, lines = pack(good, books, self.hasher)
        return Chunk(packed, bad, families, niks, lines)

    def family_rows(self, found: npt.NDArray[np.bool_]) -> list[BadRow]:
        """Skipped rows of the family file: KK in scientific notation, KK listed again, and
        families none of whose lines is marked in `found` (nobody in the persons file)."""
        flags = self.db.execute("SELECT line, sci, first FROM f ORDER BY line").fetchnumpy()
        lines, sci, first = flags["line"], flags["sci"], flags["first"]
        nobody = ~found[np.minimum(lines, len(found) - 1)]
        rows: list[BadRow] = []
        for line, is_sci, is_first, alone in zip(lines.tolist(), sci.tolist(), first.tolist(),
                                                 nobody.tolist(), strict=True):  # fmt: skip
            if is_sci:
                rows.append((line, "scientific_notation", "family_file", ""))
            elif not is_first:
                rows.append((line, "duplicate_kk", "family_file", ""))
            elif alone:
                rows.append((line, "family_without_persons", "family_file", ""))
        return rows

    def _detail(self, reason: str, nik: str) -> str:
        if reason == "bad_nik":
            return str(check_nik(nik, self.today) or "invalid")
        return ""


def _key(name: str) -> str:
    """A region name as the SQL name key compares it."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _one(db: Any, sql: str) -> Any:
    row = db.execute(sql).fetchone()
    return row[0] if row else None


class PairJob(ImportJob):
    """An import of the persons file and the family file together (same report, same swap)."""

    def __init__(self, *, families: Path, codebook: Path | None, region_code: str,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.families = families
        self.codebook = codebook
        self.region_code = region_code
        self._reader: PairReader | None = None

    def cancel(self) -> None:
        super().cancel()
        if self._reader is not None:
            self._reader.interrupt()

    def load(self) -> None:
        # Arrow's buffers from the system allocator while the pair loads: mimalloc (Arrow's
        # default) kept ~25 MB more of the freed batches (peak RSS 452 MB vs 426 MB here).
        pool = pa.default_memory_pool()
        pa.set_memory_pool(pa.system_memory_pool())
        try:
            self._load_pair()
        finally:
            pa.set_memory_pool(pool)

    def _load_pair(self) -> None:
        import duckdb

        # Writer processes start (~0.3 s) while DuckDB reads the family file.
        writers = self._start_writers()
        reader = PairReader(self.source, self.families, codebook=self.codebook,
                            secret=self.secret, today=self.today,
                            region_code=self.region_code)  # fmt: skip
        self._reader = reader
        try:
            self.bar.phase(f"{self.families.name}: reading")
            families = reader.stage()
            reader.check()
            self.bar.phase(f"{self.source.name}: joining, checking, loading")
            found = np.zeros(families + 2, np.bool_)  # by family line
            # Closed before the reader: its thread must be out of DuckDB first.
            with contextlib.closing(reader.chunks()) as chunks:
                if writers is None:
                    self._write_beside(chunks, found)
                else:
                    self._write_in_processes(writers, chunks, found)
            self._account(Parsed([], reader.family_rows(found), *_NO_ROWS), self.read, None)
        except duckdb.InterruptException:
            raise Cancelled from None
        except (duckdb.Error, pa.ArrowException) as error:  # Arrow's carry DuckDB's, streamed
            if self._stop.is_set():
                raise Cancelled from None
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DtsenImportError(
                f"cannot read {self.source.name} and {self.families.name}: {first[:200]}"
            ) from None
        finally:
            self._reader = None
            reader.close()
        no_family = self.report.counts[SkipReason.NO_FAMILY]
        if self.read and no_family > MIN_MATCHED_SHARE * self.read:
            raise DtsenImportError(
                f"{self.source.name} and {self.families.name} do not belong together: "
                f"{no_family:,} of {self.read:,} persons have no family row: nothing imported, "
                "the previous table stays"
            )

    def _start_writers(self) -> ParserProcesses | None:
        """Writer processes for a big pair on SQLite (by default from PARALLEL_MIN_BYTES of
        persons), else None: rows are then built and written by this process."""
        if not isinstance(self.loader, SqliteLoader) or not self.source.is_file():
            return None
        parallel = self.parallel
        if parallel is None:
            parallel = self.source.stat().st_size >= PARALLEL_MIN_BYTES
        if not parallel:
            return None
        config = (str(Path(self.loader.path).resolve()),)
        self._parsers = ParserProcesses(WRITERS, config, code=WORKER_CODE)
        return self._parsers

    def _write_in_processes(self, writers: ParserProcesses, chunks: Iterator[Chunk],
                            found: npt.NDArray[np.bool_]) -> None:  # fmt: skip
        """The writer processes make the rows of each chunk and write them, on another core than
        DuckDB and this thread (see `write_in_turns`); the rows never exist here."""

        def handed(chunk: Chunk) -> None:
            found[chunk.families] = True
            self.duplicates.add(chunk.niks, chunk.lines)
            self._account(Parsed([], chunk.bad, *_NO_ROWS), self.read, None)

        def written(rows: int) -> None:
            self.loaded += rows
            self.read += rows

        write_in_turns(writers, WRITERS * AHEAD, chunks, self._stop, handed, written)
        writers.close()
        self._parsers = None

    def _write_beside(self, chunks: Iterator[Chunk], found: npt.NDArray[np.bool_]) -> None:
        """Build each chunk's rows here and write them on a thread of its own while this one
        builds the next (sqlite3 and DuckDB release the GIL while they work)."""
        pending: queue.Queue[list[tuple[Any, ...]] | None] = queue.Queue(maxsize=1)
        failed: list[BaseException] = []

        def write() -> None:
            while (rows := pending.get()) is not None:
                if not failed:
                    try:
                        self.loader.write(rows)  # COLUMNS_V3 rows: the loader was made for them
                    except BaseException as error:
                        failed.append(error)

        writer = threading.Thread(target=write, name="dtsen-v3-writer", daemon=True)
        writer.start()
        try:
            for chunk in chunks:
                if failed:
                    break
                rows = build_rows(chunk.columns)
                pending.put(rows)
                found[chunk.families] = True
                self._account(Parsed(rows, chunk.bad, chunk.niks, chunk.lines), self.read, None)
        finally:
            pending.put(None)
            writer.join()
        if failed:
            raise failed[0]


_NO_ROWS = np.empty(0, np.int64), np.empty(0, np.int32)
