"""What a DTSEN import tells: the summary, the CSV report of skipped rows (duplicate NIKs merged
in at the end) and the progress bar."""

from __future__ import annotations

import csv
import heapq
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from domain.pii import mask_nik
from storage.dtsen.contract import BadRow, SkipReason
from storage.dtsen.validate import LineArray, NikArray

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_DUPLICATE_NIK = SkipReason.DUPLICATE_NIK.value  # plain str, like the other reasons in a BadRow


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


_BUCKETS = 1 << 20  # by the NIK's low bits (its serial number's), a power of two


class Duplicates:
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
        # Only rows whose NIK falls in a bucket of a repeated one are searched for: binary
        # searches over every row took 0,12 s of 0,15 s for Kota Bekasi.
        buckets = np.zeros(_BUCKETS, np.bool_)
        buckets[repeated & (_BUCKETS - 1)] = True
        candidates = np.flatnonzero(buckets[niks & (_BUCKETS - 1)])
        slots = np.searchsorted(repeated, niks[candidates])
        np.minimum(slots, len(repeated) - 1, out=slots)
        where = candidates[repeated[slots] == niks[candidates]]
        del slots, candidates
        lines = np.concatenate(self._lines)
        self._lines = []
        found: list[BadRow] = []
        first_seen: set[int] = set()
        for line, nik in sorted(zip(lines[where].tolist(), niks[where].tolist(), strict=True)):
            if nik in first_seen:
                found.append((line, _DUPLICATE_NIK, "earlier_row", mask_nik(f"{nik:016d}")))
            first_seen.add(nik)
        return found


class Report:
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


class ProgressBar:
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
