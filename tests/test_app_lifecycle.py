"""bot.running starts and stops an Application in run_polling's order, hooks included."""

from __future__ import annotations

from typing import Any

import pytest
from telegram.ext import Application, ApplicationBuilder

from bot.running import running
from emulator import BotApiEmulator

TOKEN = "123:lifecycle"


def _recording_app(emulator: BotApiEmulator, steps: list[str], *, fail_in: str = "") -> Any:
    def hook(name: str) -> Any:
        async def record(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
            updater = application.updater
            polling = updater is not None and updater.running
            steps.append(f"{name} (running={application.running}, polling={polling})")
            if name == fail_in:
                raise RuntimeError(name)

        return record

    return (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(emulator.base_url)
        .base_file_url(emulator.base_file_url)
        .post_init(hook("post_init"))
        .post_stop(hook("post_stop"))
        .post_shutdown(hook("post_shutdown"))
        .build()
    )


async def test_running_calls_every_hook_in_run_polling_order(emulator: BotApiEmulator) -> None:
    steps: list[str] = []
    async with running(_recording_app(emulator, steps)) as app:
        steps.append(f"body (running={app.running}, polling={app.updater.running})")
    assert steps == [
        "post_init (running=False, polling=False)",
        "body (running=True, polling=True)",
        "post_stop (running=False, polling=False)",
        "post_shutdown (running=False, polling=False)",
    ]
    assert emulator.calls["getUpdates"] >= 1


async def test_a_failed_post_init_still_shuts_down(emulator: BotApiEmulator) -> None:
    """As run_polling does: what started is stopped, and post_shutdown (which closes the
    database in the bot) runs."""
    steps: list[str] = []
    app = _recording_app(emulator, steps, fail_in="post_init")
    with pytest.raises(RuntimeError, match="post_init"):
        async with running(app):
            steps.append("body")
    assert steps == [
        "post_init (running=False, polling=False)",
        "post_shutdown (running=False, polling=False)",
    ]
    assert not app.running
