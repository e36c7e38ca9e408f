"""What the review card tells a reviewer: the NIK's past, risk flags that mean something."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from storage.models import Status
from testkit.factories import make_person
from testkit.fakes import add_applications, make_application
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
