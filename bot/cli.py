"""The `rentan-bot` command: parses arguments, loads settings once, and calls into the bot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from bot import cli_dtsen, cohort_cli
from bot.cli_database import open_cli_database, prepare_database, today_in_the_city
from bot.logs import configure_logging
from config.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from pathlib import Path


Command = Callable[[argparse.Namespace, Settings], int]


def _cmd_run(_args: argparse.Namespace, settings: Settings) -> int:
    settings.require_token()
    secret = settings.require_pii_secret()
    from bot.app import run_polling, run_webhook

    # Migrated again (a no-op) by run_*: this one checks PII_SECRET before anything is served.
    asyncio.run(prepare_database(settings, secret=secret))

    if settings.webhook_url:
        run_webhook(settings)
    else:
        run_polling(settings)
    return 0


def _cmd_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from storage.migrate import current_revision

    async def _migrate() -> str | None:
        async with open_cli_database(settings) as database:
            return await current_revision(database)

    revision = asyncio.run(_migrate())
    print(f"database is at revision {revision}")
    return 0


def _cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from storage.backup import BackupError, BackupReport, backup_sqlite, pg_dump_command
    from storage.engine import is_sqlite

    target = Path(args.file)
    if not is_sqlite(settings.database_url):
        # pg_dump takes a consistent snapshot of a live PostgreSQL database already.
        print("rentan-bot: backup copies SQLite only; for PostgreSQL run:", file=sys.stderr)
        print(pg_dump_command(settings.database_url, target))
        return 2
    if not target.parent.is_dir():
        print(f"rentan-bot: no such folder: {target.parent}", file=sys.stderr)
        return 1
    asyncio.run(prepare_database(settings, create=False))
    try:
        report: BackupReport = asyncio.run(backup_sqlite(settings.database_url, target))
    except BackupError as error:
        print(f"rentan-bot: backup: {error}", file=sys.stderr)
        return 1
    print(report.describe())
    return 0 if report.ok else 1


def _cmd_emulator(args: argparse.Namespace, _settings: Settings) -> int:
    from emulator import serve

    print(f"Bot API emulator on http://127.0.0.1:{args.port} (Ctrl-C to stop)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, latency=args.latency))
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.demo import run_demo

    return run_demo(settings, data_dir=args.data_dir, fresh=args.fresh)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="rentan-bot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "run", help="run the bot (long polling, or a webhook when WEBHOOK_URL is set)"
    ).set_defaults(func=_cmd_run)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=_cmd_migrate)

    backup = sub.add_parser(
        "backup", help="copy the SQLite database while the bot runs, then verify the copy"
    )
    backup.add_argument("file", help="where to write the copy (mode 0600; replaced atomically)")
    backup.set_defaults(func=_cmd_backup)

    emulator = sub.add_parser("emulator", help="run the local Telegram Bot API emulator")
    emulator.add_argument("--port", type=int, default=8081)
    emulator.add_argument("--latency", type=float, default=0.0, help="seconds per Bot API call")
    emulator.set_defaults(func=_cmd_emulator)

    demo = sub.add_parser("demo", help="chat with the bot in this terminal, no setup needed")
    demo.add_argument("--data-dir", default="demo-data", help="where the demo keeps its files")
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="start over: remove the data folder's database, key, ids and saved files first",
    )
    demo.set_defaults(func=_cmd_demo)

    cli_dtsen.add_dtsen_commands(sub)
    _add_report_commands(sub)
    cohort_cli.add_command(sub)
    return parser


def _cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from config.catalogs import Catalogs
    from domain import reports
    from domain.appeals import AppealStats, appeal_lines
    from domain.regions import load_regions
    from storage.appeals import AppealRepository
    from storage.models import utcnow
    from storage.reports import ReportRepository
    from usecases.appeals import appeal_statistics

    async def _statistics() -> tuple[reports.Statistics, AppealStats]:
        async with open_cli_database(settings, create=False) as database:
            stats = await ReportRepository(database).statistics(
                budget=settings.budget, days=args.days
            )
            appeals = await appeal_statistics(AppealRepository(database), now=utcnow())
            return stats, appeals

    stats, appeals = asyncio.run(_statistics())
    _ = Catalogs().get(settings.default_language)._
    regions = load_regions()
    console = Console()

    def table(title: str, first: str, rows: Sequence[tuple[str, int | str]]) -> Table:
        grid = Table(title=escape(title), title_justify="left", min_width=48)
        grid.add_column(escape(first))
        grid.add_column(escape(_(reports.COUNT)), justify="right")
        for label, value in rows:
            shown = reports.format_number(value) if isinstance(value, int) else value
            grid.add_row(escape(label), escape(shown))
        return grid

    console.print(f"[bold]{escape(_(reports.TITLE))}[/bold]")
    moment = reports.format_moment(stats.generated_at, stats.utc_offset)
    console.print(escape(_(reports.AS_OF).format(moment=moment)))
    console.print(escape(reports.quota_line(stats, _)))
    console.print(escape(reports.budget_line(stats, _)))
    for line in reports.money_lines(stats, _):
        console.print(escape(line))
    console.print(escape(_(reports.LIVE_LINE).format(count=reports.format_number(stats.live))))
    console.print(f"[bold]{escape(_(reports.YEAR_TITLE))}[/bold]")
    console.print(escape(reports.year_line(stats, _)))
    months = Table(title=escape(_(reports.PER_MONTH)), title_justify="left", min_width=48)
    months.add_column(escape(_(reports.MONTH)))
    months.add_column(escape(_(reports.PARTICIPANTS)), justify="right")
    months.add_column(escape(_(reports.PREMIUMS)), justify="right")
    for month, people, idr in reports.month_rows(stats):
        months.add_row(escape(month), escape(people), escape(idr))
    console.print(months)
    console.print(table(_(reports.BY_STATUS), _(reports.STATUS), reports.status_rows(stats, _)))
    kecamatan = reports.kecamatan_rows(stats, _, regions, limit=1000)
    console.print(table(_(reports.BY_KECAMATAN), _(reports.KECAMATAN), kecamatan))
    occupations = reports.occupation_rows(stats, _, limit=1000)
    console.print(table(_(reports.BY_OCCUPATION), _(reports.OCCUPATION), occupations))
    console.print(table(_(reports.BY_DESIL), _(reports.DESIL), reports.desil_rows(stats, _)))
    days = [(reports.day_label(day), count) for day, count in stats.per_day]
    title = _(reports.PER_DAY).format(days=len(days))
    console.print(table(title, _(reports.DAY), days))
    appeal_title, *appeal_rest = appeal_lines(appeals, _)
    console.print(f"[bold]{escape(appeal_title)}[/bold]")
    for line in appeal_rest:
        console.print(escape(line))
    return 0


def _cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from config.catalogs import Catalogs
    from domain.exports import EXPORT_DONE, write_csv, write_xlsx
    from domain.lifecycle import Status
    from storage.exports import ExportRepository
    from storage.review import ReviewRepository

    target = Path(args.output)
    kind = args.format or ("xlsx" if target.suffix.casefold() == ".xlsx" else "csv")
    if not target.parent.is_dir():
        print(f"rentan-bot: no such folder: {target.parent}", file=sys.stderr)
        return 1

    # The list goes to BPJS Ketenagakerjaan, whose forms are in Bahasa Indonesia, whatever
    # language the operator reads.
    bahasa = Catalogs().get("id")._
    if args.annex:
        return _export_annex(settings, target, kind, bahasa)
    writer = write_xlsx if kind == "xlsx" else write_csv

    async def _export() -> int:
        async with open_cli_database(settings, create=False) as database:
            status = Status(args.status)
            rows = await ExportRepository(database).collect(statuses=(status,))
            count = writer(rows, target, period=args.period, translate=bahasa)
            # Who ran the CLI is not known here: the audit names the CLI (no Telegram id).
            await ReviewRepository(database).record_export(
                actor_id=None, source="cli", statuses=(status,), rows=count, kind=kind
            )
            return count

    count = asyncio.run(_export())
    _ = Catalogs().get(settings.default_language)._
    print(_(EXPORT_DONE).format(count=count, path=target))
    return 0


def _export_annex(
    settings: Settings, target: Path, kind: str, bahasa: Callable[[str], str]
) -> int:
    """`export --annex`: the decree's annex, in Bahasa like the list, audited like it."""
    from config.catalogs import Catalogs
    from domain.annex import ANNEX_DONE, AnnexTotals, write_annex
    from domain.lifecycle import PLACE_HOLDING
    from domain.reports import format_idr
    from storage.exports import ExportRepository
    from storage.review import ReviewRepository

    if kind != "xlsx":
        print("rentan-bot: the annex is an XLSX file: name it FILE.xlsx", file=sys.stderr)
        return 1

    async def _annex() -> AnnexTotals:
        async with open_cli_database(settings) as database:
            rows = await ExportRepository(database).annex_rows()
            totals = write_annex(rows, target, budget=settings.budget, translate=bahasa)
            await ReviewRepository(database).record_export(
                actor_id=None,
                source="cli",
                statuses=PLACE_HOLDING,
                rows=totals.participants,
                kind="annex",
            )
            return totals

    totals = asyncio.run(_annex())
    _ = Catalogs().get(settings.default_language)._
    print(
        _(ANNEX_DONE).format(
            count=totals.participants, premium=format_idr(totals.premium_idr), path=target
        )
    )
    return 0


def _cmd_import_kpj(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from config.catalogs import Catalogs
    from storage.enrollment import (
        IMPORT_SUMMARY,
        LINE,
        REASON,
        EnrollmentReport,
        KpjFileError,
        import_kpj,
    )

    secret = settings.require_pii_secret()
    _ = Catalogs().get(settings.default_language)._
    source = Path(args.file)
    if not source.is_file():
        print(f"rentan-bot: no such file: {source}", file=sys.stderr)
        return 1

    async def _import() -> EnrollmentReport:
        async with open_cli_database(settings, secret=secret, create=False) as database:
            return await import_kpj(
                database,
                source,
                filename=source.name,
                secret=secret,
                actor_id=args.actor_id,
                today=date.today(),
                max_rows=settings.kpj_max_rows,
                max_uncompressed_bytes=settings.kpj_max_uncompressed_mb * 1024 * 1024,
            )

    try:
        report = asyncio.run(_import())
    except KpjFileError as error:
        print(f"rentan-bot: {error.message(_)}", file=sys.stderr)
        return 1
    console = Console()
    if report.problems:
        # Masked NIKs only: the terminal may be logged or shared.
        grid = Table()
        grid.add_column(escape(_(LINE)), justify="right")
        grid.add_column("NIK")
        grid.add_column(escape(_(REASON)))
        for problem in report.problems:
            grid.add_row(str(problem.line), problem.masked_nik, escape(problem.message(_)))
        console.print(grid)
    summary = _(IMPORT_SUMMARY).format(
        applied=report.applied, rows=report.rows, problems=len(report.problems)
    )
    console.print(escape(summary))
    return 0 if report.ok else 1


def _cmd_import_coverage(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from config.catalogs import Catalogs
    from storage.coverage import (
        COVERAGE_SUMMARY,
        CoverageProblem,
        CoverageReport,
        import_coverage,
        parse_coverage_map,
        sample_lines,
    )
    from storage.enrollment import LINE, REASON, KpjFileError

    _ = Catalogs().get(settings.default_language)._
    try:
        column_map = parse_coverage_map(args.map or "")
    except ValueError as error:
        print(f"rentan-bot: --map: {error}", file=sys.stderr)
        return 2
    source = Path(args.file)
    if not source.is_file():
        print(f"rentan-bot: no such file: {source}", file=sys.stderr)
        return 1

    async def _import() -> CoverageReport:
        async with open_cli_database(settings) as database:
            return await import_coverage(
                database,
                source,
                filename=source.name,
                today=today_in_the_city(),
                column_map=column_map,
                max_rows=settings.kpj_max_rows,
                max_unpacked=settings.kpj_max_uncompressed_mb * 1024 * 1024,
            )

    try:
        report = asyncio.run(_import())
    except KpjFileError as error:
        print(f"rentan-bot: import-coverage: {error.message(_)}", file=sys.stderr)
        return 1
    for problem in sample_lines(report):
        print(f"{_(LINE)} {problem.line}: {_(REASON).lower()}: {problem.message(_)}")
    if len(report.problems) > len(sample_lines(report)):
        print(f"... +{len(report.problems) - len(sample_lines(report))}")
    unknown = report.count(CoverageProblem.UNKNOWN_KPJ)
    future = report.count(CoverageProblem.FUTURE_MONTH)
    print(
        _(COVERAGE_SUMMARY).format(
            applied=report.applied,
            rows=report.rows,
            unknown=unknown,
            future=future,
            other=len(report.problems) - unknown - future,
        )
    )
    return 0 if report.ok else 1


def _add_report_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Statistics, the BPJS export and the KPJ import (staff reporting and enrolment)."""
    stats = sub.add_parser("stats", help="print programme statistics")
    stats.add_argument("--days", type=int, default=14, help="days of submissions to show")
    stats.set_defaults(func=_cmd_stats)

    export = sub.add_parser(
        "export", help="write the list for BPJS Ketenagakerjaan (full NIKs: keep it private)"
    )
    export.add_argument("--status", choices=("approved", "enrolled"), default="approved")
    export.add_argument(
        "--format", choices=("csv", "xlsx"), help="default: from the file name, else csv"
    )
    export.add_argument("-o", "--output", required=True, help="file to write (mode 0600)")
    export.add_argument("--period", default="12 bulan", help="the PERIODE column")
    export.add_argument(
        "--annex",
        action="store_true",
        help="instead, the decree's annex (XLSX): approved and enrolled participants numbered "
        "per kecamatan and kelurahan, with totals and the premium total of the cover period",
    )
    export.set_defaults(func=_cmd_export)

    import_kpj = sub.add_parser(
        "import-kpj", help="enrol approved workers from a BPJS file of NIK, KPJ, tgl_mulai"
    )
    import_kpj.add_argument("file", help="a .csv or .xlsx file")
    import_kpj.add_argument(
        "--actor-id", type=int, default=None, help="Telegram user id recorded in the audit"
    )
    import_kpj.set_defaults(func=_cmd_import_kpj)

    coverage = sub.add_parser(
        "import-coverage",
        help="set how far premiums are paid from BPJS's member list (KPJ, iuran s.d.)",
    )
    coverage.add_argument("file", help="a .csv or .xlsx file")
    coverage.add_argument(
        "--map",
        metavar="FIELD=COLUMN,...",
        help="source column names, e.g. kpj=NO_KPJ,paid_through=BULAN_TERAKHIR",
    )
    coverage.set_defaults(func=_cmd_import_coverage)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rentan-bot` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        for line in settings.deprecations:
            logging.getLogger("rentan_bot.settings").warning("%s", line)
        code: int = args.func(args, settings)
    except SettingsError as error:
        print(f"rentan-bot: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
