"""Validating DTSEN records: the per-row loop, the numpy path over whole CSV blocks, and the
keyed hash of each NIK; rows for the staging table out, skipped rows with their reason aside."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from operator import itemgetter

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from domain.dates import InvalidDate, parse_date
from domain.eligibility import GENDER_SPELLINGS, normalize_gender
from domain.nik import check_nik, clean_nik_digits, nik_fast_sets
from domain.pii import digest_key, mask_nik
from storage.dtsen.contract import MAX_NAMA, BadRow, Columns, Record, Row, SkipReason
from storage.dtsen.csv_source import blank_record, csv_records, split_line

NikArray = npt.NDArray[np.int64]
LineArray = npt.NDArray[np.int32]


@dataclass
class Parsed:
    """One chunk after validation: rows to load, rows skipped, and the NIKs for de-duplication."""

    rows: list[Row]
    bad: list[BadRow]
    niks: NikArray
    lines: LineArray


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class KeyedHash:
    """HMAC-SHA256 digests equal to `domain.pii.identifier_digest` (a test holds them equal), at
    less than half the cost.

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


# The domain's gender rule (normalize_gender) as a table of spellings as they usually come, so
# most rows take one dict hit; any other text goes through the rule itself. A test holds the
# table to the rule.
GENDERS: dict[str, str] = {
    spelling: gender
    for key, gender in GENDER_SPELLINGS.items()
    for spelling in (key, key.upper(), key.title())
}
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
_POWERS_OF_TEN = 10 ** np.arange(15, -1, -1, dtype=np.int64)
# For `Validator.block`: digits as numbers, and where the digits of a date are.
_BIRTH_FIELD_WEIGHTS = 10 ** np.arange(5, -1, -1, dtype=np.int32)
_YEAR_WEIGHTS = 10 ** np.arange(3, -1, -1, dtype=np.int32)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int32)
_DATE_SEPARATORS = np.array([ord("-"), ord("/"), ord(".")], np.uint8)
_DMY_DIGITS = [0, 1, 3, 4, 6, 7, 8, 9]
_YMD_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]
_DMY_TO_ISO = [6, 7, 8, 9, 2, 3, 4, 5, 0, 1]  # DD-MM-YYYY -> YYYY?MM?DD (separators reset)
_Bytes = npt.NDArray[np.uint8]


class Validator:
    """Turns records into rows for the staging table, or into skipped rows with a reason."""

    def __init__(self, columns: Columns, *, secret: bytes, today: date) -> None:
        self.columns = columns
        self.today = today
        self.hash = KeyedHash(secret)
        self._dates: dict[str, str] = {}
        self._codes: dict[str, str] = {}
        # check_nik's sets as lookup tables for `block`: province code and DDMMYY -> valid.
        provinces, births = nik_fast_sets(today)
        self._provinces = np.zeros(100, np.bool_)
        self._provinces[[int(code) for code in provinces if len(code) == 2]] = True
        self._births = np.zeros(1_000_000, np.bool_)
        self._births[[int(field) for field in births]] = True
        self._today = today.year * 10_000 + today.month * 100 + today.day

    def chunks(self, records: Iterable[Record], chunk_rows: int) -> Iterator[Parsed]:
        """The hot loop: common values hit dicts, anything odd takes a slow path."""
        required = itemgetter(*self.columns.required)
        # check_nik's fast path, inlined (one Python call fewer per row); failures take the
        # full decoder in _slow_nik for their reason.
        provinces, births = nik_fast_sets(self.today)
        nik_at = self.columns.required[0]
        inner_copy = self.hash.inner.copy
        outer_copy = self.hash.outer.copy
        dates = self._dates
        genders = GENDERS
        desils = _DESILS
        rows: list[Row] = []
        bad: list[BadRow] = []
        niks: list[str] = []
        for line, cells in records:
            try:
                nik, nama, born, gender, code, desil_text = required(cells)
            except IndexError:
                if not blank_record(cells):  # a blank line is not a row
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
                    if not blank_record(cells):  # a row of empty cells is not a row either
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
                sex = normalize_gender(gender)
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
            # HMAC-SHA256 inlined (see KeyedHash): a method call per row is measurable here.
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

    def block(self, text: str, *, delimiter: str, width: int, first_line: int) -> Parsed:
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
        parsed = Parsed(
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
            (first_line + index, split_line(_text(raw[start:end]), delimiter, width))
            for index, start, end in zip(
                slow.tolist(), starts[slow].tolist(), ends[slow].tolist(), strict=True
            )
        ]
        return _merge(parsed, next(self.chunks(records, sys.maxsize)))

    def _by_row(self, text: str, delimiter: str, width: int, first_line: int) -> Parsed:
        """A block the numpy path does not read, validated a row at a time."""
        records = csv_records(text, delimiter, width=width, quoted=False, first_line=first_line)
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


def _text(cell: str | bytes) -> str:
    return cell if isinstance(cell, str) else cell.decode()


def _chunk(rows: list[Row], bad: list[BadRow], niks: list[str]) -> Parsed:
    """Package a chunk, turning its NIKs into int64s (12 bytes a row with the line)."""
    digits = np.frombuffer("".join(niks).encode("ascii"), dtype=np.uint8).reshape(-1, 16)
    return Parsed(
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


def _merge(many: Parsed, few: Parsed) -> Parsed:
    """Two validated parts of one block, back in line order (the second one small)."""
    at = np.searchsorted(many.lines, few.lines)
    rows = many.rows
    for position, row in zip(at.tolist()[::-1], few.rows[::-1], strict=True):
        rows.insert(position, row)  # from the end, so earlier positions stay right
    return Parsed(
        rows=rows,
        bad=few.bad,
        niks=np.insert(many.niks, at, few.niks),
        lines=np.insert(many.lines, at, few.lines),
    )


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
