"""What the review card tells a reviewer: the NIK's past, risk flags that mean something."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from domain.lifecycle import Status
from storage.models import Application
from testkit.factories import make_person
from testkit.fakes import add_application, add_applications, make_application
from testkit.harness import Harness
from tests.test_review import REVIEWER, register


async def test_card_shows_earlier_rejected_and_withdrawn_applications_of_the_nik(
    harness: Harness,
) -> None:
    """A NIK rejected and withdrawn before applies again: the card lists both, with the date
    (WIB) and the reason, and not the other NIKs' applications."""
    services = harness.services
    person = make_person(301)
    ended = datetime(2026, 11, 2, 18, 30, tzinfo=UTC)  # 3 November, 01:30 WIB
    await add_applications(
        services.database,
        make_application(
            person,
            secret=services.secret,
            user_id=210301,
            code="BKS-OLD001",
            status=Status.REJECTED,
            decided_at=ended,
            decision_reason="Bukan pekerja informal",
        ),
        make_application(
            person,
            secret=services.secret,
            user_id=210301,
            code="BKS-OLD002",
            status=Status.WITHDRAWN,
            decided_at=ended,
            decision_reason="Pindah ke luar kota",
        ),
        make_application(
            make_person(302),
            secret=services.secret,
            user_id=310003,
            code="BKS-OTHER1",
            status=Status.REJECTED,
            decision_reason="Orang lain",
        ),
    )
    _worker, code = await register(harness, 210301, 301)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tinjau {code}")
    card = (await reviewer.expect(re.escape(code))).text
    assert "Pendaftaran sebelumnya dengan NIK ini" in card
    assert "BKS-OLD001 · ditolak 03-11-2026 · Bukan pekerja informal" in card
    assert "BKS-OLD002 · ditarik 03-11-2026 · Pindah ke luar kota" in card
    assert "BKS-OTHER1" not in card


async def test_card_of_a_first_application_has_no_nik_history(harness: Harness) -> None:
    """A NIK applying for the first time shows no history line."""
    _worker, code = await register(harness, 210302, 303)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tinjau {code}")
    card = (await reviewer.expect(re.escape(code))).text
    assert "sebelumnya dengan NIK" not in card


async def test_own_earlier_attempts_are_not_counted_as_a_shared_phone(harness: Harness) -> None:
    """The worker's own earlier application (same NIK, same phone) is no risk; another person
    giving the same phone number is, counted once per person."""
    services = harness.services
    person = make_person(311)
    stranger = make_person(312)
    await add_applications(
        services.database,
        make_application(
            person,
            secret=services.secret,
            user_id=210311,
            code="BKS-OWN001",
            status=Status.REJECTED,
        ),
    )
    _worker, code = await register(harness, 210311, 311)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/tinjau {code}")
    card = (await reviewer.expect(re.escape(code))).text
    assert "nomor HP sama" not in card
    for index, status in enumerate((Status.REJECTED, Status.PENDING)):
        await add_applications(
            services.database,
            make_application(
                stranger,
                secret=services.secret,
                user_id=210312,
                code=f"BKS-STR00{index}",
                status=status,
                phone=person.phone,
            ),
        )
    await reviewer.send(f"/tinjau {code}")
    card = (await reviewer.expect(re.escape(code))).text
    assert "nomor HP sama dengan 1 orang lain (NIK lain)" in card


@pytest.mark.parametrize(
    ("score", "shown", "hidden"),
    [
        (0.46, "nama berbeda dari DTSEN: kemiripan 46%, minimal 85%", "sedikit berbeda"),
        (0.9, "nama sedikit berbeda dengan DTSEN", "kemiripan"),
        (1.0, None, "nama"),
    ],
)
async def test_name_hint_on_the_card_follows_the_match_threshold(
    harness: Harness, score: float, shown: str | None, hidden: str
) -> None:
    """ "Slightly different" only between the threshold and a full match; below it the card
    states the percentages; a full match says nothing."""
    services = harness.services
    await add_application(
        services.database,
        services.secret,
        make_person(320),
        user_id=210320,
        code="BKS-NAME01",
    )
    async with services.database.write() as session, session.begin():
        await session.execute(
            sa.update(Application).where(Application.code == "BKS-NAME01").values(name_score=score)
        )
    reviewer = harness.user(REVIEWER)
    await reviewer.send("/tinjau BKS-NAME01")
    card = (await reviewer.expect(r"BKS-NAME01")).text
    flags = card.split("Tanda risiko", 1)[1] if "Tanda risiko" in card else ""
    if shown is not None:
        assert shown in flags
    assert hidden not in flags


async def test_queue_names_a_fix_from_staffs_point_of_view(harness: Harness) -> None:
    """/antrian and the card say the fix is awaited from the worker, not "from you"."""
    _worker, code = await register(harness, 210330, 330)
    reviewer = harness.user(REVIEWER)
    await reviewer.send(f"/perbaiki {code} alamat")
    await reviewer.expect(r"dikembalikan")
    await reviewer.send("/antrian")
    queue = (await reviewer.expect(r"Pendaftaran")).text
    assert "menunggu perbaikan dari pekerja: 1" in queue
    assert "dari Anda" not in queue
    await reviewer.send(f"/tinjau {code}")
    card = (await reviewer.expect(re.escape(code))).text
    assert "menunggu perbaikan dari pekerja" in card
