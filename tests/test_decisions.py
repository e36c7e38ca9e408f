"""The decision use case on storage: the lifecycle's rules for who, from where, and what then."""

from __future__ import annotations

from datetime import date

import pytest

from config.settings import load_settings
from domain.lifecycle import Decision, EntryPoint, Status
from domain.roles import Role, StaffMember
from storage.engine import Database
from storage.review import Result, ReviewRepository
from storage.staff import StaffRepository
from testkit.factories import make_person
from testkit.fakes import add_application
from usecases.decisions import NotPermitted, decide

SECRET = b"test-secret-not-for-production-0123456789"
ADMIN = StaffMember(900001, Role.ADMIN)
REVIEWER = StaffMember(900002, Role.REVIEWER)


async def test_a_reviewer_cannot_withdraw_and_nothing_changes(database: Database) -> None:
    """Withdrawal is for admins: the use case refuses a reviewer before touching storage."""
    application_id = await add_application(
        database, SECRET, make_person(1), user_id=10, code="BKS-U00001", status=Status.APPROVED
    )
    review, staff = ReviewRepository(database), StaffRepository(database)
    with pytest.raises(NotPermitted):
        await decide(
            review,
            staff,
            load_settings(env_file=None),
            application_id=application_id,
            decision=Decision.WITHDRAW,
            actor=REVIEWER,
            entry=EntryPoint.COMMAND,
            reason="keluar",
        )
    assert await review.places_taken() == 1


async def test_withdrawal_offers_the_freed_place_to_the_first_waiting(database: Database) -> None:
    """An admin's withdrawal frees a place; the first on the waiting list is offered to staff."""
    approved = await add_application(
        database, SECRET, make_person(2), user_id=20, code="BKS-U00002", status=Status.APPROVED
    )
    await add_application(
        database, SECRET, make_person(3), user_id=30, code="BKS-U00003", status=Status.WAITLISTED
    )
    await StaffRepository(database).put(
        user_id=777, role=Role.REVIEWER, kecamatan_scope=None, actor_id=ADMIN.user_id
    )
    decided = await decide(
        ReviewRepository(database),
        StaffRepository(database),
        # A programme year ahead of the wall clock: the freed place's money buys new months.
        load_settings(env_file=None, program_year=str(date.today().year + 1)),
        application_id=approved,
        decision=Decision.WITHDRAW,
        actor=ADMIN,
        entry=EntryPoint.COMMAND,
        reason="keluar",
    )
    assert decided.outcome.result is Result.DONE
    assert decided.worker_notified
    assert decided.offer is not None
    assert decided.offer.code == "BKS-U00003"
    assert 777 in decided.offer.recipients


async def test_a_card_never_withdraws(database: Database) -> None:
    """Even an admin's withdrawal asked for from a card applies from nowhere."""
    approved = await add_application(
        database, SECRET, make_person(4), user_id=40, code="BKS-U00004", status=Status.APPROVED
    )
    decided = await decide(
        ReviewRepository(database),
        StaffRepository(database),
        load_settings(env_file=None),
        application_id=approved,
        decision=Decision.WITHDRAW,
        actor=ADMIN,
        entry=EntryPoint.CARD,
        reason="keluar",
    )
    assert decided.outcome.result is Result.ALREADY_DECIDED
    assert decided.offer is None
