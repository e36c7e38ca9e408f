"""Erasing a worker who held a place keeps only what BPJS needs to stop paying, until done."""

from __future__ import annotations

import re

import sqlalchemy as sa

from domain.lifecycle import Status
from domain.pii import mask_nik
from emulator import EmulatedUser
from storage.models import Application, AuditEvent, Deregistration
from testkit.factories import Person, make_person
from testkit.fakes import add_applications, make_application
from testkit.harness import Harness
from tests.test_registration import applications_of, finish, give_identity, reach_nik, seed

ADMIN = 900001
REVIEWER = 900002
KEPT = r"hanya menyimpan NIK, nama, nomor kepesertaan BPJS Ketenagakerjaan \(KPJ\)"
WHY = "kewajiban hukum menurut UU PDP"
UNTIL = "dihapus segera setelah petugas melakukannya"


async def _kept(harness: Harness) -> list[Deregistration]:
    async with harness.services.database.read() as session:
        return list((await session.execute(sa.select(Deregistration))).scalars())


async def _erase(worker: EmulatedUser) -> tuple[str, str]:
    """/hapusdata and yes; returns the question and the confirmation."""
    await worker.send("/hapusdata")
    asked = await worker.expect(r"menarik persetujuan")
    await worker.press("🗑 Ya, hapus data saya")
    done = await worker.expect(r"sudah dihapus")
    return asked.text, done.text


async def _approved_worker(
    harness: Harness, person: Person, user_id: int
) -> tuple[EmulatedUser, str]:
    await seed(harness, person)
    worker = harness.user(user_id)
    await reach_nik(worker)
    await give_identity(worker, person)
    code = await finish(worker, person)
    admin = harness.user(ADMIN)
    await admin.send(f"/setujui {code}")
    await admin.expect(r"disetujui")
    await worker.expect(r"sudah disetujui")
    return worker, code


async def test_approved_worker_erasing_is_told_what_is_kept_and_staff_deregister_it(
    harness: Harness,
) -> None:
    """An approved worker's /hapusdata says, before and after, that NIK, name, KPJ and dates
    stay (why, until when); everything else goes. Reviewers see the case with a masked NIK,
    admins with the full one; only an admin marks it done, which deletes it and is audited."""
    person = make_person(6101)
    worker, code = await _approved_worker(harness, person, 610100)
    asked, done = await _erase(worker)
    for text in (asked, done):
        assert re.search(KEPT, text)
        assert WHY in text
        assert UNTIL in text
    assert await applications_of(harness, worker.id) == []
    [kept] = await _kept(harness)
    assert (kept.code, kept.nik, kept.nama, kept.kpj_number) == (
        code,
        person.nik,
        person.name,
        None,
    )
    assert kept.approved_at is not None
    assert kept.erased_at >= kept.approved_at
    admin, reviewer = harness.user(ADMIN), harness.user(REVIEWER)
    await admin.expect(rf"{re.escape(code)} keluar dari program[\s\S]*/deregistrasi")

    await reviewer.send("/deregistrasi")
    listed = await reviewer.expect(r"Deregistrasi menunggu")
    assert code in listed.text
    assert mask_nik(person.nik) in listed.text
    assert person.nik not in listed.text
    assert listed.button_labels() == []
    await reviewer.send(f"/deregistrasi selesai {code}")
    await reviewer.expect(r"Hanya admin")
    assert len(await _kept(harness)) == 1

    await admin.send("/deregistrasi")
    listed = await admin.expect(r"Deregistrasi menunggu")
    assert person.nik in listed.text
    assert person.name in listed.text
    await admin.send(f"/deregistrasi selesai {code.lower()}")
    await admin.expect(rf"Deregistrasi {re.escape(code)} ditandai selesai")
    assert await _kept(harness) == []
    async with harness.services.database.read() as session:
        audit = list((await session.execute(sa.select(AuditEvent))).scalars())
    [marked] = [event for event in audit if event.action == "deregistered"]
    assert marked.actor_id == ADMIN
    assert all(person.nik not in str(event.model_dump()) for event in audit)
    await admin.send("/deregistrasi")
    await admin.expect(r"Tidak ada deregistrasi yang menunggu")


async def test_enrolled_worker_kept_with_kpj_and_admin_marks_it_done_with_the_button(
    harness: Harness,
) -> None:
    """An enrolled worker's KPJ is kept with the rest; the admin's button marks it done and
    the list loses the case."""
    services = harness.services
    person = make_person(6201)
    code = "BKS-DR0001"
    application = make_application(
        person,
        secret=services.secret,
        user_id=620100,
        code=code,
        status=Status.ENROLLED,
        kpj_number="12345678901",
    )
    await add_applications(services.database, application)
    worker = harness.user(620100)
    asked, done = await _erase(worker)
    assert re.search(KEPT, asked)
    assert re.search(KEPT, done)
    [kept] = await _kept(harness)
    assert (kept.code, kept.kpj_number) == (code, "12345678901")
    admin = harness.user(ADMIN)
    await admin.send("/deregistrasi")
    await admin.expect(r"12345678901")
    await admin.press(f"✅ {code} selesai")
    await admin.expect(rf"Deregistrasi {re.escape(code)} ditandai selesai")
    await admin.expect(r"Tidak ada deregistrasi yang menunggu")
    assert await _kept(harness) == []


async def test_worker_without_a_place_is_not_kept_for_deregistration(harness: Harness) -> None:
    """A pending worker's /hapusdata keeps nothing: no deregistration, no such promise."""
    services = harness.services
    person = make_person(6301)
    await add_applications(
        services.database,
        make_application(person, secret=services.secret, user_id=630100, code="BKS-DR0002"),
    )
    asked, done = await _erase(harness.user(630100))
    assert not re.search(KEPT, asked)
    assert not re.search(KEPT, done)
    assert await _kept(harness) == []
    async with services.database.read() as session:
        assert (await session.execute(sa.select(Application))).all() == []


async def test_reviewer_cannot_mark_a_deregistration_done_with_a_forged_button(
    harness: Harness,
) -> None:
    """The 'done' button is the admin's: a reviewer pressing forged data changes nothing."""
    services = harness.services
    person = make_person(6401)
    await add_applications(
        services.database,
        make_application(
            person,
            secret=services.secret,
            user_id=640100,
            code="BKS-DR0003",
            status=Status.APPROVED,
        ),
    )
    await _erase(harness.user(640100))
    reviewer = harness.user(REVIEWER)
    await reviewer.expect(r"BKS-DR0003 keluar dari program")
    await reviewer.send("/deregistrasi")
    await reviewer.expect(r"Deregistrasi menunggu[\s\S]*BKS-DR0003")
    await reviewer.press_data("dr:BKS-DR0003")
    await reviewer.expect_no_reply()
    assert len(await _kept(harness)) == 1


async def _nik_views(harness: Harness) -> list[tuple[int | None, int | None, str | None]]:
    async with harness.services.database.read() as session:
        query = (
            sa.select(AuditEvent.actor_id, AuditEvent.application_id, AuditEvent.reason)
            .where(AuditEvent.action == "nik_view")
            .order_by(AuditEvent.id)
        )
        return [tuple(row) for row in (await session.execute(query)).all()]


async def test_full_niks_in_the_admins_deregistration_list_are_audited(
    harness: Harness,
) -> None:
    """The admin's /deregistrasi shows full NIKs: each case shown is audited as a NIK view
    (who, which application, via which command); a reviewer's masked list is not, and a list
    redelivered after a crash is audited once."""
    services = harness.services
    ids = []
    for index in range(2):
        application = make_application(
            make_person(6501 + index),
            secret=services.secret,
            user_id=650100 + index,
            code=f"BKS-DR001{index}",
            status=Status.APPROVED,
        )
        await add_applications(services.database, application)
        ids.append(application.id)
        await _erase(harness.user(650100 + index))
    reviewer, admin = harness.user(REVIEWER), harness.user(ADMIN)
    await reviewer.send("/deregistrasi")
    await reviewer.expect(r"Deregistrasi menunggu")
    assert await _nik_views(harness) == []

    await admin.send("/deregistrasi")
    await admin.expect(r"Deregistrasi menunggu")
    listing = harness.emulator.last_update_id
    expected = [(ADMIN, application_id, "via /deregistrasi") for application_id in ids]
    assert await _nik_views(harness) == expected
    await harness.stop()
    harness.emulator.redeliver(listing)
    await harness.start()
    await admin.expect_no_reply(within=1.0)
    assert await _nik_views(harness) == expected
