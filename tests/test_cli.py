"""The `rentan-bot` command as an operator uses it, in real subprocesses."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

from bot.emulator_client import EmulatorClient
from tests.harness import TEST_PII_SECRET, TEST_TOKEN

ROOT = Path(__file__).resolve().parent.parent


def _env(**values: str) -> dict[str, str]:
    """A clean environment: only what the operator set, plus what Python needs."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {**keep, "PYTHONPATH": str(ROOT), **values}


def _rentan(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_run_without_a_token_exits_with_one_clear_line(tmp_path: Path) -> None:
    """No token: exit code 2 and one line naming TELEGRAM_BOT_TOKEN, no traceback."""
    result = _rentan("run", env=_env(), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "TELEGRAM_BOT_TOKEN" in lines[0]


def test_bad_setting_exits_with_one_line_naming_it(tmp_path: Path) -> None:
    """A typo in a number fails at start-up with the variable's name."""
    env = _env(TELEGRAM_BOT_TOKEN=TEST_TOKEN, PROGRAM_QUOTA="10.000")
    result = _rentan("run", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "PROGRAM_QUOTA" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_without_pii_secret_refuses_to_start(tmp_path: Path) -> None:
    """Without the blind-index key the bot would hash NIKs with nothing: it does not start."""
    result = _rentan("run", env=_env(TELEGRAM_BOT_TOKEN=TEST_TOKEN), cwd=tmp_path)
    assert result.returncode == 2
    assert "PII_SECRET" in result.stderr


def test_migrate_brings_a_new_database_to_head(tmp_path: Path) -> None:
    """`rentan-bot migrate` creates the schema and says which revision it is at."""
    env = _env(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    result = _rentan("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "revision" in result.stdout
    assert (tmp_path / "m.db").exists()


async def test_run_against_the_standalone_emulator_answers_start(tmp_path: Path) -> None:
    """`rentan-bot emulator` in one process, `rentan-bot run` in another, a user says /start."""
    port = _free_port()
    base = [sys.executable, "-m", "bot.cli"]
    emulator = subprocess.Popen(
        [*base, "emulator", "--port", str(port)],
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bot_env = _env(
        TELEGRAM_BOT_TOKEN=TEST_TOKEN,
        TELEGRAM_API_URL=f"http://127.0.0.1:{port}",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        PII_SECRET=TEST_PII_SECRET,
    )
    bot = subprocess.Popen(
        [*base, "run"],
        env=bot_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with EmulatorClient(f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    await client.stats()
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            await client.send(777001, "/start")
            reply = await client.wait_for_reply(777001, r"Selamat datang", within=20.0)
        assert "BPJS Ketenagakerjaan" in reply.text
    finally:
        # The bot confirms its last offset on the way out, so the emulator must outlive it.
        bot.terminate()
        _, errors = bot.communicate(timeout=20)
        emulator.terminate()
        emulator.wait(timeout=20)
    assert bot.returncode == 0, errors
    assert b"Traceback" not in errors, errors.decode()
