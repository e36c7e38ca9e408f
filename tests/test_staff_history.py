"""/riwayat reads as sentences in the reviewer's language: WIB times, who, what and why."""

from __future__ import annotations

from testkit.harness import Harness
from tests.test_review import ADMIN, REVIEWER, register

RAW_CODES = ("needs_fix", "pending", "rejected", "reject ", "submit ", "→", "[{", "UTC")


async def test_history_says_who_did_what_and_why_in_indonesian(harness: Harness) -> None:
    """A fix with a note and a rejection with a reason read as sentences, no codes or JSON."""
    _worker, code = await register(harness, 210201, 201)
    reviewer = harness.user(REVIEWER)
    admin = harness.user(ADMIN)
    await reviewer.send(f"/perbaiki {code} alamat RT belum ditulis")
    await reviewer.expect(r"dikembalikan")
    await admin.send(f"/tolak {code} Data ganda")
    await admin.expect(r"ditolak")
    await reviewer.send(f"/riwayat {code}")
    text = (await reviewer.expect(r"Riwayat")).text
    assert "dikirim oleh pekerja" in text
    assert (
        f"dikembalikan ke pekerja untuk memperbaiki Alamat oleh {REVIEWER} (peninjau) · "
        "Catatan untuk pekerja: RT belum ditulis"
    ) in text
    assert f"ditolak oleh {ADMIN} (admin) · alasan: Data ganda" in text
    assert "WIB" in text
    for raw in RAW_CODES:
        assert raw not in text


async def test_history_is_in_english_for_an_english_reviewer(harness: Harness) -> None:
    """The same history in the reviewer's language."""
    _worker, code = await register(harness, 210202, 202)
    reviewer = harness.user(REVIEWER, language_code="en")
    await reviewer.send(f"/setujui {code}")
    await reviewer.expect(r"approved")
    await reviewer.send(f"/riwayat {code}")
    text = (await reviewer.expect(r"History")).text
    assert "submitted by the worker" in text
    assert f"approved by {REVIEWER} (reviewer)" in text
