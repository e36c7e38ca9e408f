"""Starting and stopping an Application in the order PTB's run_polling uses (demo, tests, bench).

Production keeps `Application.run_polling`/`run_webhook` (bot.app): they own the event loop and
the SIGINT/SIGTERM handling. Everything that runs the bot inside its own event loop starts and
stops it here, because `Application.initialize()` alone runs no post_init, and `shutdown()`
alone no post_shutdown (which closes the database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from telegram import Update
from telegram.ext import Application, Updater

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
App = TypeVar("App", bound=AnyApplication)
# Starts the updater's source of updates (start_polling or start_webhook).
StartUpdates = Callable[[Updater], Awaitable[object]]


def polling(*, poll_interval: float = 0.0, timeout: int = 1) -> StartUpdates:
    """Long polling for every update type, as production polls; `timeout`: seconds a getUpdates
    call waits (short, so that a stop is quick)."""

    async def start(updater: Updater) -> None:
        await updater.start_polling(
            poll_interval=poll_interval, timeout=timeout, allowed_updates=Update.ALL_TYPES
        )

    return start


# Long polling with its defaults: what start_application and running use unless told otherwise.
POLLING = polling()


async def start_application(
    application: AnyApplication, *, updates: StartUpdates | None = POLLING
) -> None:
    """initialize, post_init, the updates' source (none: updates are fed by hand), start.

    A failure on the way stops what was started, post_shutdown included, as run_polling does.
    """
    await application.initialize()
    try:
        if application.post_init is not None:
            await application.post_init(application)
        if updates is not None:
            assert application.updater is not None, "the Application was built without an updater"
            await updates(application.updater)
        await application.start()
    except BaseException:
        await stop_application(application)
        raise


async def stop_application(application: AnyApplication) -> None:
    """Stop the updater (confirming the last offset), stop, post_stop, shutdown, post_shutdown."""
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
        if application.post_stop is not None:
            await application.post_stop(application)
    await application.shutdown()
    if application.post_shutdown is not None:
        await application.post_shutdown(application)


@asynccontextmanager
async def running(
    application: App, *, updates: StartUpdates | None = POLLING
) -> AsyncIterator[App]:
    """The application started for the block, stopped after it (also on error)."""
    await start_application(application, updates=updates)
    try:
        yield application
    finally:
        await stop_application(application)
