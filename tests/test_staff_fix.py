"""/perbaiki in Indonesian, the field buttons, the reviewer's note to the worker, and Batal."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from domain.fix_fields import read_fix_field
from domain.flow import FIELD_LABELS, Step
from domain.lifecycle import Status
from storage.models import Application
from testkit.harness import Harness
from tests.test_review import REVIEWER, register, status_of


async def stored(harness: Harness, code: str) -> Application:
    """The stored application with this number."""
    async with harness.services.database.read() as session:
        query = sa.select(Application).where(Application.code == code)
        return (await session.execute(query)).scalar_one()


@pytest.mark.parametrize(
    ("words", "field", "rest"),
    [
        ("alamat RT belum ada", Step.ADDRESS, "RT belum ada"),
        ("tgl lahir", Step.BIRTH_DATE, ""),
        ("Tanggal_Lahir beda dengan KTP", Step.BIRTH_DATE, "beda dengan KTP"),
        ("nama ahli waris", Step.HEIR_NAME, ""),
        ("nama Budi tanpa gelar", Step.NAME, "Budi tanpa gelar"),
        ("HP", Step.PHONE, ""),
        ("no. hp", Step.PHONE, ""),
        ("pekerjaan", Step.OCCUPATION, ""),
        ("kelurahan", Step.KECAMATAN, ""),
        ("hubungan", Step.HEIR_RELATION, ""),
        ("birth_date", Step.BIRTH_DATE, ""),
    ],
)
def test_reviewer_field_words_in_indonesian_name_the_field(
    words: str, field: Step, rest: str
) -> None:
    """Indonesian names, abbreviations and the English step names all name a field."""
    assert read_fix_field(words.split()) == (field, rest.split())


def test_every_field_a_fix_may_name_has_an_indonesian_word() -> None:
    """Each field of the fix picker can also be typed."""
    named = {
        found[0]
        for word in [
            "nik",
            "nama",
            "tgl_lahir",
            "hp",
            "pekerjaan",
            "kecamatan",
            "alamat",
            "ahli_waris",
            "hubungan",
        ]
        if (found := read_fix_field([word]))
    }
    assert set(FIELD_LABELS) == named


def test_words_that_name_no_field_are_not_a_field() -> None:
    """A typo is not guessed at."""
    assert read_fix_field(["almat"]) is None


async def test_perbaiki_with_an_indonesian_field_and_a_note_reaches_the_worker(
    harness: Harness,
) -> None:
    """/perbaiki NUMBER tgl lahir NOTE: the worker is asked for the date and reads the note."""
    worker, code = await register(harness, 210101, 101)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/perbaiki {code} tgl lahir Tidak sama dengan KTP")
    outcome = await reviewer.expect(r"dikembalikan")
    assert "Catatan untuk pekerja: Tidak sama dengan KTP" in outcome.text
    notice = await worker.expect(r"memperbaiki: Tanggal lahir")
    assert "Catatan dari petugas: Tidak sama dengan KTP" in notice.text
    application = await stored(harness, code)
    assert (application.status, application.fix_field) == (Status.NEEDS_FIX, "birth_date")
    await worker.send("/status")
    status = await worker.expect(r"Status")
    assert "Tidak sama dengan KTP" in status.text


async def test_perbaiki_without_a_field_offers_the_fields_and_batal(harness: Harness) -> None:
    """No field (or an unknown one): the field buttons with Batal; Batal sends nothing."""
    worker, code = await register(harness, 210102, 102)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/perbaiki {code} almat")
    picker = await reviewer.expect(r"Data mana")
    labels = [label for row in picker.buttons for label, _data in row]
    assert {"Alamat", "Tanggal lahir", "✖️ Batal"} <= set(labels)
    await reviewer.press("✖️ Batal")
    await reviewer.expect(r"Dibatalkan")
    assert await status_of(harness, code) == Status.PENDING
    await reviewer.send(f"/perbaiki {code}")
    await reviewer.expect(r"Data mana")
    await reviewer.press("Alamat")
    await reviewer.expect(r"Ketik catatan")
    await reviewer.send("Tulis RT/RW dan nomor rumah")
    outcome = await reviewer.expect(r"dikembalikan")
    assert "Tulis RT/RW dan nomor rumah" in outcome.text
    notice = await worker.expect(r"memperbaiki: Alamat")
    assert "Catatan dari petugas: Tulis RT/RW dan nomor rumah" in notice.text
    assert (await stored(harness, code)).decision_reason == "Tulis RT/RW dan nomor rumah"


async def test_every_card_picker_has_batal(harness: Harness) -> None:
    """The reject reasons and the fix fields each end with Batal, which changes nothing."""
    _worker, code = await register(harness, 210103, 103)
    reviewer = harness.user(REVIEWER)
    for button, prompt in (("❌ Tolak", r"Mengapa"), ("✏️ Perlu perbaikan", r"Bagian mana")):
        await reviewer.send(f"/tinjau {code}")
        await reviewer.expect(re.escape(code))
        await reviewer.press(button)
        picker = await reviewer.expect(prompt)
        assert picker.buttons[-1][0][0] == "✖️ Batal"
        await reviewer.press("✖️ Batal")
        await reviewer.expect(r"Dibatalkan")
    assert await status_of(harness, code) == Status.PENDING
