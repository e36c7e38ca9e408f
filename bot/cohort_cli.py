"""`rentan-bot import-cohort FILE --year 2025`: last year's participants, assessed and stored."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from usecases.cohort import CohortReport

# Problem lines printed before the rest are only counted (masked NIKs, but a terminal is shared).
SHOWN_PROBLEMS = 50


def _cmd_import_cohort(args: argparse.Namespace, settings: Settings) -> int:
    from bot.cli_database import open_cli_database
    from storage.cohort_file import CohortFileError, parse_cohort_map
    from usecases.cohort import import_cohort

    secret = settings.require_pii_secret()
    if not 2000 <= args.year <= 2100:
        print(f"rentan-bot: --year: not a programme year: {args.year}", file=sys.stderr)
        return 2
    source = Path(args.file)
    if not source.is_file():
        print(f"rentan-bot: no such file: {source}", file=sys.stderr)
        return 1
    try:
        column_map = parse_cohort_map(args.map or "")
    except ValueError as error:
        print(f"rentan-bot: --map: {error}", file=sys.stderr)
        return 2

    async def _import() -> CohortReport:
        async with open_cli_database(settings, secret=secret) as database:
            return await import_cohort(
                database,
                source,
                filename=source.name,
                column_map=column_map,
                year=args.year,
                secret=secret,
                rules=settings.eligibility_rules,
                now=datetime.now(UTC),
                code_prefix=settings.application_code_prefix,
            )

    try:
        report = asyncio.run(_import())
    except CohortFileError as error:
        print(f"rentan-bot: import-cohort: {source.name}: {error}", file=sys.stderr)
        return 1
    print(describe(report))
    return 0 if not report.skipped else 1


def describe(report: CohortReport) -> str:
    """The report for the operator: totals, then each problem (masked NIKs only)."""
    lines = [
        f"cohort {report.year}: {report.rows:,} rows read; {report.renewing:,} awaiting renewal, "
        f"{report.not_eligible:,} no longer eligible (listed for staff: /perpanjang daftar), "
        f"{report.skipped:,} not imported"
    ]
    for reason, count in sorted(report.reasons.items()):
        lines.append(f"  no longer eligible, {reason}: {count:,}")
    for kind, count in sorted(report.counts().items()):
        lines.append(f"  {kind}: {count:,}")
    for problem in report.problems[:SHOWN_PROBLEMS]:
        lines.append(f"  line {problem.line}: {problem.masked_nik} {problem.problem}")
    if len(report.problems) > SHOWN_PROBLEMS:
        lines.append(f"  ... and {len(report.problems) - SHOWN_PROBLEMS:,} more")
    return "\n".join(lines)


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The import-cohort subcommand."""
    cohort = sub.add_parser(
        "import-cohort",
        help="load last year's participants (NIK, name; KPJ, phone, birth date when present)",
        description="Each participant is assessed against the DTSEN table in service and the "
        "rules: the still eligible await renewal (/perpanjang), the others are listed for staff "
        "with the reason. One transaction; bad rows are counted and reported.",
    )
    cohort.add_argument("file", help="a .csv or .xlsx file")
    cohort.add_argument("--year", type=int, required=True, help="the cohort's year, e.g. 2025")
    cohort.add_argument(
        "--map",
        metavar="FIELD=COLUMN,...",
        help="source column names: nik, nama, kpj, phone, tanggal_lahir (e.g. nik=NIK_PESERTA)",
    )
    cohort.set_defaults(func=_cmd_import_cohort)
