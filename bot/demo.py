"""`rentan-bot demo`: emulator, fresh database and the real bot, chatted with in a terminal."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import date
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from bot.app import build_application
from bot.logs import configure_logging
from bot.running import polling, running
from bot.sample_dtsen import SamplePerson, demo_people, write_sample
from config.settings import Settings
from domain.budget import add_months, month_of
from domain.eligibility import age_on
from domain.text import is_ascii_number
from emulator import BotApiEmulator, BotMessage, EmulatedUser
from storage.dtsen import import_dtsen
from storage.dtsen.records import DtsenRepository
from storage.opening import open_database

DEMO_USER_ID = 555001
# The demo's admin is a second account: nobody decides on their own application, so the
# person trying the demo registers as the worker and reviews as staff (`/as staf`).
DEMO_STAFF_ID = 555000
# What `/as NAME` switches to: the account the person types as.
DEMO_ACCOUNTS = {"pekerja": DEMO_USER_ID, "staf": DEMO_STAFF_ID}
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
            "telegram_bot_token": SecretStr(DEMO_TOKEN),
            "telegram_api_url": api_url,
            "database_url": f"sqlite+aiosqlite:///{data_dir / 'demo.db'}",
            "pii_secret": SecretStr(secret_file.read_text().strip()),
            "admin_ids": frozenset({DEMO_STAFF_ID}) | settings.admin_ids,
            **_demo_year(settings),
        }
    )


def _demo_year(settings: Settings) -> dict[str, int]:
    """Unless the operator chose the programme year, the demo's is the one next month is in:
    an approval always buys some months of cover, whatever today's date."""
    chosen = {"program_year", "program_coverage_start", "program_coverage_end"}
    if chosen & settings.model_fields_set:
        return {}
    next_month = add_months(month_of(date.today()), 1)
    return {"program_year": next_month.year}


async def seed_demo_data(settings: Settings, data_dir: Path) -> None:
    """Migrate, then load a synthetic DTSEN sample once, so the registration has people to
    match."""
    async with open_database(
        settings.database_url, synchronous=settings.sqlite_synchronous
    ) as database:
        repository = DtsenRepository(database, settings.require_pii_secret())
        if await repository.count() == 0:
            sample = data_dir / "dtsen_sample.csv"
            write_sample(sample, rows=DEMO_SAMPLE_ROWS, seed=DEMO_SAMPLE_SEED)
            await import_dtsen(
                database,
                sample,
                secret=settings.require_pii_secret(),
                today=date.today(),
                actor="demo",
            )


def sample_people(settings: Settings, today: date) -> list[tuple[SamplePerson, bool]]:
    """A few people of the demo sample who pass, and a few who do not (synthetic)."""
    region = settings.program_region_code

    def passes(person: SamplePerson) -> bool:
        age = age_on(person.tanggal_lahir, today)
        return (
            person.kode_wilayah.startswith(region)
            and person.desil <= settings.program_max_desil
            and settings.program_min_age <= age <= settings.program_max_age
        )

    def refused_for(reason: str) -> Callable[[SamplePerson], bool]:
        def check(person: SamplePerson) -> bool:
            if passes(person):
                return False
            if reason == "desil":
                return person.desil > settings.program_max_desil
            if reason == "region":
                return not person.kode_wilayah.startswith(region)
            return age_on(person.tanggal_lahir, today) > settings.program_max_age

        return check

    good = demo_people(DEMO_SAMPLE_SEED, count=3, where=passes)
    bad = [
        demo_people(DEMO_SAMPLE_SEED, count=1, where=refused_for(reason))[0]
        for reason in ("desil", "region", "age")
    ]
    return [(p, True) for p in good] + [(p, False) for p in bad]


def _show_people(console: Console, settings: Settings) -> None:
    table = Table(title="Synthetic people in the demo DTSEN (none is real)")
    for column in ("NIK", "Nama", "Tanggal lahir", "Desil", "Domisili", "Expected"):
        table.add_column(column)
    for person, passes in sample_people(settings, date.today()):
        table.add_row(
            person.nik,
            person.nama,
            person.tanggal_lahir.strftime("%d-%m-%Y"),
            str(person.desil),
            person.kode_wilayah,
            "passes" if passes else "refused",
        )
    console.print(table)


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


class DemoChat:
    """The terminal chat: what the person types goes to the bot as the current account; a
    number presses a button of that account's last message; `/as NAME` switches account."""

    def __init__(self, console: Console, accounts: dict[str, EmulatedUser]) -> None:
        self.console = console
        self.accounts = accounts
        self.current = next(iter(accounts))
        self._last: dict[str, BotMessage | None] = dict.fromkeys(accounts)

    @property
    def user(self) -> EmulatedUser:
        """The account the person is typing as."""
        return self.accounts[self.current]

    def show_replies(self) -> None:
        """Print what the bot sent the current account since last shown."""
        for message in self.user.replies_since_cursor():
            _render(self.console, message)
            self._last[self.current] = message
        self.user.skip_to_end()

    async def handle(self, line: str) -> None:
        """Act on one typed line (not /quit)."""
        if line.startswith("/as"):
            name = line.removeprefix("/as").strip().lower()
            if name in self.accounts:
                self.current = name
                self.console.print(f"[bold]now typing as: {name}[/bold]")
            else:
                self.console.print("/as " + " | /as ".join(self.accounts))
            return
        last = self._last[self.current]
        buttons = [label for row in (last.buttons if last else []) for label, _ in row]
        if is_ascii_number(line) and buttons and 1 <= int(line) <= len(buttons):
            await self.user.press(buttons[int(line) - 1])
        elif line.lower() == "kontak":
            await self.user.share_contact("+6281234567890")
        else:
            await self.user.send(line)


async def _chat(console: Console, accounts: dict[str, EmulatedUser]) -> None:
    console.print(
        "[bold]rentan-bot demo[/bold]: you are a worker chatting with the bot. "
        "Type messages, a number to press a button, [bold]kontak[/bold] to share your "
        "phone contact, [bold]/as staf[/bold] to review as the demo's admin (and "
        "[bold]/as pekerja[/bold] to go back), [bold]/quit[/bold] to leave."
    )
    chat = DemoChat(console, accounts)
    await chat.user.send("/start")
    while True:
        await asyncio.sleep(0.3)
        chat.show_replies()
        line = (await asyncio.to_thread(console.input, "[green]you>[/green] ")).strip()
        if line in ("/quit", "/exit"):
            return
        if line:
            await chat.handle(line)


async def _run(settings: Settings, data_dir: Path, console: Console) -> None:
    emulator = BotApiEmulator()
    await emulator.start()
    try:
        settings = demo_settings(settings, data_dir, f"http://127.0.0.1:{emulator.port}")
        await seed_demo_data(settings, data_dir)
        _show_people(console, settings)
        async with running(build_application(settings), updates=polling(timeout=2)):
            accounts = {
                name: emulator.user(user_id, first_name=f"Demo {name}")
                for name, user_id in DEMO_ACCOUNTS.items()
            }
            await _chat(console, accounts)
    finally:
        await emulator.stop()


def run_demo(settings: Settings, *, data_dir: str) -> int:
    """Run the terminal chat until the person quits."""
    console = Console()
    # Log lines would tear the chat apart; warnings and errors still show.
    configure_logging("WARNING")
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_run(settings, directory, console))
    except (KeyboardInterrupt, EOFError):
        console.print("bye")
    return 0
