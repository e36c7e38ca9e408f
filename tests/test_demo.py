"""The demo's promises: its sample people pass or are refused as the README says."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console

from bot.demo import (
    DEMO_ACCOUNTS,
    DEMO_SAMPLE_ROWS,
    DEMO_SAMPLE_SEED,
    DEMO_STAFF_ID,
    DemoChat,
    demo_settings,
    sample_people,
)
from bot.sample_dtsen import write_sample
from config.settings import load_settings
from emulator import BotApiEmulator, EmulatedUser
from storage.dtsen import import_dtsen
from testkit.harness import Harness

README = Path(__file__).resolve().parent.parent / "README.md"


async def test_demo_sample_people_pass_or_are_refused_as_listed(
    harness: Harness, tmp_path: Path
) -> None:
    """Register as each listed person against the demo's own DTSEN sample."""
    sample = tmp_path / "sample.csv"
    write_sample(sample, rows=DEMO_SAMPLE_ROWS, seed=DEMO_SAMPLE_SEED)
    services = harness.services
    await import_dtsen(
        services.database, sample, secret=services.secret, today=date.today(), actor="test"
    )
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
        sample = tmp_path / "sample.csv"
        write_sample(sample, rows=DEMO_SAMPLE_ROWS, seed=DEMO_SAMPLE_SEED)
        services = harness.services
        await import_dtsen(
            services.database, sample, secret=services.secret, today=date.today(), actor="test"
        )
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
        await say("1", worker, r"\(6/9\)")  # the first occupation
        await say("1", worker, r"kelurahan")  # the first kecamatan
        await say("1", worker, r"\(7/9\)")  # its first kelurahan
        await say("Jl. Melati No. 5 RT 01/RW 02", worker, r"\(8/9\)")
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
