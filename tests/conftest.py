"""Shared fixtures: a clean environment, the emulator, and the end-to-end harness."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from config.settings import Settings
from emulator import BotApiEmulator
from storage.engine import Database
from storage.opening import open_database
from testkit.harness import Harness
from testkit.postgres import PostgresServer, find_bindir

hypothesis_settings.register_profile("default", max_examples=100, deadline=None)
hypothesis_settings.register_profile("soak", max_examples=2000, deadline=None)
# The whole-bot state machine (tests/test_bot_state_machine.py): a few short runs in `make test`,
# many long ones in `make soak`; each example starts the real bot on a new database.
_MACHINE_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
hypothesis_settings.register_profile(
    "bot-machine",
    max_examples=5,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=_MACHINE_HEALTH,
)
hypothesis_settings.register_profile(
    "bot-machine-soak",
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=_MACHINE_HEALTH,
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Tests that hold the bot to Telegram's send caps in real time (0 answers of 429 while real
# processes share one budget): they run alone, after the parallel run of everything else
# (`make test`), because a second test on the other core stalls their event loops and bunches
# their sends. Marked here, by module, so a new test in these files cannot forget the mark.
SOLO_MODULES = frozenset({"test_cluster_proof.py", "test_send_budget.py", "test_send_rate.py"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "solo: runs alone, after the parallel run (make test)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SOLO_MODULES:
            item.add_marker(pytest.mark.solo)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's environment or .env file."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    # PTB 22 warns about RetryAfter's int seconds unless opted into timedelta; warnings are errors.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    """A Bot API emulator on a free loopback port."""
    emu = BotApiEmulator()
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


def _postgres_required() -> bool:
    """CI sets RENTAN_REQUIRE_POSTGRES=1 (.ci/run): a missing PostgreSQL is then an error."""
    return os.environ.get("RENTAN_REQUIRE_POSTGRES", "") not in ("", "0")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    """One throwaway PostgreSQL cluster for the session, when PostgreSQL is installed."""
    bindir = find_bindir()
    if bindir is None:
        if _postgres_required():
            raise RuntimeError(
                "RENTAN_REQUIRE_POSTGRES is set but PostgreSQL is not installed "
                "(no initdb found; see scripts/ensure-postgres.sh or set RENTAN_PG_BINDIR)"
            )
        yield None
        return
    server = PostgresServer(bindir)
    server.start()
    try:
        server.template = asyncio.run(server.create_migrated_template())
        yield server
    finally:
        server.stop()


def _skip_without(postgres_server: PostgresServer | None) -> PostgresServer:
    """The cluster, or skip this PostgreSQL case saying why and how CI differs."""
    if postgres_server is None:
        pytest.skip(
            "PostgreSQL is not installed here (no initdb; scripts/ensure-postgres.sh installs it"
            " as root); CI sets RENTAN_REQUIRE_POSTGRES=1, which makes this an error"
        )
    return postgres_server


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: PostgresServer | None
) -> AsyncIterator[str]:
    """A fresh database of each backend: a new SQLite file, and (where installed) a PostgreSQL
    database copied from the session's template, so already at the newest migration."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        return
    async with _template_copy(postgres_server) as url:
        yield url


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer | None) -> AsyncIterator[str]:
    """A fresh PostgreSQL database at the newest migration, for what only PostgreSQL does
    (several processes sharing one database)."""
    async with _template_copy(postgres_server) as url:
        yield url


@contextlib.asynccontextmanager
async def _template_copy(postgres_server: PostgresServer | None) -> AsyncIterator[str]:
    """A database copied from the session's migrated template, dropped afterwards."""
    server = _skip_without(postgres_server)
    name = await server.create_database(server.template)
    try:
        yield server.url(name)
    finally:
        await server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: PostgresServer | None
) -> AsyncIterator[str]:
    """A database with no schema at all, for tests of the migrations themselves."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    server = _skip_without(postgres_server)
    name = await server.create_database("template0")
    try:
        yield server.url(name)
    finally:
        await server.drop_database(name)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database of this test's own on each backend, for storage-level tests."""
    # Creates the SQLite schema; the PostgreSQL copy of the template is already at head.
    async with open_database(database_url) as db:
        yield db


@pytest.fixture
async def harness(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> AsyncIterator[Harness]:
    """The real bot polling the emulator, on a fresh database of each backend."""
    h = Harness(emulator, tmp_path, database_url=database_url)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()
