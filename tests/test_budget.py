"""The budget in person-months: places from the months of cover, money committed and freed,
and approvals that stop when the money left no longer buys a new participant's months."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.settings import Settings, load_settings
from domain.budget import Budget, Ledger, Span, add_months, months_between
from domain.lifecycle import Decision, EntryPoint, Status
from domain.roles import Role, StaffMember
from storage.engine import Database
from storage.models import Application, AuditEvent
from storage.review import ReviewRepository
from storage.staff import StaffRepository
from testkit.factories import make_person
from testkit.fakes import add_applications, make_application
from testkit.harness import TEST_PII_SECRET
from usecases.decisions import decide

SECRET = TEST_PII_SECRET.encode()
PREMIUM = 16_800
BUDGET = 2_000_000_000
JANUARY, APRIL, JULY, DECEMBER = (date(2026, m, 1) for m in (1, 4, 7, 12))
REVIEWER = StaffMember(900_002, Role.REVIEWER)
ADMIN = StaffMember(900_001, Role.ADMIN)


def programme(*, quota: int = 20_000, start: date = JANUARY, budget: int = BUDGET) -> Budget:
    """Rp2 miliar at Rp16.800 a month, cover from `start` to December 2026."""
    return Budget(
        quota=quota, budget_idr=budget, monthly_premium_idr=PREMIUM, start=start, end=DECEMBER
    )


def test_two_miliar_from_january_buys_9920_places() -> None:
    """Twelve months at Rp16.800 is Rp201.600 a place: Rp2 miliar buys 9.920."""
    assert programme().places == 9_920


def test_two_miliar_from_april_buys_13227_places() -> None:
    """Nine months at Rp16.800 is Rp151.200 a place: Rp2 miliar buys 13.227."""
    assert programme(start=APRIL).places == 13_227


def test_the_headcount_still_caps_the_places() -> None:
    """Money for 13.227 but a quota of 10.000: 10.000 places."""
    assert programme(quota=10_000, start=APRIL).places == 10_000


def test_cover_starts_the_month_after_approval_and_never_before_the_first_month() -> None:
    """Approved in March: cover from April; approved last December: from January; BPJS's own
    start month wins when it is known."""
    budget = programme()
    assert budget.span(approved_on=date(2026, 3, 31)) == Span(APRIL, DECEMBER)
    assert budget.span(approved_on=date(2025, 12, 5)) == Span(JANUARY, DECEMBER)
    assert budget.span(approved_on=date(2026, 3, 31), coverage_start=date(2026, 6, 1)) == Span(
        date(2026, 6, 1), DECEMBER
    )
    assert budget.span(approved_on=date(2026, 12, 2)) is None


def test_a_place_freed_in_july_frees_only_the_months_left() -> None:
    """9.920 covered from January use all but Rp128.000; one withdrawn in July frees August
    to December (Rp84.000): two new participants from August fit, where one did before."""
    budget = programme(quota=10_000)
    full_year = Span(JANUARY, DECEMBER)
    before = Ledger(budget, placed=9_920, spans={full_year: 9_920})
    assert before.committed_idr == 9_920 * 201_600
    assert before.remaining_idr == 128_000
    today = date(2026, 7, 15)
    assert before.available(today) == 1  # August-December costs Rp84.000

    freed = budget.span(approved_on=date(2025, 12, 1), ended_on=date(2026, 7, 10))
    assert freed == Span(JANUARY, JULY)
    after = Ledger(budget, placed=9_919, spans={full_year: 9_919, freed: 1})
    assert after.committed_idr == 9_919 * 201_600 + 7 * PREMIUM
    assert after.remaining_idr == 128_000 + 5 * PREMIUM
    assert after.available(today) == 2
    assert after.quota_now(today) == 9_921


def test_invoiced_counts_the_months_of_cover_started_up_to_this_month() -> None:
    """Ten from January and five from April, seen in May: 10 x 5 + 5 x 2 months invoiced."""
    budget = programme()
    ledger = Ledger(
        budget, placed=15, spans={Span(JANUARY, DECEMBER): 10, Span(APRIL, DECEMBER): 5}
    )
    assert ledger.invoiced_idr(date(2026, 5, 20)) == (10 * 5 + 5 * 2) * PREMIUM
    assert ledger.invoiced_idr(date(2025, 12, 20)) == 0
    months = ledger.per_month()
    assert [row.people for row in months] == [10, 10, 10, 15, 15, 15, 15, 15, 15, 15, 15, 15]
    assert sum(row.idr for row in months) == ledger.committed_idr


def test_nothing_is_offered_once_the_months_of_cover_are_over() -> None:
    """Approved in December of the last month: no month left to buy, no place."""
    ledger = Ledger(programme(), placed=0, spans={})
    assert ledger.available(date(2026, 12, 3)) == 0


@given(
    st.integers(0, 500),
    st.integers(0, 50_000_000),
    st.integers(1, 60_000),
    st.integers(0, 11),
    st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=30),
    st.integers(0, 13),
)
def test_what_is_offered_never_overspends_the_budget_or_the_headcount(
    quota: int,
    money: int,
    premium: int,
    start: int,
    spans: list[tuple[int, int]],
    today: int,
) -> None:
    """Taking every place offered keeps committed money within the budget (once it was) and
    places held within the quota."""
    budget = Budget(
        quota=quota,
        budget_idr=money,
        monthly_premium_idr=premium,
        start=add_months(JANUARY, start),
        end=DECEMBER,
    )
    held = {}
    for first, length in spans:
        span = budget.span(approved_on=add_months(date(2025, 12, 1), first))
        if span is not None and length:
            held[span] = held.get(span, 0) + 1
    ledger = Ledger(budget, placed=sum(held.values()), spans=held)
    day = add_months(date(2025, 12, 15), today)
    offered = ledger.available(day)
    cover = budget.new_cover_start(day)
    if offered:
        new_span = Span(cover, DECEMBER)
        after = Ledger(budget, ledger.placed + offered, {**held, new_span: offered})
        assert after.committed_idr <= max(money, ledger.committed_idr)
        assert after.placed <= quota
        assert months_between(cover, DECEMBER) > 0


def _approved(seed: int, *, decided_at: datetime, status: str = Status.APPROVED) -> Application:
    return make_application(
        make_person(seed),
        secret=SECRET,
        user_id=700_000 + seed,
        code=f"BKS-M{seed:05d}",
        status=status,
        decided_at=decided_at,
    )


async def test_ledger_reads_held_places_and_a_place_freed_in_july(database: Database) -> None:
    """Two held from January, one from May (approved in April), one withdrawn in July: the
    database's ledger pays 12 + 12 + 8 + 7 months."""
    held = [
        _approved(1, decided_at=datetime(2025, 12, 10, 3, tzinfo=UTC)),
        _approved(2, decided_at=datetime(2025, 12, 31, 18, tzinfo=UTC), status=Status.ENROLLED),
        _approved(3, decided_at=datetime(2026, 4, 2, 3, tzinfo=UTC)),
        _approved(4, decided_at=datetime(2026, 7, 9, 3, tzinfo=UTC), status=Status.WITHDRAWN),
    ]
    await add_applications(database, *held)
    withdrawn_id = held[3].id
    async with database.write() as session, session.begin():
        session.add_all(
            [
                AuditEvent(
                    at=datetime(2025, 12, 10, 3, tzinfo=UTC),
                    action="approve",
                    application_id=withdrawn_id,
                    from_status=Status.PENDING,
                    to_status=Status.APPROVED,
                ),
                AuditEvent(
                    at=datetime(2026, 7, 9, 3, tzinfo=UTC),
                    action="withdraw",
                    application_id=withdrawn_id,
                    from_status=Status.APPROVED,
                    to_status=Status.WITHDRAWN,
                ),
            ]
        )
    read = await ReviewRepository(database).ledger(budget=programme(quota=10))
    ledger = read.ledger
    assert ledger.placed == 3
    # 31 Dec 18:00 UTC is 1 January WIB: cover from February.
    assert dict(ledger.spans) == {
        Span(JANUARY, DECEMBER): 1,
        Span(date(2026, 2, 1), DECEMBER): 1,
        Span(date(2026, 5, 1), DECEMBER): 1,
        Span(JANUARY, JULY): 1,
    }
    assert ledger.committed_idr == (12 + 11 + 8 + 7) * PREMIUM


async def test_approvals_wait_when_the_money_runs_out_below_the_headcount(
    database: Database,
) -> None:
    """Money for three full years and a quota of ten: the fourth and fifth approvals wait on
    the list, and the reviewer's quota is three."""
    now = datetime.now(UTC)
    settings = load_settings(
        env_file=None,
        program_quota="10",
        program_budget_idr=str(3 * 12 * PREMIUM + PREMIUM),
        program_premium_idr=str(PREMIUM),
        # Wholly ahead of today: each approval buys twelve months.
        program_year=str(now.year + 1),
    )
    applications = [
        make_application(make_person(seed), secret=SECRET, user_id=710_000 + seed, code=f"B{seed}")
        for seed in range(10, 15)
    ]
    await add_applications(database, *applications)
    review, staff = ReviewRepository(database), StaffRepository(database)
    results = []
    for application in applications:
        assert application.id is not None
        decided = await decide(
            review,
            staff,
            settings,
            application_id=application.id,
            decision=Decision.APPROVE,
            actor=REVIEWER,
            entry=EntryPoint.COMMAND,
            now=now,
        )
        assert decided.outcome.application is not None
        results.append(decided.outcome.application.status)
        last_quota = decided.quota
    assert results == [Status.APPROVED] * 3 + [Status.WAITLISTED] * 2
    assert last_quota == 3
    assert await review.places_taken() == 3 < settings.program_quota


@pytest.mark.parametrize("yearly", [False, True])
def test_the_settings_budget_reads_the_premium_monthly(yearly: bool) -> None:
    """PROGRAM_PREMIUM_IDR 16800, or the old 201600 a year: the same Rp16.800 a month."""
    premium = "201600" if yearly else "16800"
    settings = load_settings(
        env_file=None, program_premium_idr=premium, program_quota="20000", program_year="2026"
    )
    assert settings.budget == programme(quota=20_000)


async def test_a_freed_place_is_offered_only_while_the_money_buys_one(database: Database) -> None:
    """Three placed and one waiting; the budget is then cut to one place's money: withdrawing
    one frees a headcount but no money for a new participant, so nobody is offered it."""
    now = datetime.now(UTC)

    def settings_for(places: int) -> Settings:
        return load_settings(
            env_file=None,
            program_quota="10",
            program_budget_idr=str(places * 12 * PREMIUM),
            program_premium_idr=str(PREMIUM),
            program_year=str(now.year + 1),
        )

    applications = [
        make_application(make_person(seed), secret=SECRET, user_id=720_000 + seed, code=f"C{seed}")
        for seed in range(20, 24)
    ]
    await add_applications(database, *applications)
    review, staff = ReviewRepository(database), StaffRepository(database)
    ids = [application.id for application in applications if application.id is not None]
    for application_id in ids:
        await decide(
            review,
            staff,
            settings_for(3),
            application_id=application_id,
            decision=Decision.APPROVE,
            actor=REVIEWER,
            entry=EntryPoint.COMMAND,
            now=now,
        )
    cut = await decide(
        review,
        staff,
        settings_for(1),
        application_id=ids[0],
        decision=Decision.WITHDRAW,
        actor=ADMIN,
        entry=EntryPoint.COMMAND,
        reason="double entry",
        now=now,
    )
    assert cut.outcome.freed_place
    assert cut.offer is None
    freed = await decide(
        review,
        staff,
        settings_for(3),
        application_id=ids[1],
        decision=Decision.WITHDRAW,
        actor=ADMIN,
        entry=EntryPoint.COMMAND,
        reason="double entry",
        now=now,
    )
    assert freed.offer is not None
    assert freed.offer.code == "C23"
