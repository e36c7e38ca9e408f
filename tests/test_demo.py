"""The demo's promises: its sample people pass or are refused as the README says."""

from __future__ import annotations

import asyncio
import io
import subprocess
import tomllib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from bot.demo import (
    DEMO_ACCOUNTS,
    DEMO_SAMPLE_SEED,
    DEMO_STAFF_ID,
    DEMO_USER_ID,
    DemoChat,
    _render,
    demo_settings,
    domicile,
    expected_result,
    import_demo_sample,
    load_numbering,
    prepare_data_dir,
    sample_people,
    save_numbering,
    write_env,
)
from bot.sample_dtsen import demo_people
from config.settings import load_settings
from domain.lifecycle import Status
from emulator import BotApiEmulator, BotMessage, EmulatedUser
from storage.dtsen.records import DtsenRepository
from testkit.factories import make_person
from testkit.fakes import add_application
from testkit.harness import Harness

README = Path(__file__).resolve().parent.parent / "README.md"


async def test_demo_sample_people_pass_or_are_refused_as_listed(
    harness: Harness, tmp_path: Path
) -> None:
    """Register as each listed person against the demo's own DTSEN sample."""
    services = harness.services
    await import_demo_sample(services.database, tmp_path / "v3", secret=services.secret)
    for index, (person, passes) in enumerate(sample_people(harness.settings, date.today())):
        user = harness.user(880000 + index)
        await user.send("/start")
        await user.expect(r"Selamat datang")
        await user.press("✅ Setuju")
        await user.expect(r"\(1/9\)")
        await user.send(person.nik)
        await user.expect(r"\(2/9\)")
        await user.send(person.nama.title())
        await user.expect(r"\(3/9\)")
        await user.send(person.tanggal_lahir.strftime("%d-%m-%Y"))
        if passes:
            await user.expect(r"\(4/9\)")
        else:
            await user.expect(r"belum dapat dicocokkan|rentang usia")


async def test_demo_imports_the_v3_pair_so_its_people_carry_the_three_desils(
    harness: Harness, tmp_path: Path
) -> None:
    """The demo loads a DTSEN V3 pair (persons, families, codebook): its people keep their
    national desil and gain the family's provincial and regency desils and decoded work."""
    services = harness.services
    await import_demo_sample(services.database, tmp_path / "v3", secret=services.secret)
    person = demo_people(DEMO_SAMPLE_SEED, count=1)[0]
    found = await DtsenRepository(services.database, services.secret).find(nik=person.nik)
    assert found is not None
    assert found.desil == person.desil
    assert found.desil_provinsi is not None
    assert found.desil_kabupaten_kota is not None
    assert found.status_bekerja in {"Bekerja", "Tidak bekerja"}


def test_readme_lists_the_demo_people() -> None:
    """The README's table is the demo's own list, so a person trying the demo can use it."""
    text = README.read_text()
    for person, _passes in sample_people(load_settings(env_file=None), date.today()):
        assert person.nik in text


async def test_demo_worker_registers_and_the_demo_staff_account_decides(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> None:
    """The demo's worker registers; `/as staf` switches to the demo's admin, a second account,
    who can approve it (nobody decides on their own application); `/as pekerja` shows the
    worker the decision."""
    harness = Harness(emulator, tmp_path, database_url=database_url, admin_ids=str(DEMO_STAFF_ID))
    await harness.start()
    try:
        services = harness.services
        await import_demo_sample(services.database, tmp_path / "v3", secret=services.secret)
        person = next(p for p, passes in sample_people(harness.settings, date.today()) if passes)
        output = io.StringIO()
        accounts = {name: harness.user(user_id) for name, user_id in DEMO_ACCOUNTS.items()}
        chat = DemoChat(Console(file=output, width=100), accounts)
        worker, staff = accounts["pekerja"], accounts["staf"]

        async def say(line: str, user: EmulatedUser, answer: str) -> None:
            # Wait for the answer as the person would, then let the chat show it (and learn
            # its buttons) from where it had read.
            shown = user.cursor
            await chat.handle(line)
            await user.expect(answer)
            user.cursor = shown
            chat.show_replies()

        await say("/start", worker, r"Selamat datang")
        await say("1", worker, r"\(1/9\)")  # Setuju
        await say(person.nik, worker, r"\(2/9\)")
        await say(person.nama.title(), worker, r"\(3/9\)")
        await say(person.tanggal_lahir.strftime("%d-%m-%Y"), worker, r"\(4/9\)")
        await say("kontak", worker, r"\(5/9\)")
        await say("Jl. Melati No. 5 RT 01/RW 02", worker, r"\(6/9\)")
        await say("1", worker, r"kelurahan")  # the first kecamatan
        await say("1", worker, r"\(7/9\)")  # its first kelurahan
        await say("1", worker, r"\(8/9\)")  # the first occupation
        await say("Siti Aminah", worker, r"\(9/9\)")
        await say("2", worker, r"Periksa kembali")
        await say("1", worker, r"BKS-")  # Kirim
        await chat.handle("/as staf")
        assert chat.user is staff
        await say("/tinjau", staff, r"menunggu verifikasi")
        await say("1", staff, r"disetujui")  # Setujui
        await chat.handle("/as pekerja")
        shown = worker.cursor
        await worker.expect(r"disetujui")
        worker.cursor = shown
        chat.show_replies()
        assert "disetujui" in output.getvalue()
        assert "now typing as: staf" in output.getvalue()
        assert "now typing as: pekerja" in output.getvalue()
    finally:
        await harness.stop()


def _message(text: str, **fields: object) -> BotMessage:
    values: dict[str, Any] = {
        "message_id": 7,
        "chat_id": DEMO_USER_ID,
        "text": text,
        "raw_text": text,
        "parse_mode": None,
        "buttons": [],
        "reply_keyboard": None,
        "remove_keyboard": False,
        "document": None,
        "photo": None,
        "edited": False,
    }
    values.update(fields)
    return BotMessage(**values)


def test_demo_prints_brackets_in_a_workers_text_as_typed() -> None:
    """ "[/b]" in a name or a button is text, not terminal markup (it crashed the demo)."""
    output = io.StringIO()
    console = Console(file=output, width=100)
    _render(console, _message("Nama: [/b] Budi [bold]", buttons=[[("[/i] ok", "x")]]))
    assert "[/b] Budi [bold]" in output.getvalue()
    assert "[/i] ok" in output.getvalue()


async def test_demo_emulator_continues_its_ids_after_a_restart(tmp_path: Path) -> None:
    """Update and message ids go on from where the last run stopped (the bot ignores ids it
    has handled before)."""
    first = BotApiEmulator()
    await first.start()
    try:
        sent = await first.user(DEMO_USER_ID).send("/start")
        await first.user(DEMO_USER_ID).send("halo")
        save_numbering(first, tmp_path)
        next_update = first.numbering()["next_update_id"]
    finally:
        await first.stop()
    second = BotApiEmulator()
    load_numbering(second, tmp_path)
    await second.start()
    try:
        again = await second.user(DEMO_USER_ID).send("/start")
        assert again["message_id"] == sent["message_id"] + 2
        assert second.numbering()["next_update_id"] == next_update + 1
    finally:
        await second.stop()


async def test_demo_button_numbers_are_never_sent_as_text_and_wait_for_a_late_reply(
    harness: Harness,
) -> None:
    """ "1" typed before the welcome has been shown presses its first button once it arrives;
    "1" where there are no buttons is refused in the terminal and never reaches the bot."""
    output = io.StringIO()
    worker = harness.user(DEMO_USER_ID)
    chat = DemoChat(Console(file=output, width=100), {"pekerja": worker})
    await chat.handle("/start")
    await chat.handle("1")  # the welcome has not been shown yet
    await worker.expect(r"\(1/9\)")
    await chat.handle("1")  # the NIK question has no buttons
    assert "no button 1" in output.getvalue()
    typed = [m.text for m in worker.messages() if not m.from_bot]
    assert typed == ["/start"]


async def test_demo_shows_late_messages_without_a_keypress(harness: Harness) -> None:
    """A decision or reminder arriving while the person is not typing is printed anyway."""
    output = io.StringIO()
    worker = harness.user(DEMO_USER_ID)
    chat = DemoChat(Console(file=output, width=100), {"pekerja": worker})
    watcher = asyncio.create_task(chat.watch(interval=0.05))
    try:
        assert harness.app is not None
        await harness.app.bot.send_message(DEMO_USER_ID, "Keputusan datang terlambat")
        for _ in range(100):
            if "Keputusan datang terlambat" in output.getvalue():
                break
            await asyncio.sleep(0.05)
        assert "Keputusan datang terlambat" in output.getvalue()
    finally:
        watcher.cancel()


async def test_demo_saves_charts_and_exports_and_prints_their_path_and_size(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """/statistik's chart and /ekspor's files land in the data folder, with path and size."""
    harness = Harness(emulator, tmp_path, admin_ids=str(DEMO_STAFF_ID))
    await harness.start()
    try:
        services = harness.services
        await add_application(
            services.database,
            services.secret,
            make_person(5),
            user_id=5,
            code="BKS-D00005",
            status=Status.APPROVED,
        )
        output = io.StringIO()
        staff = harness.user(DEMO_STAFF_ID)
        files = tmp_path / "demo-data" / "files"
        chat = DemoChat(Console(file=output, width=300), {"staf": staff}, files_dir=files)
        await chat.handle("/statistik")
        await chat.handle("/ekspor")
        for _ in range(200):
            chat.show_replies()
            saved = sorted(p.name for p in files.glob("*")) if files.is_dir() else []
            if len(saved) == 3:
                break
            await asyncio.sleep(0.05)
        [chart] = files.glob("chart-*.png")
        printed = output.getvalue()
        assert f"chart saved: {chart}" in printed
        assert " px, " in printed
        assert sorted(p.suffix for p in files.glob("bpjs_bpu_*")) == [".csv", ".xlsx"]
        assert "file saved: " in printed
    finally:
        await harness.stop()


def test_demo_fresh_start_removes_earlier_data_and_its_env_points_the_cli_at_the_demo(
    tmp_path: Path,
) -> None:
    """--fresh empties the data folder; the .env the demo writes gives the CLI the demo's
    database and key, and an operator's own .env is never overwritten."""
    data = tmp_path / "demo-data"
    data.mkdir()
    (data / "demo.db").write_text("old")
    (data / "files").mkdir()
    assert {p.name for p in prepare_data_dir(data, fresh=True)} == {"demo.db", "files"}
    assert list(data.iterdir()) == []
    settings = demo_settings(load_settings(env_file=None), data, "http://127.0.0.1:1")
    write_env(tmp_path, settings)
    from_env = load_settings(env_file=str(tmp_path / ".env"))
    assert from_env.database_url == settings.database_url
    assert from_env.pii_secret == settings.pii_secret
    own = tmp_path / "own"
    own.mkdir()
    (own / ".env").write_text("DATABASE_URL=postgresql+asyncpg://x/y\n")
    assert "left as it is" in write_env(own, settings)
    assert (own / ".env").read_text() == "DATABASE_URL=postgresql+asyncpg://x/y\n"


async def test_demo_switches_between_several_workers_and_staff(harness: Harness) -> None:
    """`/as pekerja2` types as a second worker (a daily NIK limit of its own)."""
    output = io.StringIO()
    accounts = {name: harness.user(user_id) for name, user_id in DEMO_ACCOUNTS.items()}
    chat = DemoChat(Console(file=output, width=100), accounts)
    assert {"pekerja", "pekerja2", "pekerja3", "staf"} <= set(DEMO_ACCOUNTS)
    await chat.handle("/as pekerja2")
    assert chat.user is accounts["pekerja2"]
    await chat.handle("/start")
    await accounts["pekerja2"].expect(r"Selamat datang")
    assert "now typing as: pekerja2" in output.getvalue()


def test_readme_shows_each_demo_persons_kelurahan_and_expected_result() -> None:
    """The README's rows carry the names the demo prints and the result it leads to."""
    settings = load_settings(env_file=None)
    text = README.read_text()
    for person, passes in sample_people(settings, date.today()):
        expected = expected_result(person, settings, date.today())
        assert (expected == "passes") == passes
        assert f"| {domicile(person, settings)} | {expected} |" in text


def test_make_demo_installs_no_dev_tools_and_make_test_installs_them() -> None:
    """`make demo` needs the bot only; `make test` (CI on a clean clone) still gets pytest,
    ruff and mypy."""
    root = README.parent

    def dry_run(target: str) -> str:
        result = subprocess.run(
            ["make", "-n", "--always-make", target],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout

    demo = dry_run("demo")
    assert "pip install" in demo
    assert "dev]" not in demo
    assert "rentan-bot demo" in demo
    assert "'.[postgres,dev]'" in dry_run("test")
    assert "rentan-bot demo --fresh" in dry_run("demo-reset")


def test_every_folder_of_package_files_is_a_listed_package() -> None:
    """setuptools warns ~40 lines for each data folder missing from `packages`; none is."""
    root = README.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    unlisted = set()
    for package in packages:
        folder = root / package.replace(".", "/")
        for path in folder.rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            parent = ".".join(path.parent.relative_to(root).parts)
            if parent not in packages:
                unlisted.add(parent)
    assert unlisted == set()


def test_demo_approvals_always_buy_months_of_cover(tmp_path: Path) -> None:
    """Unless the operator chose the programme year, the demo's is the year next month is in,
    so a demo approval in December still takes a place; a chosen year is kept."""
    url = "http://127.0.0.1:1"
    chosen = demo_settings(load_settings(env_file=None, program_year="2030"), tmp_path, url)
    assert chosen.program_year == 2030
    default = demo_settings(load_settings(env_file=None), tmp_path, url)
    next_month = date.today().replace(day=1) + timedelta(days=32)
    assert default.program_year == next_month.year
    assert default.budget.places_from(next_month) > 0
