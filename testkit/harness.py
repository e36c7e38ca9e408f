"""End-to-end harness: the emulator, a temporary database and the real Application polling it."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from bot.app import RentanApp, build_application, build_services, migrate_database
from bot.http import AiohttpRequest
from bot.running import start_application, stop_application
from config.settings import Settings, load_settings
from emulator import BotApiEmulator, EmulatedUser
from handlers.context import Services

TEST_TOKEN = "123456:TEST-token-for-the-emulator"
TEST_PII_SECRET = "test-secret-not-for-production-0123456789"


def make_settings(api_url: str, database_url: str, **overrides: Any) -> Settings:
    """Settings for a test: no .env file, fast retries, no outgoing rate limit."""
    values: dict[str, Any] = {
        "telegram_bot_token": TEST_TOKEN,
        "telegram_api_url": api_url,
        "database_url": database_url,
        "pii_secret": TEST_PII_SECRET,
        "admin_ids": "900001",
        "reviewer_ids": "900002",
        # A programme year wholly ahead of the wall clock: every approval buys twelve months,
        # so places do not depend on the day the suite runs (tests that care set their own).
        "program_year": str(date.today().year + 1),
    }
    values.update(overrides)
    return load_settings(env_file=None, **values)


class Harness:
    """Starts, stops and restarts the bot on one emulator and one database."""

    def __init__(
        self,
        emulator: BotApiEmulator,
        tmp_path: Path,
        *,
        database_url: str | None = None,
        **overrides: Any,
    ) -> None:
        self.emulator = emulator
        self.database_url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        self.overrides = overrides
        self.settings = make_settings(
            f"http://127.0.0.1:{emulator.port}", self.database_url, **overrides
        )
        self.app: RentanApp | None = None
        self.starts = 0
        # No outgoing limiter by default (tests send fast); fault tests switch PTB's on.
        self.rate_limit: float | None = None
        # The bot's read timeout for Bot API calls; fault tests shorten it to lose answers.
        self.read_timeout: float | None = None

    async def start(self) -> RentanApp:
        """Migrate, build and start polling, as `rentan-bot run` does."""
        await migrate_database(self.settings)
        request = None
        if self.read_timeout is not None:
            request = AiohttpRequest(
                connection_pool_size=self.settings.concurrent_updates + 4,
                read_timeout=self.read_timeout,
            )
        app = build_application(
            self.settings,
            request=request,
            services=build_services(self.settings),
            rate_limit=self.rate_limit,
        )
        await start_application(app)
        self.app = app
        self.starts += 1
        return app

    async def stop(self) -> None:
        """Stop polling and shut down cleanly (confirming the last offset)."""
        app, self.app = self.app, None
        if app is None:
            return
        await stop_application(app)

    async def restart(self) -> RentanApp:
        """A new Application on the same database, like a process restart."""
        await self.stop()
        return await self.start()

    @property
    def services(self) -> Services:
        """The running bot's services (database, repositories, clock)."""
        assert self.app is not None, "the bot is not running"
        services = self.app.bot_data.services
        assert services is not None
        return services

    def user(self, user_id: int = 100001, **kwargs: Any) -> EmulatedUser:
        """A Telegram user who talks to the bot in a private chat."""
        return self.emulator.user(user_id, **kwargs)
