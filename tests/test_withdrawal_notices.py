"""Withdrawal notices say why: staff's reason from /tarik, else the kind of withdrawal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emulator import BotApiEmulator
from testkit.harness import Harness
from tests.test_review import ADMIN, REVIEWER, pending_batch


@pytest.fixture
async def one_place(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> AsyncIterator[Harness]:
    """A programme with one place."""
    harness = Harness(
        emulator,
        tmp_path,
        database_url=database_url,
        program_quota="1",
        program_waitlist_promotion="staff",  # the offer names the next one with /tinjau
    )
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def approved_and_waiting(harness: Harness) -> tuple[str, str]:
    """The only place taken by the first application, the second on the waiting list."""
    first, second = await pending_batch(harness, 2)
    admin, reviewer = harness.user(ADMIN), harness.user(REVIEWER)
    await admin.send(f"/setujui {first}")
    await admin.expect(r"disetujui")
    await reviewer.send(f"/setujui {second}")
    await reviewer.expect(r"daftar tunggu")
    return first, second


async def test_staff_withdrawal_tells_the_worker_and_staff_the_reason(one_place: Harness) -> None:
    """/tarik NUMBER REASON: the worker reads the reason; staff offered the freed place read
    which application left and why."""
    worker = one_place.user(700000)  # the first application's account
    first, second = await approved_and_waiting(one_place)
    admin, reviewer = one_place.user(ADMIN), one_place.user(REVIEWER)
    await admin.send(f"/tarik {first} Pindah ke luar kota")
    await admin.expect(r"ditarik")
    notice = await worker.expect(r"ditarik dari program")
    assert "Alasan: Pindah ke luar kota" in notice.text
    await worker.send("/status")
    status = await worker.expect(r"Status: ")
    assert "Alasan: Pindah ke luar kota" in status.text
    offer = await reviewer.expect(r"Ada tempat kosong")
    assert f"{first} ditarik dari program oleh petugas. Alasan: Pindah ke luar kota" in offer.text
    assert f"/tinjau {second}" in offer.text


async def test_worker_leaving_tells_staff_it_was_their_own_consent(one_place: Harness) -> None:
    """A worker erasing their data frees the place: staff read that the worker withdrew."""
    worker = one_place.user(700000)
    first, second = await approved_and_waiting(one_place)
    reviewer = one_place.user(REVIEWER)
    await worker.send("/hapusdata")
    await worker.expect(r"hapus")
    await worker.press("🗑 Ya, hapus data saya")
    offer = await reviewer.expect(r"Ada tempat kosong")
    assert f"{first} keluar dari program: persetujuan ditarik oleh pekerja." in offer.text
    assert f"/tinjau {second}" in offer.text
