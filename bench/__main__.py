"""`make bench`: run every `bench/bench_*.py` module that has a `main()`, each in its own process.

    python -m bench [--quick] [--only NAME ...]

Each module runs in a fresh interpreter, so one benchmark's memory, threads or event loop never
colour the next one's figures, and a crash or hang in one does not stop the others. `--quick` is
passed on to modules that understand it (their source mentions `--quick`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# A hung benchmark must not hold `make bench` forever; the longest real one, bench_load's full
# launch morning on both backends, takes about 80 minutes.
MODULE_TIMEOUT = 3 * 60 * 60


def discover() -> list[str]:
    """The benchmark modules present, in a stable order."""
    return sorted(path.stem for path in HERE.glob("bench_*.py"))


def run_one(name: str, quick: bool) -> int:
    """Import one module and call its `main`, with or without an argv parameter."""
    module = importlib.import_module(f"bench.{name}")
    main = getattr(module, "main", None)
    if not callable(main):
        print(f"bench.{name}: no main(), skipped")
        return 0
    argv = ["--quick"] if quick and "--quick" in inspect.getsource(module) else []
    if inspect.signature(main).parameters:
        result = main(argv)
    else:
        # A main() without parameters parses sys.argv itself.
        sys.argv = [f"bench.{name}", *argv]
        result = main()
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    """Run the chosen (default: all) benchmark modules one after another."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs where supported")
    parser.add_argument("--only", action="append", choices=discover(), help="repeatable")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_one:
        return run_one(args.run_one, args.quick)
    outcomes: list[tuple[str, str, float]] = []
    for name in args.only or discover():
        print(f"\n===== bench.{name} =====", flush=True)
        command = [sys.executable, "-m", "bench", "--run-one", name]
        if args.quick:
            command.append("--quick")
        started = time.monotonic()
        try:
            code = subprocess.run(command, check=False, timeout=MODULE_TIMEOUT).returncode
            status = "ok" if code == 0 else f"exit {code}"
        except subprocess.TimeoutExpired:
            status = f"timed out after {MODULE_TIMEOUT}s"
        outcomes.append((name, status, time.monotonic() - started))
    print("\n===== summary =====")
    for name, status, seconds in outcomes:
        print(f"bench.{name:<16} {status:<24} {seconds:6.0f}s")
    return 0 if all(status == "ok" for _, status, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
