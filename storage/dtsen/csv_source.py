"""Reading a DTSEN CSV: its layout (header, delimiter, quoting), blocks of whole lines for the
parser processes, and blocks cut into records. Files are opened through storage.spreadsheets."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from storage.dtsen.contract import Columns, DtsenImportError, Record
from storage.spreadsheets import (
    MAX_LINE_BYTES,
    LineTooLong,
    NotUtf8,
    SpreadsheetError,
    Unreadable,
    decode,
    is_xlsx,
    line_ends,
    read_csv_header,
)


def split_line(line: str, delimiter: str, width: int) -> list[str]:
    """One line's cells, as `csv_records` would cut them."""
    if '"' in line:
        return next(csv.reader([line], delimiter=delimiter), [])
    return line.split(delimiter, width)


def blank_record(cells: Sequence[str]) -> bool:
    """Whether a record holds nothing but delimiters and spaces: a blank line, not a row."""
    return not "".join(cells).replace(",", "").replace(";", "").strip()


def csv_records(
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


@dataclass(frozen=True)
class CsvLayout:
    """What the header line of a CSV told: columns, delimiter, splitter, where data starts."""

    columns: Columns
    delimiter: str
    quoted: bool
    data_offset: int
    line_bytes: float  # average, from the first 64 KB

    @classmethod
    def read(cls, path: Path, column_map: Mapping[str, str]) -> CsvLayout:
        """Read the header and sample the first lines; DtsenImportError if unusable."""
        try:
            with path.open("rb") as handle:
                header = read_csv_header(handle)
        except SpreadsheetError as error:
            raise refusal(path, error) from None
        delimiter, sample = header.delimiter, header.sample
        columns = Columns.resolve(header.cells, column_map)
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
            data_offset=header.data_offset,
            line_bytes=len(sample) / lines if sample else 100.0,
        )


def refusal(path: Path, error: SpreadsheetError) -> DtsenImportError:
    """The reader's refusal as the import words it: one line, naming the file."""
    if isinstance(error, NotUtf8):
        return DtsenImportError(
            f"{path.name} is not UTF-8 text (line {error.line}): save it as CSV UTF-8 or XLSX"
        )
    if isinstance(error, LineTooLong):
        return DtsenImportError(
            f"{path.name}: line {error.line} is longer than {MAX_LINE_BYTES // 1024} KiB, which "
            "no DTSEN row is: nothing imported, the previous table stays"
        )
    if isinstance(error, Unreadable) and error.kind == "XLSX":
        return DtsenImportError(f"cannot open {path.name} as XLSX: {error.detail}")
    if isinstance(error, Unreadable):
        return DtsenImportError(f"{path.name} is not valid CSV: {error.detail}")
    return DtsenImportError(f"{path.name}: {error}")


def is_xlsx_file(path: Path) -> bool:
    """Whether the file is a zip archive: XLSX whatever its name."""
    with path.open("rb") as handle:
        return is_xlsx(handle.read(4))


def csv_blocks(path: Path, layout: CsvLayout, block_bytes: int) -> Iterator[tuple[int, int, int]]:
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
            # Every line starts in this data (carry begins at a line start): check them all,
            # the unfinished last one too, before reading any further.
            try:
                newlines = line_ends(data, first_line=line)
            except LineTooLong as error:
                raise refusal(path, error) from None
            view = np.frombuffer(data, np.uint8)
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


def read_block(handle: BinaryIO, path: Path, offset: int, length: int, line: int) -> str:
    """The text of one block, decoded; DtsenImportError naming the line of bad bytes."""
    handle.seek(offset)
    data = handle.read(length)
    try:
        return decode(data, first_line=line)
    except NotUtf8 as error:
        raise refusal(path, error) from None
