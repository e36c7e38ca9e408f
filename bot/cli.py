"""The `rentan-bot` command: parses arguments, loads settings once, and calls into the bot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Sequence

from bot.logs import configure_logging
from bot.settings import Settings, SettingsError, load_settings

Command = Callable[[argparse.Namespace, Settings], int]


def _cmd_run(_args: argparse.Namespace, settings: Settings) -> int:
    settings.require_token()
    settings.require_pii_secret()
    from bot.app import run_polling

    run_polling(settings)
    return 0


def _cmd_migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from storage.engine import Database
    from storage.migrate import current_revision, upgrade

    async def _migrate() -> str | None:
        database = Database.from_url(settings.database_url)
        try:
            await upgrade(database)
            return await current_revision(database)
        finally:
            await database.dispose()

    revision = asyncio.run(_migrate())
    print(f"database is at revision {revision}")
    return 0


def _cmd_emulator(args: argparse.Namespace, _settings: Settings) -> int:
    from bot.emulator import serve

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

    sub.add_parser("run", help="run the bot (long polling)").set_defaults(func=_cmd_run)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=_cmd_migrate)

    emulator = sub.add_parser("emulator", help="run the local Telegram Bot API emulator")
    emulator.add_argument("--port", type=int, default=8081)
    emulator.add_argument("--latency", type=float, default=0.0, help="seconds per Bot API call")
    emulator.set_defaults(func=_cmd_emulator)

    demo = sub.add_parser("demo", help="chat with the bot in this terminal, no setup needed")
    demo.add_argument("--data-dir", default="demo-data", help="where the demo keeps its files")
    demo.set_defaults(func=_cmd_demo)

    _add_dtsen_commands(sub)
    return parser


def _add_dtsen_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """DTSEN import and the synthetic sample generator."""


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
