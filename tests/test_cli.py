"""The `rentan-bot` command as an operator uses it, in real subprocesses."""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook

from emulator.client import EmulatorClient
from storage.migrate import head_revision
from testkit.factories import make_person
from testkit.harness import TEST_PII_SECRET, TEST_TOKEN

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


def _venv_command(name: str) -> str:
    """A console script of the venv running these tests, as the README calls it."""
    return str(Path(sys.executable).parent / name)


def _readme_block(heading: str) -> list[str]:
    """The lines of the first ```sh block under a heading of the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    return block.splitlines()


def test_readme_order_imports_dtsen_into_a_new_installation(tmp_path: Path) -> None:
    """The README's "Running against real Telegram" block, line by line, in an empty folder:
    the .env as shown, `import-dtsen` before any `migrate`, and `run` finds the schema."""
    lines = _readme_block("Running against real Telegram")
    commands: list[list[str]] = []
    env_lines: list[str] | None = None
    for line in lines:
        if line.startswith("cat > .env"):
            env_lines = []
        elif env_lines is not None and line == "ENV":
            (tmp_path / ".env").write_text("\n".join(env_lines) + "\n", encoding="utf-8")
            env_lines = None
        elif env_lines is not None:
            # Synthetic values for the placeholders, whatever the README shows.
            name = line.partition("=")[0]
            value = {"TELEGRAM_BOT_TOKEN": TEST_TOKEN, "PII_SECRET": TEST_PII_SECRET}.get(name)
            env_lines.append(f"{name}={value}" if value else line)
        elif line.startswith(".venv/bin/rentan-bot "):
            commands.append(shlex.split(line.removeprefix(".venv/bin/rentan-bot ")))
    assert (tmp_path / ".env").is_file()
    assert [c[0] for c in commands] == ["import-dtsen", "run"]
    import_args, _run = commands
    # The city's extract calls its columns NIK_ART and NAMA, as the README's --map says.
    extract = tmp_path / import_args[1]
    bin_ = _venv_command("rentan-bot")
    env = _env()  # DATABASE_URL unset: the default rentan.db in this folder
    made = subprocess.run(
        [bin_, "sample-dtsen", "--rows", "300", "--seed", "7", "-o", str(extract)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    _rename_columns(extract, {"nik": "NIK_ART", "nama": "NAMA"})

    imported = subprocess.run(
        [bin_, *import_args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert imported.returncode == 0, imported.stderr
    assert "loaded 300 rows" in imported.stdout
    assert not list(tmp_path.glob("*.dtsen-import.lock"))

    # What `run` does first (migrate) finds the database at the newest revision, with the rows.
    with sqlite3.connect(tmp_path / "rentan.db") as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        (rows,) = connection.execute("SELECT count(*) FROM dtsen_record").fetchone()
    assert (revision, rows) == (head_revision("sqlite+aiosqlite:///rentan.db"), 300)
    stats = subprocess.run(
        [bin_, "stats"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert stats.returncode == 0, stats.stderr


def _rename_columns(path: Path, names: dict[str, str]) -> None:
    """Rename header cells of an XLSX, as another extract would call the same columns."""
    workbook = load_workbook(path)
    sheet = workbook.worksheets[0]
    for cell in sheet[1]:
        if cell.value in names:
            cell.value = names[str(cell.value)]
    workbook.save(path)


@pytest.mark.parametrize("command", ["stats", "export", "import-dtsen", "import-kpj", "backup"])
@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://rentan:pw@127.0.0.1:{port}/rentan",
        "sqlite+aiosqlite:///{tmp}/no-such-folder/rentan.db",
    ],
    ids=["postgres-unreachable", "sqlite-unopenable"],
)
def test_unreachable_database_is_one_line_naming_database_url(
    tmp_path: Path, command: str, url: str
) -> None:
    """A closed PostgreSQL port or an SQLite file in a missing folder: one line naming
    DATABASE_URL (the password hidden), a non-zero exit, no traceback."""
    database_url = url.format(port=_free_port(), tmp=tmp_path)
    (tmp_path / "in.csv").write_text("nik,kpj,tgl_mulai\n", encoding="utf-8")
    args = {
        "stats": ["stats"],
        "export": ["export", "-o", str(tmp_path / "out.csv")],
        "import-dtsen": ["import-dtsen", str(tmp_path / "in.csv")],
        "import-kpj": ["import-kpj", str(tmp_path / "in.csv")],
        "backup": ["backup", str(tmp_path / "copy.db")],
    }[command]
    env = _env(DATABASE_URL=database_url, PII_SECRET=TEST_PII_SECRET)
    if command == "backup" and database_url.startswith("postgresql"):
        pytest.skip("backup prints the pg_dump command for PostgreSQL without connecting")
    result = _rentan(*args, env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL" in lines[0]
    assert ":pw@" not in lines[0]


def test_changed_pii_secret_stops_imports_and_start_up(tmp_path: Path) -> None:
    """A DTSEN table hashed with one key, then another key: import-dtsen, import-kpj and run
    each refuse with one line naming PII_SECRET, and the table in service stays."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    extract = tmp_path / "dtsen.csv"
    made = _rentan("sample-dtsen", "--rows", "50", "--seed", "3", "-o", str(extract),
                   env=_env(), cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    first = _env(DATABASE_URL=database_url, PII_SECRET=TEST_PII_SECRET)
    assert _rentan("import-dtsen", str(extract), env=first, cwd=tmp_path).returncode == 0

    (tmp_path / "kpj.csv").write_text("nik,kpj,tgl_mulai\n", encoding="utf-8")
    changed = _env(
        DATABASE_URL=database_url,
        PII_SECRET="a-different-key-0123456789",
        TELEGRAM_BOT_TOKEN=TEST_TOKEN,
        TELEGRAM_API_URL=f"http://127.0.0.1:{_free_port()}",
    )
    for args in (["import-dtsen", str(extract)], ["import-kpj", str(tmp_path / "kpj.csv")],
                 ["run"]):  # fmt: skip
        result = _rentan(*args, env=changed, cwd=tmp_path)
        assert result.returncode != 0, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "PII_SECRET" in lines[0]
    with sqlite3.connect(tmp_path / "bot.db") as connection:
        assert connection.execute("SELECT count(*) FROM dtsen_record").fetchone() == (50,)
        imports = connection.execute("SELECT count(*) FROM dtsen_import").fetchone()
    assert imports == (1,)


@pytest.mark.parametrize("command", ["stats", "export", "import-kpj", "backup"])
def test_reading_commands_without_a_database_create_none_and_say_so_in_one_line(
    tmp_path: Path, command: str
) -> None:
    """No DATABASE_URL and no rentan.db here: one line naming DATABASE_URL, a non-zero exit,
    and no empty rentan.db left behind."""
    (tmp_path / "in.csv").write_text("nik,kpj,tgl_mulai\n", encoding="utf-8")
    args = {
        "stats": ["stats"],
        "export": ["export", "-o", str(tmp_path / "out.csv")],
        "import-kpj": ["import-kpj", str(tmp_path / "in.csv")],
        "backup": ["backup", str(tmp_path / "copy.db")],
    }[command]
    result = _rentan(*args, env=_env(PII_SECRET=TEST_PII_SECRET), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL" in lines[0]
    assert not (tmp_path / "rentan.db").exists()


def test_a_yearly_premium_logs_one_deprecation_line_at_start_up(tmp_path: Path) -> None:
    """PROGRAM_PREMIUM_IDR=201600 (yearly, the old meaning) still works, read as Rp16.800 a
    month, and start-up logs one warning saying so; the monthly figure logs nothing."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    yearly = _rentan(
        "migrate", env=_env(DATABASE_URL=database, PROGRAM_PREMIUM_IDR="201600"), cwd=tmp_path
    )
    monthly = _rentan(
        "migrate", env=_env(DATABASE_URL=database, PROGRAM_PREMIUM_IDR="16800"), cwd=tmp_path
    )
    assert yearly.returncode == monthly.returncode == 0, yearly.stderr
    warnings = [line for line in yearly.stderr.splitlines() if "PROGRAM_PREMIUM_IDR" in line]
    assert len(warnings) == 1
    assert "WARNING" in warnings[0]
    assert "16800 a month" in warnings[0]
    assert "deprecated" in warnings[0]
    assert "PROGRAM_PREMIUM_IDR" not in monthly.stderr


def _database_of_an_earlier_release(path: Path) -> None:
    """An SQLite database an earlier release left: its schema stops at revision 0005."""
    from alembic import command

    from storage.migrate import alembic_config

    url = f"sqlite+aiosqlite:///{path}"

    async def migrate_to_0005() -> None:
        from storage.engine import Database

        database = Database.from_url(url)
        try:
            async with database.engine.connect() as connection:

                def run(sync_connection: object) -> None:
                    config = alembic_config(url)
                    config.attributes["connection"] = sync_connection
                    command.upgrade(config, "0005")

                await connection.run_sync(run)
                await connection.commit()
        finally:
            await database.dispose()

    asyncio.run(migrate_to_0005())


@pytest.mark.parametrize("command", ["stats", "export", "import-kpj", "backup", "import-dtsen"])
def test_every_command_that_needs_the_schema_migrates_an_older_database_first(
    tmp_path: Path, command: str
) -> None:
    """A database an earlier release left (schema at 0005): each command that reads or
    writes the schema brings it to the newest revision first, as `run` does, and works."""
    path = tmp_path / "old.db"
    _database_of_an_earlier_release(path)
    with sqlite3.connect(path) as connection:
        (before,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert before == "0005"
    extract = tmp_path / "dtsen.csv"
    if command == "import-dtsen":
        made = _rentan("sample-dtsen", "--rows", "20", "--seed", "5", "-o", str(extract),
                       env=_env(), cwd=tmp_path)  # fmt: skip
        assert made.returncode == 0, made.stderr
    # A KPJ file naming someone who never applied: read, applied to nobody, reported.
    nobody = make_person(9_131)
    (tmp_path / "kpj.csv").write_text(
        f"nik,kpj,tgl_mulai\n{nobody.nik},12345678901,01-12-2026\n", encoding="utf-8"
    )
    args = {
        "stats": ["stats"],
        "export": ["export", "-o", str(tmp_path / "out.csv")],
        "import-kpj": ["import-kpj", str(tmp_path / "kpj.csv")],
        "backup": ["backup", str(tmp_path / "copy.db")],
        "import-dtsen": ["import-dtsen", str(extract)],
    }[command]
    env = _env(DATABASE_URL=f"sqlite+aiosqlite:///{path}", PII_SECRET=TEST_PII_SECRET)
    result = _rentan(*args, env=env, cwd=tmp_path)
    # import-kpj exits 1 because a row was not applied; it said why.
    assert result.returncode == (1 if command == "import-kpj" else 0), result.stderr
    if command == "import-kpj":
        assert "tidak ada pendaftaran dengan NIK ini" in result.stdout
    with sqlite3.connect(path) as connection:
        (after,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert after == head_revision(f"sqlite+aiosqlite:///{path}")
