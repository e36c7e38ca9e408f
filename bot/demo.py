"""`rentan-bot demo`: emulator, a database in demo-data/ and the real bot, chatted with in a
terminal. The demo's state (database, key, emulator ids, files the bot sent) lives in its data
folder and carries over to the next start; `--fresh` starts over."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import struct
from collections.abc import Callable
from datetime import date
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.app import build_application
from bot.logs import configure_logging
from bot.running import polling, running
from bot.sample_dtsen import SamplePerson, demo_people
from bot.sample_dtsen_v3 import write_v3_sample
from config.settings import Settings
from domain.budget import add_months, month_of
from domain.eligibility import age_on
from domain.regions import load_regions
from domain.text import is_ascii_number
from emulator import BotApiEmulator, BotMessage, EmulatedUser
from storage.dtsen import import_dtsen
from storage.dtsen.records import DtsenRepository
from storage.engine import Database
from storage.opening import open_database

DEMO_USER_ID = 555001
# The demo's admin is a second account: nobody decides on their own application, so the
# person trying the demo registers as the worker and reviews as staff (`/as staf`).
DEMO_STAFF_ID = 555000
# What `/as NAME` switches to: the account the person types as. Each worker account has its own
# daily limit of NIKs, so three of them can try every sample person.
DEMO_ACCOUNTS = {
    "pekerja": DEMO_USER_ID,
    "pekerja2": DEMO_USER_ID + 1,
    "pekerja3": DEMO_USER_ID + 2,
    "staf": DEMO_STAFF_ID,
}
# Where the emulator's update and message ids stood when the demo last stopped.
NUMBERING_FILE = "emulator.json"
# Files the bot sent (charts, exports) are saved here, inside the data folder.
FILES_DIR = "files"
# The first line of a .env the demo wrote (so it may rewrite it, and never touches another).
ENV_MARKER = "# written by `rentan-bot demo`: the CLI commands then work on the demo's database"
# A typed number this short is a button press, never an answer (no question wants 1-99 alone).
BUTTON_DIGITS = 2
# How long a typed button number waits for the bot's late answer to show its buttons.
LATE_REPLY_SECONDS = 5.0
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


def prepare_data_dir(data_dir: Path, *, fresh: bool) -> list[Path]:
    """Create the data folder; with `fresh`, first remove what earlier runs left (database,
    key, emulator ids, saved files). Returns what was removed."""
    removed: list[Path] = []
    if fresh and data_dir.is_dir():
        for path in sorted(data_dir.iterdir()):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    data_dir.mkdir(parents=True, exist_ok=True)
    return removed


def write_env(folder: Path, settings: Settings) -> str:
    """A `.env` in `folder` pointing the CLI at the demo's database and key, so the README's
    commands (`rentan-bot stats`, `export`, ...) work on it as they are. Another `.env` (one the
    demo did not write) is left alone. Returns what happened, for the person."""
    target = folder / ".env"
    if target.exists() and not target.read_text(encoding="utf-8").startswith(ENV_MARKER):
        return f"{target} exists and is not the demo's: left as it is"
    secret = settings.require_pii_secret().decode()
    target.write_text(
        f"{ENV_MARKER}\nDATABASE_URL={settings.database_url}\nPII_SECRET={secret}\n",
        encoding="utf-8",
    )
    target.chmod(0o600)
    return f"wrote {target}: `rentan-bot stats`, `export`, ... now read the demo's database"


def load_numbering(emulator: BotApiEmulator, data_dir: Path) -> None:
    """Continue the ids of the previous run: the bot remembers the update ids it handled and
    would ignore ids that start again at 1."""
    path = data_dir / NUMBERING_FILE
    with contextlib.suppress(FileNotFoundError, ValueError):
        emulator.resume_numbering(json.loads(path.read_text(encoding="utf-8")))


def save_numbering(emulator: BotApiEmulator, data_dir: Path) -> None:
    """Keep where the ids stand (after every line typed, and at the end)."""
    path = data_dir / NUMBERING_FILE
    path.write_text(json.dumps(emulator.numbering()), encoding="utf-8")


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
            await import_demo_sample(
                database, data_dir / "dtsen_v3", secret=settings.require_pii_secret()
            )


async def import_demo_sample(database: Database, directory: Path, *, secret: bytes) -> None:
    """Write the demo's synthetic DTSEN V3 pair and codebook into `directory`, and import it
    (the people of `demo_people(DEMO_SAMPLE_SEED)`, as in the README's table)."""
    sample = write_v3_sample(directory, rows=DEMO_SAMPLE_ROWS, seed=DEMO_SAMPLE_SEED)
    await import_dtsen(
        database,
        sample.persons,
        families=sample.families,
        codebook=sample.codebook,
        secret=secret,
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


def expected_result(person: SamplePerson, settings: Settings, today: date) -> str:
    """What registering as this sample person leads to, as the README's table says it."""
    if not person.kode_wilayah.startswith(settings.program_region_code):
        return "refused: lives outside the city"
    if person.desil > settings.program_max_desil:
        return f"refused: desil above {settings.program_max_desil}"
    age = age_on(person.tanggal_lahir, today)
    if age > settings.program_max_age:
        return f"refused: older than {settings.program_max_age}"
    if age < settings.program_min_age:
        return f"refused: younger than {settings.program_min_age}"
    return "passes"


def domicile(person: SamplePerson, settings: Settings) -> str:
    """`Jakasampurna, Bekasi Barat` (kelurahan and kecamatan), or kelurahan and regency for
    someone outside the programme's area."""
    regions = load_regions()
    code = person.kode_wilayah
    inside = code.startswith(settings.program_region_code)
    parent = regions.name(code[:6] if inside else code[:4]) or "-"
    return f"{regions.name(code) or code}, {parent}"


def _show_people(console: Console, settings: Settings) -> None:
    table = Table(title="Synthetic people in the demo DTSEN (none is real)")
    for column in ("NIK", "Nama", "Tanggal lahir", "Desil", "Domisili", "Expected"):
        table.add_column(column)
    today = date.today()
    for person, _passes in sample_people(settings, today):
        table.add_row(
            person.nik,
            Text(person.nama),
            person.tanggal_lahir.strftime("%d-%m-%Y"),
            str(person.desil),
            Text(domicile(person, settings)),
            expected_result(person, settings, today),
        )
    console.print(table)


def _png_size(data: bytes) -> str:
    """`1200x800 px` from a PNG's header, or empty when it is not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return ""
    width, height = struct.unpack(">II", data[16:24])
    return f"{width}x{height} px, "


def save_file(files_dir: Path, message: BotMessage) -> tuple[Path, str] | None:
    """Save the chart or file a bot message carries; its path and a size to show."""
    if message.document is not None:
        name, data = message.document
        # The bot names its files; only the last part of a name is used, inside the folder.
        target = files_dir / Path(name).name
        size = ""
    elif message.photo is not None:
        data = message.photo
        target = files_dir / f"chart-{message.chat_id}-{message.message_id}.png"
        size = _png_size(data)
    else:
        return None
    files_dir.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target, f"{size}{len(data):,} bytes"


def _render(console: Console, message: BotMessage, files_dir: Path | None = None) -> None:
    # What the bot sent is text, never console markup: a worker's "[/b]" must print as typed.
    body = Text(message.text or "")
    saved = save_file(files_dir, message) if files_dir is not None else None
    if saved is not None:
        path, size = saved
        kind = "chart" if message.photo is not None else "file"
        body.append(f"{chr(10) if message.text else ''}[{kind} saved: {path} ({size})]")
    title = "bot (edited)" if message.edited else "bot"
    console.print(Panel(body, title=title, title_align="left", border_style="cyan"))
    number = 1
    table = Table(show_header=False, box=None)
    for row in message.buttons:
        for label, _data in row:
            table.add_row(f"[bold]{number}[/bold]", Text(label))
            number += 1
    if number > 1:
        console.print("Buttons (type the number):")
        console.print(table)
    if message.reply_keyboard:
        labels = escape(", ".join(label for row in message.reply_keyboard for label in row))
        console.print(f"Keyboard: {labels}  (type [bold]kontak[/bold] to share your number)")


class DemoChat:
    """The terminal chat: what the person types goes to the bot as the current account; a
    number presses a button of the last buttons shown to that account; `/as NAME` switches
    account. Numbers are never sent as text: a number typed before the bot's answer has
    arrived waits for its buttons."""

    def __init__(
        self,
        console: Console,
        accounts: dict[str, EmulatedUser],
        *,
        files_dir: Path | None = None,
    ) -> None:
        self.console = console
        self.accounts = accounts
        self.files_dir = files_dir
        self.current = next(iter(accounts))
        # Per account, the message whose buttons the numbers press (None: none on screen, or
        # they were used and the bot's answer has not come yet).
        self._pressable: dict[str, BotMessage | None] = dict.fromkeys(accounts)

    @property
    def user(self) -> EmulatedUser:
        """The account the person is typing as."""
        return self.accounts[self.current]

    def show_replies(self) -> None:
        """Print what the bot sent the current account since last shown."""
        for message in self.user.replies_since_cursor():
            _render(self.console, message, self.files_dir)
            shown = self._pressable[self.current]
            if message.buttons:
                self._pressable[self.current] = message
            elif shown is not None and shown.message_id == message.message_id:
                # Its buttons were taken away (edited into a record of the choice).
                self._pressable[self.current] = None
        self.user.skip_to_end()

    async def watch(self, interval: float = 0.3) -> None:
        """Show the bot's messages as they come (decisions, reminders), without a keypress."""
        while True:
            self.show_replies()
            await asyncio.sleep(interval)

    async def _buttons_to_press(self) -> BotMessage | None:
        """The buttons on screen; a late answer is waited for a moment."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LATE_REPLY_SECONDS
        while True:
            self.show_replies()
            pressable = self._pressable[self.current]
            if pressable is not None or loop.time() >= deadline:
                return pressable
            await asyncio.sleep(0.1)

    async def handle(self, line: str) -> None:
        """Act on one typed line (not /quit)."""
        if line.startswith("/as"):
            name = line.removeprefix("/as").strip().lower()
            if name in self.accounts:
                self.current = name
                self.console.print(f"[bold]now typing as: {escape(name)}[/bold]")
                self.show_replies()
            else:
                self.console.print("/as " + " | /as ".join(self.accounts))
            return
        if is_ascii_number(line) and len(line) <= BUTTON_DIGITS:
            await self._press_number(int(line))
        elif line.lower() == "kontak":
            await self.user.share_contact("+6281234567890")
        else:
            self._pressable[self.current] = None
            await self.user.send(line)

    async def _press_number(self, number: int) -> None:
        message = await self._buttons_to_press()
        labels = message.button_labels() if message is not None else []
        if message is None or not 1 <= number <= len(labels):
            self.console.print(
                f"(no button {number} to press here: type your answer as text, or wait for "
                "the bot's buttons)"
            )
            return
        self._pressable[self.current] = None
        await self.user.press(labels[number - 1], message_id=message.message_id)


async def _chat(
    console: Console, accounts: dict[str, EmulatedUser], files_dir: Path, saved: Callable[[], None]
) -> None:
    console.print(
        "[bold]rentan-bot demo[/bold]: you are a worker chatting with the bot. "
        "Type messages, a number to press a button, [bold]kontak[/bold] to share your "
        "phone contact, [bold]/as staf[/bold] to review as the demo's admin, "
        "[bold]/as pekerja2[/bold] or [bold]/as pekerja3[/bold] to be another worker "
        "(and [bold]/as pekerja[/bold] to go back), [bold]/quit[/bold] to leave. "
        f"Charts and files the bot sends are saved in {escape(str(files_dir))}."
    )
    chat = DemoChat(console, accounts, files_dir=files_dir)
    await chat.user.send("/start")
    watcher = asyncio.create_task(chat.watch())
    try:
        while True:
            line = (await asyncio.to_thread(console.input, "[green]you>[/green] ")).strip()
            if line in ("/quit", "/exit"):
                return
            if line:
                await chat.handle(line)
            saved()
    finally:
        watcher.cancel()


async def _run(settings: Settings, data_dir: Path, console: Console) -> None:
    emulator = BotApiEmulator()
    load_numbering(emulator, data_dir)
    await emulator.start()
    try:
        settings = demo_settings(settings, data_dir, f"http://127.0.0.1:{emulator.port}")
        await seed_demo_data(settings, data_dir)
        console.print(escape(write_env(Path.cwd(), settings)))
        _show_people(console, settings)
        async with running(build_application(settings), updates=polling(timeout=2)):
            accounts = {
                name: emulator.user(user_id, first_name=f"Demo {name}")
                for name, user_id in DEMO_ACCOUNTS.items()
            }
            await _chat(
                console,
                accounts,
                data_dir / FILES_DIR,
                lambda: save_numbering(emulator, data_dir),
            )
    finally:
        save_numbering(emulator, data_dir)
        await emulator.stop()


def run_demo(settings: Settings, *, data_dir: str, fresh: bool = False) -> int:
    """Run the terminal chat until the person quits; `fresh` first removes the earlier runs'
    data (database, key, ids, saved files)."""
    console = Console()
    # Log lines would tear the chat apart; warnings and errors still show.
    configure_logging("WARNING")
    directory = Path(data_dir)
    for path in prepare_data_dir(directory, fresh=fresh):
        console.print(f"removed {escape(str(path))}")
    try:
        asyncio.run(_run(settings, directory, console))
    except (KeyboardInterrupt, EOFError):
        console.print("bye")
    return 0
