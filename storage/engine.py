"""The async engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.util.concurrency import await_

# Write transactions on SQLite take the write lock up front (BEGIN IMMEDIATE), so two writers
# queue on busy_timeout instead of one failing with "database is locked" at upgrade time.
WRITE_OPTIONS = {"rentan_write": True}
SQLITE_BUSY_TIMEOUT_MS = 15_000


def is_sqlite(url: str) -> bool:
    """Whether a database URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for `url`, with SQLite tuned for a concurrent bot."""
    if not is_sqlite(url):
        return _create_async_engine(
            url, echo=echo, pool_size=10, max_overflow=10, hide_parameters=True
        )
    engine = _create_async_engine(
        url,
        echo=echo,
        # Bound parameters are personal data; keep them out of exception messages and logs.
        hide_parameters=True,
        # One writer at a time is all SQLite allows; a few readers run beside it under WAL.
        pool_size=4,
        max_overflow=0,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        # Sessions always end their own transaction; the pool's extra ROLLBACK on check-in
        # would be one more round trip to aiosqlite's thread per session.
        pool_reset_on_return=None,
    )
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself rather than pysqlite's implicit, late BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Reads run in autocommit: each SELECT sees a consistent snapshot under WAL, and an
        # explicit BEGIN would cost another round trip to aiosqlite's thread per session.
        if connection.get_execution_options().get("rentan_write"):
            _begin_immediate(connection)


def _begin_immediate(connection: Any) -> None:
    """BEGIN IMMEDIATE in one hop to aiosqlite's thread (a cursor would take three)."""
    adapted = connection.connection.dbapi_connection
    driver = getattr(adapted, "_connection", None)
    if driver is None or not hasattr(driver, "execute"):
        # Not the aiosqlite adapter (or its internals moved): the portable, slower way.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        return
    await_(driver.execute("BEGIN IMMEDIATE"))


class Database:
    """An engine plus two session factories: reads, and writes that lock early on SQLite."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=False)
        self.dialect = engine.dialect.name
        self.read = async_sessionmaker(engine, expire_on_commit=False)
        self.write = async_sessionmaker(
            engine.execution_options(**WRITE_OPTIONS), expire_on_commit=False
        )

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Database:
        """Open a database from a URL."""
        return cls(create_engine(url, echo=echo))

    def session(self) -> AsyncSession:
        """A read session."""
        return self.read()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
