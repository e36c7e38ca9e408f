"""The demo's promises: its sample people pass or are refused as the README says."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from bot.demo import DEMO_SAMPLE_ROWS, DEMO_SAMPLE_SEED, sample_people
from bot.sample_dtsen import write_sample
from config.settings import load_settings
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
