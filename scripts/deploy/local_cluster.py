"""`make cluster N=3`: the Bot API emulator (Telegram, caps on), a round-robin proxy (nginx's
place) and N real `rentan-bot run` webhook processes on PostgreSQL (a throwaway cluster unless
--database-url is given), as tests/test_cluster_proof.py runs them. Ctrl-C stops everything.

    .venv/bin/python scripts/deploy/local_cluster.py --processes 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from testkit.processes import ProcessCluster, cluster_environment  # noqa: E402

TOKEN = "123456:cluster-TOKEN-abcdefghijklmnopqrstuvwxyz"


@contextlib.contextmanager
def _postgres(url: str | None) -> Iterator[tuple[str, object | None]]:
    """The given database, or a throwaway PostgreSQL cluster's (testkit.postgres)."""
    if url:
        yield url, None
        return
    from testkit.postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit(
            "PostgreSQL is not installed (no initdb): run `make postgres` as root, or give "
            "--database-url postgresql+asyncpg://..."
        )
    server = PostgresServer(bindir)
    server.start()
    try:
        name = asyncio.run(server.create_database())
        yield server.url(name), server
    finally:
        server.stop()


def _seed_dtsen(env: dict[str, str], folder: Path, rows: int) -> None:
    """A synthetic DTSEN extract imported as an operator would (`rentan-bot import-dtsen`)."""
    import subprocess

    extract = folder / "dtsen.csv"
    cli = [sys.executable, "-m", "bot.cli"]
    for args in (
        ["sample-dtsen", "--rows", str(rows), "--seed", "7", "-o", str(extract)],
        ["import-dtsen", str(extract)],
    ):
        subprocess.run([*cli, *args], env=env, cwd=folder, check=True, capture_output=True)
    print(f"DTSEN: {rows} synthetic people from {extract} (pick NIK, name, birth date there)")


async def _serve(args: argparse.Namespace, database_url: str) -> None:
    from emulator import BotApiEmulator

    emulator = BotApiEmulator(enforce_caps=not args.no_caps)
    await emulator.start("127.0.0.1", args.emulator_port)
    folder = Path(args.log_dir or tempfile.mkdtemp(prefix="rentan-cluster-"))
    folder.mkdir(parents=True, exist_ok=True)
    cluster = ProcessCluster(env={}, count=args.processes, log_dir=folder)
    url = await cluster.start_proxy()
    cluster.env = cluster_environment(
        api_url=emulator.root_url,
        database_url=database_url,
        token=TOKEN,
        pii_secret=args.pii_secret,
        webhook_url=url,
        processes=args.processes,
        admin_ids=args.admin_id,
    )
    try:
        await asyncio.to_thread(_seed_dtsen, cluster.env, folder, args.dtsen_rows)
        await cluster.start()
        caps = "off" if args.no_caps else "on"
        print(f"emulator (Telegram, caps {caps}): {emulator.root_url}")
        print(f"proxy (nginx's place), WEBHOOK_URL: {url}")
        for index, port in enumerate(cluster.ports):
            pid = cluster.processes[index].pid
            print(f"process {index}: pid {pid}, 127.0.0.1:{port}, log {cluster.log_path(index)}")
        print(f"DATABASE_URL={database_url}")
        root = f"{emulator.root_url}/_emulator"
        print(
            "Chat as user 555001:\n"
            f'  curl -s -XPOST {root}/users/555001/send -d \'{{"text": "/start"}}\'\n'
            f"  curl -s {root}/chats/555001/messages\n"
            f'  curl -s -XPOST {root}/users/555001/press -d \'{{"label": "✅ Setuju"}}\'\n'
            "`kill -9` a process: it is started again (systemd's Restart=always). Ctrl-C stops."
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            for index, process in enumerate(cluster.processes):
                if process.poll() is not None:
                    print(f"process {index} exited ({process.returncode}); starting it again")
                    await cluster.restart(index)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        codes = await cluster.stop()
        await emulator.stop()
        print(f"stopped; exit codes {codes}; logs in {folder}")


def main(argv: list[str] | None = None) -> int:
    """`make cluster N=3`: the emulator, a proxy and N webhook processes on PostgreSQL."""
    parser = argparse.ArgumentParser(prog="local_cluster.py", description=__doc__)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("CLUSTER_DATABASE_URL"))
    parser.add_argument("--emulator-port", type=int, default=8081)
    parser.add_argument("--log-dir", default=None)
    parser.add_argument("--pii-secret", default="cluster-pii-secret-0123456789")
    parser.add_argument("--admin-id", type=int, default=555000)
    parser.add_argument("--dtsen-rows", type=int, default=200)
    parser.add_argument("--no-caps", action="store_true", help="do not enforce Telegram's caps")
    args = parser.parse_args(argv)
    with (
        _postgres(args.database_url) as (database_url, _server),
        contextlib.suppress(KeyboardInterrupt),
    ):
        asyncio.run(_serve(args, database_url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
