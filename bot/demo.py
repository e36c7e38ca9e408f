"""`rentan-bot demo`: emulator, fresh database and the real bot, chatted with in a terminal."""

from __future__ import annotations

import asyncio
import secrets
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from bot.app import RentanApp, build_application, migrate_database, on_startup
from bot.emulator import BotApiEmulator, BotMessage, EmulatedUser
from bot.settings import Settings

DEMO_USER_ID = 555001
DEMO_TOKEN = "100000:demo-token-for-the-local-emulator"
DEMO_SAMPLE_ROWS = 2_000
DEMO_SAMPLE_SEED = 7


def demo_settings(settings: Settings, data_dir: Path, api_url: str) -> Settings:
    """The operator's settings with the demo's token, emulator, database and secret."""
    secret_file = data_dir / "pii_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_hex(32))
    return settings.model_copy(
        update={
            "telegram_bot_token": DEMO_TOKEN,
            "telegram_api_url": api_url,
            "database_url": f"sqlite+aiosqlite:///{data_dir / 'demo.db'}",
            "pii_secret": secret_file.read_text().strip(),
            "admin_ids": frozenset({DEMO_USER_ID}) | settings.admin_ids,
        }
    )


async def seed_demo_data(settings: Settings, data_dir: Path) -> Path | None:
    """Load a synthetic DTSEN sample once, so the registration has people to match."""
    try:
        from storage.dtsen import DtsenRepository, import_dtsen

        from bot.sample_dtsen import write_sample
        from storage.engine import Database
    except ImportError:
        return None
    sample = data_dir / "dtsen_sample.csv"
    database = Database.from_url(settings.database_url)
    try:
        repository = DtsenRepository(database, settings.require_pii_secret())
        if await repository.count() == 0:
            write_sample(sample, rows=DEMO_SAMPLE_ROWS, seed=DEMO_SAMPLE_SEED)
            await import_dtsen(
                database,
                sample,
                secret=settings.require_pii_secret(),
                today=date.today(),
                actor="demo",
            )
    finally:
        await database.dispose()
    return sample


def _render(console: Console, message: BotMessage) -> None:
    body = message.text or (f"[document {message.document[0]}]" if message.document else "")
    title = "bot (edited)" if message.edited else "bot"
    console.print(Panel(body, title=title, title_align="left", border_style="cyan"))
    number = 1
    table = Table(show_header=False, box=None)
    for row in message.buttons:
        for label, _data in row:
            table.add_row(f"[bold]{number}[/bold]", label)
            number += 1
    if number > 1:
        console.print("Buttons (type the number):")
        console.print(table)
    if message.reply_keyboard:
        labels = ", ".join(label for row in message.reply_keyboard for label in row)
        console.print(f"Keyboard: {labels}  (type [bold]kontak[/bold] to share your number)")


async def _chat(console: Console, user: EmulatedUser) -> None:
    console.print(
        "[bold]rentan-bot demo[/bold]: you are a worker chatting with the bot. "
        "Type messages, a number to press a button, [bold]kontak[/bold] to share your "
        "phone contact, [bold]/quit[/bold] to leave."
    )
    await user.send("/start")
    while True:
        await asyncio.sleep(0.3)
        last: BotMessage | None = None
        for message in user.replies_since_cursor():
            _render(console, message)
            last = message
        user.skip_to_end()
        line = (await asyncio.to_thread(console.input, "[green]you>[/green] ")).strip()
        if line in ("/quit", "/exit"):
            return
        if not line:
            continue
        buttons = [label for row in (last.buttons if last else []) for label, _ in row]
        if line.isdigit() and buttons and 1 <= int(line) <= len(buttons):
            await user.press(buttons[int(line) - 1])
        elif line.lower() == "kontak":
            await user.share_contact("+6281234567890")
        else:
            await user.send(line)


async def _run(settings: Settings, data_dir: Path, console: Console) -> None:
    emulator = BotApiEmulator()
    await emulator.start()
    app: RentanApp | None = None
    try:
        settings = demo_settings(settings, data_dir, f"http://127.0.0.1:{emulator.port}")
        await migrate_database(settings)
        await seed_demo_data(settings, data_dir)
        app = build_application(settings)
        await app.initialize()
        await on_startup(app)
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=2)
        await app.start()
        await _chat(console, emulator.user(DEMO_USER_ID, first_name="Demo"))
    finally:
        if app is not None:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
        await emulator.stop()


def run_demo(settings: Settings, *, data_dir: str) -> int:
    """Run the terminal chat until the person quits."""
    console = Console()
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_run(settings, directory, console))
    except (KeyboardInterrupt, EOFError):
        console.print("bye")
    return 0
