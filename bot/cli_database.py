"""How CLI commands open the database: migrated first, the PII key checked, and (for the
commands that only read) never a new empty SQLite file."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from config.settings import Settings, SettingsError

if TYPE_CHECKING:
    from storage.engine import Database


def require_existing(settings: Settings) -> None:
    """Commands that read what the bot stored never create a database: an SQLite file that
    is not there (DATABASE_URL unset, or run from another folder) is one line, not a new
    empty `rentan.db` and an empty report."""
    from sqlalchemy.engine import make_url

    from storage.engine import is_sqlite

    if not is_sqlite(settings.database_url):
        return
    path = make_url(settings.database_url).database
    if path and path != ":memory:" and not Path(path).exists():
        raise SettingsError(
            f"no database at {Path(path).resolve()}: set DATABASE_URL (in the environment or "
            "a .env file here) to the bot's database"
        )


@contextlib.asynccontextmanager
async def open_cli_database(
    settings: Settings, *, secret: bytes | None = None, create: bool = True
) -> AsyncIterator[Database]:
    """The database of DATABASE_URL, migrated to the newest schema first, as `run` does: the
    README's order (import-dtsen, then run) starts from an empty database.

    With `secret`, PII_SECRET must be the key the database's NIK hashes were made with (its
    fingerprint is stored on first use). SettingsError, one line, when the database cannot be
    opened or the key differs; without `create`, also when an SQLite file does not exist.
    """
    if not create:
        require_existing(settings)
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


async def prepare_database(
    settings: Settings, *, secret: bytes | None = None, create: bool = True
) -> None:
    """Migrate (and check the key) without keeping the database open."""
    async with open_cli_database(settings, secret=secret, create=create):
        pass


def today_in_the_city() -> date:
    """Today's date in Kota Bekasi (WIB, UTC+7), whatever the server's zone."""
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(hours=7)).date()
