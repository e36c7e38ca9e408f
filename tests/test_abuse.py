"""Abuse refused: eligibility probing, edited commands, groups and channels, retention, erasure."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from telegram.ext import Job

from domain.lifecycle import Status
from domain.pii import hash_identifier
from emulator import BotApiEmulator, EmulatedUser
from handlers.context import Context
from handlers.housekeeping import tidy_drafts
from storage.drafts import ATTEMPT_WINDOW
from storage.models import (
    Application,
    AttemptKind,
    AuditEvent,
    NikAttempt,
    Notification,
    ProcessedUpdate,
    UserPreference,
    utcnow,
)
from storage.retention import ERASED_PREFIX
from testkit.factories import Person, make_person
from testkit.fakes import add_application
from testkit.harness import Harness
from tests.test_registration import (
    NO_MATCH,
    applications_of,
    finish,
    give_identity,
    in_words,
    reach_nik,
    seed,
)

REVIEWER = 900002
ADMIN = 900001


async def test_not_found_mismatch_and_desil_too_high_read_exactly_the_same(
    harness: Harness,
) -> None:
    """The refusal is one text, whatever the reason, so it cannot be used to learn who is in
    DTSEN or how poor they are ranked."""
    absent, mismatch, rich = make_person(4101), make_person(4102), make_person(4103)
    await seed(harness, mismatch)
    await seed(harness, rich, desil=9)
    replies = []
    for index, (person, name) in enumerate(
        [(absent, None), (mismatch, "Agus Salim Wibowo"), (rich, None)]
    ):
        user = harness.user(410000 + index)
        await reach_nik(user)
        await give_identity(user, person, name=name)
        replies.append((await user.expect(NO_MATCH)).text)
    assert replies[0] == replies[1] == replies[2]


@pytest.fixture
async def strict_harness(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> AsyncIterator[Harness]:
    """The bot allowing two distinct NIKs per account per day."""
    h = Harness(emulator, tmp_path, database_url=database_url, nik_attempts_per_day=2)
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def test_a_third_distinct_nik_in_a_day_is_refused(strict_harness: Harness) -> None:
    """NIK_ATTEMPTS_PER_DAY caps how many NIKs one account can probe; the same NIK again does
    not count, and the refused NIK is not stored."""
    harness = strict_harness
    first, second, third = make_person(4201), make_person(4202), make_person(4203)
    user = harness.user(420000)
    for person in (first, second, first):
        await reach_nik(user)
        await user.send(person.nik)
        await user.expect(r"\(2/9\)")
        await user.send("/batal")
        await user.expect(r"Pendaftaran dibatalkan")
    await reach_nik(user)
    await user.send(third.nik)
    await user.expect(r"Terlalu banyak NIK berbeda")
    [draft] = await applications_of(harness, user.id)
    assert (draft.step, draft.nik) == ("nik", None)


TOO_MANY_NIKS = r"Terlalu banyak NIK berbeda"
TOO_MANY_CHECKS = r"Terlalu banyak nama dan tanggal lahir berbeda"
NAME_ASKED = r"\(2/9\)"
BIRTH_DATE_ASKED = r"\(3/9\) Kirim tanggal lahir"
PHONE_ASKED = r"\(4/9\)"
NIK_TAKEN = r"NIK ini tidak dapat didaftarkan dari akun ini"


async def _try_nik(user: EmulatedUser, nik: str, answer: str) -> None:
    """Start a registration and send a NIK; once the name is asked, cancel again."""
    await reach_nik(user)
    await user.send(nik)
    await user.expect(answer)
    if answer == NAME_ASKED:
        await user.send("/batal")
        await user.expect(r"Pendaftaran dibatalkan")


async def _attempt_keys(harness: Harness, user_id: int) -> list[str]:
    """The keys (nik_hash) of every attempt row of an account."""
    async with harness.services.database.read() as session:
        query = sa.select(NikAttempt.nik_hash).where(NikAttempt.telegram_user_id == user_id)
        return list((await session.execute(query)).scalars())


async def test_already_registered_answers_count_towards_the_daily_nik_limit(
    strict_harness: Harness,
) -> None:
    """ "This NIK is already registered" tells a stranger something about the NIK, so it uses up
    an attempt: an account cannot learn who is registered by trying NIK after NIK."""
    harness = strict_harness
    services = harness.services
    registered = [make_person(4701 + index) for index in range(3)]
    for index, person in enumerate(registered):
        await add_application(
            services.database,
            services.secret,
            person,
            user_id=470100 + index,
            code=f"BKS-RG000{index}",
        )
    user = harness.user(470000)
    await _try_nik(user, registered[0].nik, NIK_TAKEN)
    await user.send(registered[1].nik)
    await user.expect(NIK_TAKEN)
    await user.send(registered[2].nik)
    await user.expect(TOO_MANY_NIKS)


async def test_registered_nik_answer_is_the_same_whatever_the_other_status_and_staff_see_it(
    harness: Harness,
) -> None:
    """A second account typing a NIK another account applied with reads one neutral text
    (pending, approved or rejected alike) that says whom to contact; the first application's
    card tells staff that another account claimed its NIK."""
    services = harness.services
    replies = {}
    for index, status in enumerate((Status.PENDING, Status.APPROVED, Status.REJECTED)):
        person = make_person(4751 + index)
        code = f"BKS-CL000{index}"
        await add_application(
            services.database,
            services.secret,
            person,
            user_id=475100 + index,
            code=code,
            status=status,
        )
        second = harness.user(475000 + index)
        await reach_nik(second)
        await second.send(person.nik)
        reply = await second.expect(NIK_TAKEN)
        replies[status] = reply.text
        assert services.settings.office_contact in reply.text
        assert "/bantuan" in reply.text
        [draft] = await applications_of(harness, second.id)
        assert draft.nik is None
        reviewer = harness.user(REVIEWER)
        await reviewer.send(f"/tinjau {code}")
        card = await reviewer.expect(re.escape(code))
        assert "NIK ini juga dicoba oleh 1 akun lain" in card.text
    assert replies[Status.PENDING] == replies[Status.APPROVED] == replies[Status.REJECTED]


async def test_worker_rejected_before_may_apply_again_with_their_own_nik(
    harness: Harness,
) -> None:
    """Only another account's rejected application blocks a NIK: its own worker may try again."""
    services = harness.services
    person = make_person(4761)
    await add_application(
        services.database,
        services.secret,
        person,
        user_id=476000,
        code="BKS-RJ0001",
        status=Status.REJECTED,
    )
    user = harness.user(476000)
    await reach_nik(user)
    await user.send(person.nik)
    await user.expect(NAME_ASKED)


async def test_erasing_data_does_not_reset_the_daily_nik_limit(strict_harness: Harness) -> None:
    """/hapusdata unlinks the account's attempts from its NIKs but keeps them counting: the
    NIKs tried before the erasure still use up the day's limit, and their HMACs are gone."""
    harness = strict_harness
    first, second, third = make_person(4801), make_person(4802), make_person(4803)
    user = harness.user(480000)
    await _try_nik(user, first.nik, NAME_ASKED)
    await _try_nik(user, second.nik, NAME_ASKED)
    await user.send("/hapusdata")
    await user.expect(r"menarik persetujuan")
    await user.press("🗑 Ya, hapus data saya")
    await user.expect(r"sudah dihapus")
    keys = await _attempt_keys(harness, user.id)
    secret = harness.services.secret
    assert len(set(keys)) == 2
    assert all(key.startswith(ERASED_PREFIX) for key in keys)
    assert not {hash_identifier(p.nik, secret) for p in (first, second)} & set(keys)
    await _try_nik(user, third.nik, TOO_MANY_NIKS)
    # Nothing links the first NIK to its erased attempt any more: it is a new one.
    await user.send(first.nik)
    await user.expect(TOO_MANY_NIKS)


async def test_attempts_kept_only_for_the_daily_limit_are_deleted_once_they_stop_counting(
    harness: Harness,
) -> None:
    """Housekeeping deletes eligibility checks and erased accounts' attempts once they are a
    day old; NIK look-ups stay for the staff risk flag."""
    services = harness.services
    rows = [
        (AttemptKind.NIK, "a" * 64),
        (AttemptKind.CLAIM, "b" * 64),
        (AttemptKind.NIK, ERASED_PREFIX + "c" * 32),
        (AttemptKind.CLAIM, ERASED_PREFIX + "d" * 32),
    ]
    for kind, key in rows:
        assert await services.applications.record_attempt(
            user_id=490000, kind=kind, key_hash=key, since=utcnow() - ATTEMPT_WINDOW, limit=5
        )
    started = services.clock()
    services.clock = lambda: started + ATTEMPT_WINDOW - timedelta(hours=1)
    await _run_housekeeping(harness)
    assert sorted(await _attempt_keys(harness, 490000)) == sorted(key for _kind, key in rows)
    services.clock = lambda: started + ATTEMPT_WINDOW + timedelta(hours=1)
    await _run_housekeeping(harness)
    assert await _attempt_keys(harness, 490000) == ["a" * 64]


async def _claim(user: EmulatedUser, person: Person, name: str, answer: str) -> str:
    """A registration from /start claiming this person's NIK and birth date with `name`;
    returns the reply."""
    await reach_nik(user)
    await give_identity(user, person, name=name)
    return (await user.expect(answer)).text


async def test_guessing_names_and_dates_for_one_nik_is_capped(strict_harness: Harness) -> None:
    """A stranger holding one NIK cannot guess its owner's name and birth date check after
    check: past the limit no check runs, the date is asked again and nothing about DTSEN is
    revealed, even for the right guess."""
    harness = strict_harness
    person = make_person(5001)
    await seed(harness, person)
    user = harness.user(500000)
    await _claim(user, person, "Agus Salim Wibowo", NO_MATCH)
    await _claim(user, person, "Bambang Sutrisno", NO_MATCH)
    refusal = await _claim(user, person, person.name, TOO_MANY_CHECKS)
    assert re.search(BIRTH_DATE_ASKED, refusal)
    await user.expect_no_reply(within=0.3)
    assert not any(e.from_bot and "(4/9)" in (e.message.text or "") for e in user.transcript())
    drafts = [a for a in await applications_of(harness, user.id) if a.status == Status.DRAFT]
    [draft] = drafts
    assert (draft.step, draft.tanggal_lahir, draft.dtsen_desil) == ("birth_date", None, None)
    # Staff still read "NIKs tried from this account" as NIKs: the checks are not NIKs.
    flags = await harness.services.review.risk_flags(application=draft)
    assert flags.nik_attempts == 1


async def test_repeating_the_same_claim_does_not_use_up_attempts(strict_harness: Harness) -> None:
    """The same NIK, name and birth date checked again (in capitals, or with a title the check
    ignores) counts once, and is still answered once the day's limit is used up."""
    harness = strict_harness
    person = make_person(5101)
    await seed(harness, person)
    user = harness.user(510000)
    await _claim(user, person, "Agus Salim", NO_MATCH)
    await _claim(user, person, "AGUS SALIM", NO_MATCH)
    await _claim(user, person, "Bambang Sutrisno", NO_MATCH)  # the second claim: the limit
    await _claim(user, person, "H. Agus Salim", NO_MATCH)
    assert len(set(await _attempt_keys(harness, user.id))) == 3  # one NIK, two claims


@contextmanager
def _application_updates_fail(harness: Harness) -> Iterator[None]:
    """Every UPDATE of an application fails as on a full disk, while other tables take writes
    (SQLite: a temporary trigger on each connection opened inside the block)."""
    engine = harness.services.database.engine.sync_engine

    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.cursor().execute(
            "CREATE TEMP TRIGGER no_application_update BEFORE UPDATE ON application "
            "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
        )

    sa.event.listen(engine, "connect", _connect)
    try:
        yield
    finally:
        sa.event.remove(engine, "connect", _connect)


async def test_a_check_whose_answer_was_not_saved_is_not_counted_again(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """A check counted but whose answer never reached the draft (a crash in between, then
    Telegram's redelivery, or the worker sending the date again) costs no second attempt."""
    harness = Harness(emulator, tmp_path, nik_attempts_per_day=1)
    await harness.start()
    try:
        person = make_person(5201)
        await seed(harness, person)
        user = harness.user(520000)
        await reach_nik(user)
        await user.send(person.nik)
        await user.expect(NAME_ASKED)
        await user.send(person.name)
        await user.expect(r"\(3/9\)")
        with _application_updates_fail(harness):
            await harness.services.database.engine.dispose()
            await user.send(in_words(person.birth_date))
            await user.expect(r"belum bisa kami simpan")
        await harness.services.database.engine.dispose()
        await user.send(in_words(person.birth_date))
        await user.expect(PHONE_ASKED)
    finally:
        await harness.stop()


async def test_an_edited_old_command_is_not_carried_out(harness: Harness) -> None:
    """A reviewer editing an old /antrian into /setujui approves nothing; a worker editing an
    old /start into /hapusdata erases nothing."""
    services = harness.services
    worker = harness.user(430000)
    code = "BKS-ED0001"
    await add_application(
        services.database, services.secret, make_person(4301), user_id=worker.id, code=code
    )
    reviewer = harness.user(REVIEWER)
    sent = await reviewer.send("/antrian")
    await reviewer.expect(r"menunggu verifikasi")
    await reviewer.edit(sent["message_id"], f"/setujui {code}")
    old = await worker.send("/status")
    await worker.expect(code)
    await worker.edit(old["message_id"], "/hapusdata")
    await reviewer.expect(r"diedit tidak saya baca")
    await worker.expect(r"diedit tidak saya baca")
    assert not any(f"{code} disetujui" in (e.message.text or "") for e in reviewer.transcript())
    assert not any("hapus" in (e.message.text or "") for e in worker.transcript() if e.from_bot)
    [stored] = await applications_of(harness, worker.id)
    assert stored.status == Status.PENDING


async def _row_counts(harness: Harness) -> dict[str, int]:
    counts = {}
    async with harness.services.database.read() as session:
        for model in (Application, AuditEvent, NikAttempt, ProcessedUpdate, UserPreference):
            query = sa.select(sa.func.count()).select_from(model)
            counts[model.__name__] = int((await session.execute(query)).scalar_one())
    return counts


async def test_groups_and_channels_store_nothing(harness: Harness) -> None:
    """Commands, NIKs and button presses from a group or a channel write no row anywhere; a
    channel gets no answer at all."""
    person = make_person(4401)
    before = await _row_counts(harness)
    group = harness.emulator.group(-100440, "Grup Ojol")
    user = harness.user(440000)
    await group.send(user, "/start")
    await group.expect(r"chat pribadi")
    await group.send(user, person.nik)
    await group.send(user, "/bahasa")
    channel = harness.emulator.channel(-100441, "Info Ojol")
    await channel.post("/start")
    await channel.post(person.nik)
    await harness.emulator.wait_idle(timeout=10)
    assert await _row_counts(harness) == before
    assert not any(e.from_bot for e in channel.transcript())


async def _run_housekeeping(harness: Harness) -> None:
    assert harness.app is not None
    await tidy_drafts(Context.from_job(Job(tidy_drafts), harness.app))


async def test_ineligible_checks_are_deleted_after_their_retention(harness: Harness) -> None:
    """INELIGIBLE_RETENTION_DAYS after the check, the record is gone; before, it stays."""
    user = harness.user(450000)
    await reach_nik(user)
    await give_identity(user, make_person(4501))
    await user.expect(NO_MATCH)
    started = harness.services.clock()
    days = harness.settings.ineligible_retention_days
    harness.services.clock = lambda: started + timedelta(days=days - 1)
    await _run_housekeeping(harness)
    [kept] = await applications_of(harness, user.id)
    assert kept.status == Status.INELIGIBLE
    harness.services.clock = lambda: started + timedelta(days=days, hours=1)
    await _run_housekeeping(harness)
    assert await applications_of(harness, user.id) == []


async def test_enrolled_worker_erasing_their_data_is_withdrawn_first_and_staff_are_told(
    harness: Harness,
) -> None:
    """/hapusdata by a worker already registered with BPJS: withdrawn from the programme (the
    audit says so), staff get a message, and no row of theirs remains."""
    services = harness.services
    worker = harness.user(460000)
    code = "BKS-EN0001"
    person = make_person(4601)
    nik_hash = hash_identifier(person.nik, services.secret)
    application_id = await add_application(
        services.database,
        services.secret,
        person,
        user_id=worker.id,
        code=code,
        status=Status.ENROLLED,
    )
    async with services.database.write() as session, session.begin():
        session.add(
            Notification(application_id=application_id, chat_id=worker.id, kind="enrolled")
        )
    await services.applications.record_attempt(
        user_id=worker.id,
        kind=AttemptKind.NIK,
        key_hash=nik_hash,
        since=utcnow() - ATTEMPT_WINDOW,
        limit=5,
    )
    await worker.send("/bahasa")
    await worker.expect(r"Pilih bahasa")
    await worker.press("Bahasa Indonesia")
    await worker.expect(r"Bahasa diganti")
    admin = harness.user(ADMIN)
    await worker.send("/hapusdata")
    await worker.expect(r"menarik persetujuan")
    await worker.press("🗑 Ya, hapus data saya")
    await worker.expect(r"sudah dihapus")
    await admin.expect(rf"{code} keluar dari program")
    await harness.user(REVIEWER).expect(rf"{code} keluar dari program")
    async with services.database.read() as session:
        trail = (await session.execute(sa.select(AuditEvent.action, AuditEvent.from_status))).all()
    assert await applications_of(harness, worker.id) == []
    assert ("withdraw", Status.ENROLLED) in [(a, f) for a, f in trail]
    assert "erase" in [a for a, _f in trail]
    async with services.database.read() as session:
        preferences = await session.execute(
            sa.select(UserPreference).where(UserPreference.telegram_user_id == worker.id)
        )
        notifications = await session.execute(
            sa.select(Notification).where(Notification.application_id == application_id)
        )
        assert preferences.all() == []
        assert notifications.all() == []
    keys = await _attempt_keys(harness, worker.id)
    assert len(keys) == 1
    assert nik_hash not in keys


async def test_audit_rows_of_refused_staff_actions_are_deleted_after_their_retention(
    harness: Harness,
) -> None:
    """DENIED_RETENTION_DAYS after a stranger tried a staff command, its audit row is gone;
    before, it stays, and the audit of decisions is never purged."""
    stranger = harness.user(470000)
    await stranger.send("/tinjau BKS-XXXX01")
    await stranger.expect(r".")
    async with harness.services.database.write() as session, session.begin():
        session.add(AuditEvent(actor_id=REVIEWER, action="approve", application_id=1))

    async def actions() -> list[str]:
        async with harness.services.database.read() as session:
            query = sa.select(AuditEvent.action).order_by(AuditEvent.id)
            return list((await session.execute(query)).scalars())

    assert await actions() == ["denied", "approve"]
    started = harness.services.clock()
    days = harness.settings.denied_retention_days
    harness.services.clock = lambda: started + timedelta(days=days - 1)
    await _run_housekeeping(harness)
    assert await actions() == ["denied", "approve"]
    harness.services.clock = lambda: started + timedelta(days=days, hours=1)
    await _run_housekeeping(harness)
    assert await actions() == ["approve"]


async def _audit_rows(harness: Harness) -> list[AuditEvent]:
    """Every audit row, oldest first."""
    async with harness.services.database.read() as session:
        query = sa.select(AuditEvent).order_by(AuditEvent.id)
        return list((await session.execute(query)).scalars())


def _personal_traces(rows: list[AuditEvent], user_id: int, secrets: list[str]) -> list[str]:
    """What of a worker an audit trail still holds: their Telegram id as an actor, any of
    `secrets` in a row, or an eligibility finding's payload."""
    found = [f"actor {row.id}" for row in rows if row.actor_id == user_id]
    for row in rows:
        text = " ".join(str(value) for value in row.model_dump().values())
        found += [f"{secret!r} in {row.id}" for secret in secrets if secret in text]
        if '"params"' in (row.reason or "") and row.action == "assess":
            found.append(f"findings in {row.id}")
    return found


async def test_erasure_leaves_the_chain_of_events_but_no_personal_data_in_the_audit(
    harness: Harness,
) -> None:
    """After /hapusdata the audit rows of the worker's applications are all still there, but
    none holds their birth dates, NIK, phone, a staff reason quoting them, or their Telegram
    id; the reviewer's id stays on the decision."""
    person = make_person(4901)
    wrong_birth_date = person.birth_date.replace(year=person.birth_date.year - 1)
    await seed(harness, person)
    worker = harness.user(490100)
    # A first check with a mistyped birth date is refused and audited with its findings.
    await reach_nik(worker)
    await worker.send(person.nik)
    await worker.expect(NAME_ASKED)
    await worker.send(person.name)
    await worker.expect(r"\(3/9\)")
    await worker.send(in_words(wrong_birth_date))
    await worker.expect(NO_MATCH)
    await reach_nik(worker)
    await give_identity(worker, person)
    code = await finish(worker, person)
    reason = f"NIK {person.nik} dipakai HP {person.phone} milik orang lain"
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tolak {code} {reason}")
    await reviewer.expect(r"ditolak")
    before = await _audit_rows(harness)
    secrets = [
        person.nik,
        person.phone,
        person.phone.removeprefix("+62"),
        reason,
        person.birth_date.isoformat(),
        wrong_birth_date.isoformat(),
    ]
    assert _personal_traces(before, worker.id, secrets)  # the test sees what it looks for
    await worker.send("/hapusdata")
    await worker.expect(r"menarik persetujuan")
    await worker.press("🗑 Ya, hapus data saya")
    await worker.expect(r"sudah dihapus")
    after = await _audit_rows(harness)
    assert [row.id for row in before] == [row.id for row in after][: len(before)]
    assert [(r.action, r.at, r.from_status, r.to_status) for r in before] == [
        (r.action, r.at, r.from_status, r.to_status) for r in after[: len(before)]
    ]
    assert _personal_traces(after, worker.id, secrets) == []
    assert ("reject", REVIEWER) in [(row.action, row.actor_id) for row in after]


async def test_retention_leaves_the_chain_of_events_but_no_personal_data_in_the_audit(
    harness: Harness,
) -> None:
    """An ineligible check deleted after its retention, and an abandoned draft, leave their
    audit rows (same count) without the findings (birth dates, desil) or the worker's id."""
    person = make_person(4902)
    await seed(harness, person, desil=9, tanggal_lahir=date(1980, 1, 2))
    refused, idle = harness.user(490200), harness.user(490201)
    await reach_nik(refused)
    await give_identity(refused, person)
    await refused.expect(NO_MATCH)
    await reach_nik(idle)
    before = await _audit_rows(harness)
    secrets = [person.birth_date.isoformat(), "1980-01-02", '"desil":9']
    assert _personal_traces(before, refused.id, secrets)
    assert _personal_traces(before, idle.id, [])
    started = harness.services.clock()
    days = harness.settings.ineligible_retention_days
    harness.services.clock = lambda: started + timedelta(days=days, hours=1)
    await _run_housekeeping(harness)
    assert await applications_of(harness, refused.id) == []
    assert await applications_of(harness, idle.id) == []
    after = await _audit_rows(harness)
    assert [(r.id, r.action, r.at) for r in before] == [(r.id, r.action, r.at) for r in after]
    assert _personal_traces(after, refused.id, secrets) == []
    assert _personal_traces(after, idle.id, []) == []
