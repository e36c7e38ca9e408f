"""What the orchestrators (bench_flow, bench_load) share: child processes speaking the `@@bench`
line protocol, the meter of other programs' CPU use, and plain-text tables."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench._common import JSONDict, parse_line

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 45.0
# Other work on this shared 2-core machine skews every figure: wait for a quiet moment first.
QUIET_CORES = 0.25
QUIET_WAIT = 30.0


class BenchError(RuntimeError):
    """A child process failed or did not answer in time."""


@dataclass
class Child:
    """A child process speaking the `@@bench` line protocol on its stdout."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    log_file: Any = field(repr=False)

    @classmethod
    async def spawn(cls, name: str, module: str, config: JSONDict, log_path: Path) -> Child:
        """Start `python -m module CONFIG`, stderr to a log file."""
        log_file = log_path.open("w")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            json.dumps(config),
            cwd=ROOT,
            env=_clean_environment(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            limit=64 * MB,  # reports carry the CPU samples of a whole run on one line
        )
        return cls(name, process, log_path, log_file)

    async def receive(self, event: str, within: float) -> JSONDict:
        """The next protocol message of this kind; BenchError on exit or timeout."""
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(within):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        raise BenchError(f"{self.name} exited early\n{self.log_tail()}")
                    message = parse_line(line)
                    if message is not None and message.get("event") == event:
                        return message
        except TimeoutError:
            raise BenchError(
                f"{self.name}: no {event!r} within {within:.0f}s\n{self.log_tail()}"
            ) from None

    async def send(self, **command: Any) -> None:
        """One JSON command on the child's stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()

    async def finish(self, within: float = STOP_TIMEOUT) -> None:
        """Wait for the child to exit; kill it (by its own pid) if it does not."""
        try:
            await asyncio.wait_for(self.process.wait(), within)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        finally:
            self.log_file.close()

    def log_tail(self, lines: int = 25) -> str:
        """The end of the child's stderr, for error messages."""
        self.log_file.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"  | {line}" for line in text[-lines:])


async def stop_children(bot: Child | None, loadgen: Child) -> None:
    """Ask the bot (if started) and the load generator to stop, and reap both."""
    if bot is not None:
        with contextlib.suppress(ConnectionError):
            await bot.send(cmd="stop")
        await bot.finish()
    with contextlib.suppress(ConnectionError):
        await loadgen.send(cmd="stop")
    await loadgen.finish()


def _clean_environment() -> dict[str, str]:
    # Settings read the environment too; a developer's PROGRAM_* or LOG_LEVEL must not leak in.
    from config.settings import Settings

    fields = {name.upper() for name in Settings.model_fields}
    return {k: v for k, v in os.environ.items() if k.upper() not in fields}


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq)


def _process_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


@dataclass
class CpuMeter:
    """Machine-wide busy CPU minus our own processes: what other programs took meanwhile."""

    pids: list[int]
    started: float = 0.0
    busy: float = 0.0
    own: float = 0.0

    def own_seconds(self) -> float:
        return sum(_process_seconds(pid) for pid in [os.getpid(), *self.pids])

    def start(self) -> None:
        self.started, self.busy, self.own = time.monotonic(), _busy_seconds(), self.own_seconds()

    def foreign_cores(self) -> float:
        """Average cores used by other processes since `start`."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        foreign = (_busy_seconds() - self.busy) - (self.own_seconds() - self.own)
        return max(foreign, 0.0) / elapsed


async def wait_for_quiet() -> float:
    """Wait (bounded) until other processes use under QUIET_CORES; return what they used."""
    deadline = time.monotonic() + QUIET_WAIT
    while True:
        meter = CpuMeter([])
        meter.start()
        await asyncio.sleep(1.0)
        foreign = meter.foreign_cores()
        if foreign < QUIET_CORES or time.monotonic() >= deadline:
            return foreign


def print_table(rows: list[list[str]], header: list[str] | None = None) -> None:
    """A plain-text table that survives any terminal and CI log."""
    header = header or ["figure", "measured", "baseline (same run)", "target", ""]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(line)


def machine() -> JSONDict:
    """What the figures depend on."""
    import telegram

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "python_telegram_bot": telegram.__version__,
        "loadavg": os.getloadavg(),
    }
