"""What the flow benchmark's three processes share: identities, the line protocol, statistics."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeAlias

JSONDict: TypeAlias = dict[str, Any]

OUT_DIR = Path(__file__).resolve().parent / "out"

BENCH_TOKEN = "424242:BENCH-token-for-the-local-emulator"
BENCH_PII_SECRET = "bench-secret-not-for-production-0123456789"
# Telegram user ids of the simulated workers: USER_BASE + index into the people list.
USER_BASE = 700_000_000
PEOPLE_SEED = 20261125


def cpu_plan() -> tuple[list[int], list[int]]:
    """CPUs for the bot and for the load generator: one each where there are two or more.

    The bot is pinned through its own CPU_AFFINITY setting, as an operator would run it
    (README); BENCH_NO_PIN=1 leaves both to the scheduler, for comparison.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or os.environ.get("BENCH_NO_PIN"):
        return [], []
    return [cpus[0]], cpus[1:]


class StallMonitor:
    """How long a process stopped serving: its cyclic GC passes and its event loop's lateness.

    A benchmark's latency tail is often one process pausing; this says which one and why.
    """

    def __init__(self, tick: float = 0.05) -> None:
        self.tick = tick
        self.gc_started: float | None = None
        self.gc_ms: list[tuple[int, float]] = []  # (generation, ms) of each pass
        self.lag_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.gc_started = time.perf_counter()
        elif self.gc_started is not None:
            self.gc_ms.append((info["generation"], (time.perf_counter() - self.gc_started) * 1e3))
            self.gc_started = None

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.tick)
            self.lag_ms.append((time.perf_counter() - before - self.tick) * 1e3)

    def start(self) -> None:
        """Record GC passes and loop lateness from now on (call inside the running loop)."""
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    def stop(self) -> None:
        """Stop recording."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()

    def summary(self) -> JSONDict:
        """Longest and total GC pause per generation, and the loop's worst lateness."""
        by_generation: JSONDict = {}
        for generation in sorted({g for g, _ in self.gc_ms}):
            pauses = [ms for g, ms in self.gc_ms if g == generation]
            by_generation[str(generation)] = {
                "passes": len(pauses),
                "max_ms": round(max(pauses), 1),
                "total_ms": round(sum(pauses), 1),
            }
        lags = sorted(self.lag_ms)
        return {
            "gc": by_generation,
            "loop_lag_max_ms": round(lags[-1], 1) if lags else None,
            "loop_lag_p99_ms": round(lags[int(0.99 * (len(lags) - 1))], 1) if lags else None,
            "loop_lags_over_1s": sum(1 for lag in lags if lag > 1000),
        }


# Protocol lines are JSON objects on stdout with this prefix, so a stray print from a library
# can never be mistaken for a result.
PREFIX = "@@bench "


def emit(message: JSONDict) -> None:
    """Send one protocol message to the parent process."""
    sys.stdout.write(PREFIX + json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def parse_line(line: bytes | str) -> JSONDict | None:
    """The protocol message in a line of a child's stdout, or None for anything else."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    if not text.startswith(PREFIX):
        return None
    body = json.loads(text[len(PREFIX) :])
    return body if isinstance(body, dict) else None


@cache
def people(count: int) -> list[Any]:
    """The same synthetic DTSEN people in every process (both sides derive them from the seed)."""
    from testkit.factories import make_people

    return make_people(count, seed=PEOPLE_SEED)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence (inf stands for "never answered")."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(fraction * len(sorted_values)) - 1, 0)
    return sorted_values[min(rank, len(sorted_values) - 1)]


def cpu_in_window(
    samples: Sequence[Sequence[float]], start: float, end: float, column: int = 1
) -> float:
    """CPU seconds spent between two wall-clock times, interpolated from (time, cpu...) samples."""

    def at(moment: float) -> float:
        if moment <= samples[0][0]:
            return samples[0][column]
        for a, b in itertools.pairwise(samples):
            if a[0] <= moment <= b[0]:
                share = (moment - a[0]) / (b[0] - a[0]) if b[0] > a[0] else 1.0
                return a[column] + share * (b[column] - a[column])
        return samples[-1][column]

    if not samples:
        return math.nan
    return at(end) - at(start)
