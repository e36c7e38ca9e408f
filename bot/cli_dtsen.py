"""`rentan-bot import-dtsen` (one file, or the V3 pair) and `sample-dtsen`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from bot.cli_database import open_cli_database
from config.settings import Settings

if TYPE_CHECKING:
    from storage.dtsen import ImportSummary


def _cmd_import_dtsen(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from storage.dtsen import DtsenImportError, import_dtsen, parse_column_map
    from storage.recheck import RecheckRepository
    from usecases.recheck import RecheckSummary, recheck_after_import

    secret = settings.require_pii_secret()
    try:
        column_map = parse_column_map(args.map or "")
    except ValueError as error:
        print(f"rentan-bot: --map: {error}", file=sys.stderr)
        return 2
    if args.families is not None and column_map:
        print("rentan-bot: --map is for the one-file form, not PERSONS FAMILIES", file=sys.stderr)
        return 2
    if args.families is None and args.codebook is not None:
        print("rentan-bot: --codebook needs the family file too", file=sys.stderr)
        return 2
    max_bad_share = (
        settings.dtsen_max_bad_share if args.max_bad_share is None else args.max_bad_share
    )
    # NIK birth dates and "not in the future" are judged by the calendar in Kota Bekasi (WIB).
    today = (datetime.now(UTC) + timedelta(hours=7)).date()

    imported: list[ImportSummary] = []

    async def _import() -> tuple[ImportSummary, RecheckSummary]:
        async with open_cli_database(settings, secret=secret) as database:
            summary = await import_dtsen(
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
                families=Path(args.families) if args.families else None,
                codebook=Path(args.codebook) if args.codebook else None,
                region_code=settings.program_region_code,
            )
            imported.append(summary)
            # Applications the new table may change; this process has no Telegram, so the
            # messages go to the outbox and the running bot sends them.
            recheck = await recheck_after_import(
                RecheckRepository(database),
                rules=settings.eligibility_rules,
                today=today,
                now=datetime.now(UTC),
                admin_ids=settings.admin_ids,
            )
            return summary, recheck

    try:
        summary, recheck = asyncio.run(_import())
    except DtsenImportError as error:
        print(f"rentan-bot: import-dtsen: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if imported:
            # The new table serves; the re-check is one transaction, so none of it was kept.
            print(imported[0].describe())
            print(
                "rentan-bot: import-dtsen: the re-check was interrupted and kept nothing: "
                "import the same file again to re-check",
                file=sys.stderr,
            )
            return 130
        print("rentan-bot: import-dtsen interrupted: the previous table stays", file=sys.stderr)
        return 130
    print(summary.describe())
    print(recheck.describe())
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
    if args.v3:
        from bot.sample_dtsen_v3 import write_v3_sample

        pair = write_v3_sample(output, rows=args.rows, seed=args.seed, bad_rows=args.bad_rows)
        print(
            f"wrote {args.rows:,} synthetic persons ({args.bad_rows:,} bad) to "
            f"{pair.persons}, their families to {pair.families} and the codebook to "
            f"{pair.codebook} in {time.perf_counter() - started:.1f} s"
        )
        return 0
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


def add_dtsen_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """DTSEN import and the synthetic sample generator."""
    dtsen = sub.add_parser(
        "import-dtsen",
        help="replace the DTSEN table with a CSV or XLSX extract (atomically)",
        description="Bad rows are skipped and reported; too many of them abort the import.",
    )
    dtsen.add_argument(
        "file",
        help="CSV (comma or semicolon, UTF-8) or XLSX file; or the persons file of a DTSEN V3 "
        "pair (anggota_keluarga_*.csv)",
    )
    dtsen.add_argument(
        "families",
        nargs="?",
        help="the family file of a DTSEN V3 pair (keluarga_*.csv), joined on the KK number",
    )
    dtsen.add_argument(
        "--codebook",
        metavar="FILE",
        help="Kode_DTSEN_*.xlsx (kolom, kode, keterangan) to decode a V3 pair's coded values",
    )
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
    sample.add_argument("--rows", type=int, default=2_000, help="data rows (persons) to write")
    sample.add_argument("--seed", type=int, default=7, help="same seed, same file")
    sample.add_argument("--bad-rows", type=int, default=0, help="rows the import must skip")
    sample.add_argument(
        "--v3",
        action="store_true",
        help="write a DTSEN V3 pair (persons, families) and its codebook into the directory -o",
    )
    sample.add_argument("-o", "--output", required=True, help="FILE.csv, FILE.xlsx, or a DIR")
    sample.set_defaults(func=_cmd_sample_dtsen)
