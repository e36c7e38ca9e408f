"""The `rentan-bot` command: parses arguments, loads settings once, and calls into the bot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

from bot.logs import configure_logging
from config.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from storage.engine import Database

Command = Callable[[argparse.Namespace, Settings], int]


@contextlib.asynccontextmanager
async def _open_database(
    settings: Settings, *, secret: bytes | None = None
) -> AsyncIterator[Database]:
    """The database of DATABASE_URL, migrated to the newest schema first, as `run` does: the
    README's order (import-dtsen, then run) starts from an empty database.

    With `secret`, PII_SECRET must be the key the database's NIK hashes were made with (its
    fingerprint is stored on first use). SettingsError, one line, when the database cannot be
    opened or the key differs.
    """
    from storage.installation import pii_key_matches
    from storage.opening import DatabaseUnreachableError, open_database

    try:
        async with open_database(
            settings.database_url, synchronous=settings.sqlite_synchronous
        ) as database:
            if secret is not None and not await pii_key_matches(database, secret):
                raise SettingsError(
                    "PII_SECRET is not the key this database's NIK hashes were made with: set "
                    'the key used before (a new key would make every worker "not found" in DTSEN)'
                )
            yield database
    except DatabaseUnreachableError as error:
        # The operator knows the setting, not the code: name it.
        raise SettingsError(
            f"cannot open the database of DATABASE_URL ({error.url}): {error.reason}"
        ) from None


async def _prepare_database(settings: Settings, *, secret: bytes | None = None) -> None:
    """Migrate (and check the key) without keeping the database open."""
    async with _open_database(settings, secret=secret):
        pass


def _cmd_run(_args: argparse.Namespace, settings: Settings) -> int:
    settings.require_token()
    secret = settings.require_pii_secret()
    from bot.app import run_polling, run_webhook

    # Migrated again (a no-op) by run_*: this one checks PII_SECRET before anything is served.
    asyncio.run(_prepare_database(settings, secret=secret))

    if settings.webhook_url:
        run_webhook(settings)
    else:
        run_polling(settings)
    return 0


def _cmd_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from storage.migrate import current_revision

    async def _migrate() -> str | None:
        async with _open_database(settings) as database:
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
    asyncio.run(_prepare_database(settings))
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

    return run_demo(settings, data_dir=args.data_dir)


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
    demo.set_defaults(func=_cmd_demo)

    _add_dtsen_commands(sub)
    _add_report_commands(sub)
    return parser


def _cmd_import_dtsen(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from storage.dtsen import DtsenImportError, ImportSummary, import_dtsen, parse_column_map

    secret = settings.require_pii_secret()
    try:
        column_map = parse_column_map(args.map or "")
    except ValueError as error:
        print(f"rentan-bot: --map: {error}", file=sys.stderr)
        return 2
    max_bad_share = (
        settings.dtsen_max_bad_share if args.max_bad_share is None else args.max_bad_share
    )
    # NIK birth dates and "not in the future" are judged by the calendar in Kota Bekasi (WIB).
    today = (datetime.now(UTC) + timedelta(hours=7)).date()

    async def _import() -> ImportSummary:
        async with _open_database(settings, secret=secret) as database:
            return await import_dtsen(
                database,
                Path(args.file),
                secret=secret,
                column_map=column_map,
                max_bad_share=max_bad_share,
                max_shrink_share=None if args.allow_shrink else settings.dtsen_max_shrink_share,
                report_path=Path(args.report) if args.report else None,
                today=today,
                progress=sys.stderr.isatty(),
                actor="cli",
            )

    try:
        summary = asyncio.run(_import())
    except DtsenImportError as error:
        print(f"rentan-bot: import-dtsen: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rentan-bot: import-dtsen interrupted: the previous table stays", file=sys.stderr)
        return 130
    print(summary.describe())
    if summary.rows_skipped and summary.report_path is not None:
        print(f"skipped rows (masked NIKs): {summary.report_path}")
    elif summary.rows_skipped:
        print("add --report FILE to list the skipped rows")
    return 0


def _cmd_sample_dtsen(args: argparse.Namespace, _settings: Settings) -> int:
    import time
    from pathlib import Path

    from bot.sample_dtsen import write_sample

    output = Path(args.output)
    if args.bad_rows > args.rows:
        print("rentan-bot: --bad-rows cannot exceed --rows", file=sys.stderr)
        return 2
    started = time.perf_counter()
    xlsx = output.suffix.casefold() == ".xlsx"
    write_sample(
        output,
        rows=args.rows,
        seed=args.seed,
        bad_rows=args.bad_rows,
        fmt="xlsx" if xlsx else "csv",
    )
    print(
        f"wrote {args.rows:,} synthetic rows ({args.bad_rows:,} bad) to {output} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _add_dtsen_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """DTSEN import and the synthetic sample generator."""
    dtsen = sub.add_parser(
        "import-dtsen",
        help="replace the DTSEN table with a CSV or XLSX extract (atomically)",
        description="Bad rows are skipped and reported; too many of them abort the import.",
    )
    dtsen.add_argument("file", help="CSV (comma or semicolon, UTF-8) or XLSX file")
    dtsen.add_argument(
        "--map",
        metavar="FIELD=COLUMN,...",
        help="source column names for fields, e.g. nik=NIK_ART,nama=NAMA",
    )
    dtsen.add_argument("--report", metavar="FILE", help="write skipped rows here (CSV)")
    dtsen.add_argument(
        "--max-bad-share",
        type=float,
        default=None,
        metavar="SHARE",
        help="abort above this share of bad rows (default: DTSEN_MAX_BAD_SHARE, 0.05)",
    )
    dtsen.add_argument(
        "--allow-shrink",
        action="store_true",
        help="replace the table even when the extract has far fewer rows "
        "(default: refused above DTSEN_MAX_SHRINK_SHARE, 0.20, fewer)",
    )
    dtsen.set_defaults(func=_cmd_import_dtsen)

    sample = sub.add_parser("sample-dtsen", help="write a synthetic DTSEN extract (no real data)")
    sample.add_argument("--rows", type=int, required=True, help="data rows to write")
    sample.add_argument("--seed", type=int, required=True, help="same seed, same file")
    sample.add_argument("--bad-rows", type=int, default=0, help="rows the import must skip")
    sample.add_argument("-o", "--output", required=True, help="FILE.csv or FILE.xlsx")
    sample.set_defaults(func=_cmd_sample_dtsen)


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
        async with _open_database(settings) as database:
            stats = await ReportRepository(database).statistics(
                premium_idr=settings.program_premium_idr,
                budget_idr=settings.program_budget_idr,
                effective_quota=settings.effective_quota,
                days=args.days,
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
    console.print(
        escape(_(reports.PREMIUM_LINE).format(premium=reports.format_idr(stats.premium_idr)))
    )
    console.print(escape(_(reports.LIVE_LINE).format(count=reports.format_number(stats.live))))
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
    from storage.exports import ExportRepository
    from storage.models import Status
    from storage.review import ReviewRepository

    target = Path(args.output)
    kind = args.format or ("xlsx" if target.suffix.casefold() == ".xlsx" else "csv")
    if not target.parent.is_dir():
        print(f"rentan-bot: no such folder: {target.parent}", file=sys.stderr)
        return 1

    # The list goes to BPJS Ketenagakerjaan, whose forms are in Bahasa Indonesia, whatever
    # language the operator reads.
    bahasa = Catalogs().get("id")._
    writer = write_xlsx if kind == "xlsx" else write_csv

    async def _export() -> int:
        async with _open_database(settings) as database:
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


def _cmd_import_kpj(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import date
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
        async with _open_database(settings, secret=secret) as database:
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
    export.set_defaults(func=_cmd_export)

    import_kpj = sub.add_parser(
        "import-kpj", help="enrol approved workers from a BPJS file of NIK, KPJ, tgl_mulai"
    )
    import_kpj.add_argument("file", help="a .csv or .xlsx file")
    import_kpj.add_argument(
        "--actor-id", type=int, default=None, help="Telegram user id recorded in the audit"
    )
    import_kpj.set_defaults(func=_cmd_import_kpj)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rentan-bot` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        code: int = args.func(args, settings)
    except SettingsError as error:
        print(f"rentan-bot: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
