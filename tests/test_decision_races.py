"""Conflicting status transitions landing at the same moment: exactly one of them applies.

Each pair runs its two calls with asyncio.gather on a fresh application, a hundred times on
each backend. On PostgreSQL nothing but the transitions' own compare-and-set orders them (only
approvals share a lock, for the quota); on SQLite the write lock does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from domain.lifecycle import CARD_FROM, COMMAND_FROM, Decision, Status
from storage.applications import ApplicationRepository, SubmitResult
from storage.drafts import Outcome
from storage.engine import Database
from storage.models import Application, AuditEvent, Notification
from storage.retention import erase_user
from storage.review import DecisionOutcome, Result, ReviewRepository
from testkit.factories import make_person
from testkit.fakes import add_applications, make_application

PAIRS = 100
SECRET = b"test-secret-not-for-production-0123456789"
REVIEWER, OTHER_REVIEWER = 900002, 900003
QUOTA = 10_000  # approvals here are about races between decisions, not the quota
WON = (Result.DONE, Result.WAITLISTED)


@dataclass(frozen=True)
class Pair:
    """One conflicting pair: what the application starts as, and the two transitions."""

    start: str
    first: Callable[[int], Awaitable[Any]]
    second: Callable[[int], Awaitable[Any]]


async def fresh_applications(database: Database, status: str, offset: int) -> list[int]:
    """PAIRS applications of their own workers in `status`; fixes wait at the address step."""
    fields: dict[str, Any] = (
        {"step": "address", "fix_field": "address", "return_to_summary": True}
        if status == Status.NEEDS_FIX
        else {}
    )
    applications = [
        make_application(
            make_person(offset + index),
            secret=SECRET,
            user_id=offset + index,
            code=f"BKS-R{offset + index:05d}",
            status=status,
            **fields,
        )
        for index in range(PAIRS)
    ]
    await add_applications(database, *applications)
    return [int(application.id or 0) for application in applications]


def decide(
    review: ReviewRepository,
    decision: Decision,
    actor: int,
    allowed: tuple[str, ...],
) -> Callable[[int], Awaitable[DecisionOutcome]]:
    """A staff decision on one application, as the handler asks for it."""

    async def run(application_id: int) -> DecisionOutcome:
        return await review.decide(
            application_id=application_id,
            decision=decision,
            actor_id=actor,
            allowed_from=allowed,
            effective_quota=QUOTA,
            reason="address" if decision is Decision.FIX else "data ganda",
            fix_field="address" if decision is Decision.FIX else None,
        )

    return run


def resubmit(database: Database) -> Callable[[int], Awaitable[SubmitResult]]:
    """The worker sends their corrected application back to the queue."""
    repository = ApplicationRepository(database)

    async def run(application_id: int) -> SubmitResult:
        async with database.read() as session:
            application = await session.get(Application, application_id)
        assert application is not None
        return await repository.submit(
            application_id=application_id,
            user_id=application.telegram_user_id,
            from_step="address",
            prefix="BKS",
            update_id=None,
        )

    return run


def won(result: object) -> bool:
    """Whether one call of a pair applied its transition."""
    if isinstance(result, DecisionOutcome):
        return result.result in WON
    assert isinstance(result, SubmitResult)
    return result.outcome is Outcome.DONE


async def trail_and_notes(
    database: Database, application_id: int
) -> tuple[list[AuditEvent], list[Notification]]:
    """The state-changing audit events and the queued notifications of one application."""
    async with database.read() as session:
        events = (
            await session.execute(
                sa.select(AuditEvent)
                .where(AuditEvent.application_id == application_id)
                .where(AuditEvent.to_status.is_not(None))  # type: ignore[union-attr]
                .order_by(AuditEvent.id)  # type: ignore[arg-type]
            )
        ).scalars()
        notes = (
            await session.execute(
                sa.select(Notification).where(Notification.application_id == application_id)
            )
        ).scalars()
        return list(events), list(notes)


def pairs(database: Database) -> dict[str, Pair]:
    review = ReviewRepository(database)
    approve = decide(review, Decision.APPROVE, REVIEWER, CARD_FROM[Decision.APPROVE])
    return {
        "approve/reject": Pair(
            Status.PENDING,
            approve,
            decide(review, Decision.REJECT, OTHER_REVIEWER, CARD_FROM[Decision.REJECT]),
        ),
        "approve/fix": Pair(
            Status.PENDING,
            approve,
            decide(review, Decision.FIX, OTHER_REVIEWER, CARD_FROM[Decision.FIX]),
        ),
        "withdraw/withdraw": Pair(
            Status.APPROVED,
            decide(review, Decision.WITHDRAW, REVIEWER, COMMAND_FROM[Decision.WITHDRAW]),
            decide(review, Decision.WITHDRAW, OTHER_REVIEWER, COMMAND_FROM[Decision.WITHDRAW]),
        ),
        # The reviewer's card showed the application waiting for the worker's fix.
        "resubmit/reject": Pair(
            Status.NEEDS_FIX,
            resubmit(database),
            decide(review, Decision.REJECT, OTHER_REVIEWER, (Status.NEEDS_FIX,)),
        ),
    }


@pytest.mark.parametrize(
    "name", ["approve/reject", "approve/fix", "withdraw/withdraw", "resubmit/reject"]
)
async def test_two_conflicting_transitions_at_once_apply_exactly_one(
    database: Database, name: str
) -> None:
    """Of two transitions from the same status landing together, exactly one applies: one
    audit event from that status, one notification (none for the worker's own resubmission),
    and the loser hears the application changed meanwhile."""
    pair = pairs(database)[name]
    ids = await fresh_applications(database, pair.start, 600_000)
    for index, application_id in enumerate(ids):
        # Both orders of arrival, alternately.
        calls = (pair.first, pair.second) if index % 2 == 0 else (pair.second, pair.first)
        results = await asyncio.gather(*(call(application_id) for call in calls))
        if index % 2:
            results.reverse()
        assert [won(result) for result in results].count(True) == 1, (name, index, results)
        loser = next(result for result in results if not won(result))
        if isinstance(loser, DecisionOutcome):
            # The reviewer hears what the application is now (the winner's doing).
            assert loser.result is Result.ALREADY_DECIDED
            assert loser.application is not None
            async with database.read() as session:
                stored = await session.get(Application, application_id)
            assert stored is not None
            assert loser.application.status == stored.status != pair.start
        else:
            assert loser.outcome is Outcome.STALE
        events, notes = await trail_and_notes(database, application_id)
        moves = [(event.action, event.from_status, event.to_status) for event in events]
        assert len(moves) == 1, (name, index, moves)
        assert moves[0][1] == pair.start
        winner = next(result for result in results if won(result))
        expected_notes = 0 if isinstance(winner, SubmitResult) else 1
        assert [note.kind for note in notes] == [moves[0][2]] * expected_notes, (name, index)


async def test_worker_withdrawing_while_staff_approve_is_never_a_silent_loss(
    database: Database,
) -> None:
    """The worker erases their data (withdrawing consent) while a reviewer approves: either
    the approval finds nothing, or it stands until the erasure withdraws it and reports the
    freed place to staff; the trail says so, and nothing of the application is left."""
    review = ReviewRepository(database)
    approve = decide(review, Decision.APPROVE, REVIEWER, CARD_FROM[Decision.APPROVE])
    ids = await fresh_applications(database, Status.PENDING, 700_000)
    for index, application_id in enumerate(ids):
        user_id = 700_000 + index
        withdraw = erase_user(database, user_id=user_id)
        if index % 2 == 0:
            erasure, outcome = await asyncio.gather(withdraw, approve(application_id))
        else:
            outcome, erasure = await asyncio.gather(approve(application_id), withdraw)
        events, notes = await trail_and_notes(database, application_id)
        moves = [(event.action, event.from_status, event.to_status) for event in events]
        async with database.read() as session:
            erased_from = (
                await session.execute(
                    sa.select(AuditEvent.from_status).where(
                        AuditEvent.application_id == application_id, AuditEvent.action == "erase"
                    )
                )
            ).scalar_one()
            left = await session.get(Application, application_id)
        assert left is None
        assert notes == []
        if outcome.result is Result.DONE:
            assert erasure.withdrawn_codes == (f"BKS-R{user_id:05d}",), index
            assert moves == [
                ("approve", Status.PENDING, Status.APPROVED),
                ("withdraw", Status.APPROVED, Status.WITHDRAWN),
            ], index
            assert erased_from == Status.WITHDRAWN
        else:
            assert outcome.result is Result.NOT_FOUND, (index, outcome)
            assert erasure.withdrawn_codes == ()
            assert moves == []
            assert erased_from == Status.PENDING


async def test_decision_that_lost_to_a_fix_being_sent_stays_lost_when_redelivered(
    database: Database,
) -> None:
    """A rejection whose card showed a fix in progress, landing while the worker's resubmission
    holds the row, loses: nothing is written, the reviewer hears it is pending now, and the
    same update delivered again after a crash does not reject it after all."""
    if database.dialect != "postgresql":
        pytest.skip("SQLite's write lock runs the two transactions one after the other")
    [application_id] = (await fresh_applications(database, Status.NEEDS_FIX, 800_000))[:1]
    review = ReviewRepository(database)

    async def reject() -> DecisionOutcome:
        return await review.decide(
            application_id=application_id,
            decision=Decision.REJECT,
            actor_id=REVIEWER,
            allowed_from=CARD_FROM[Decision.REJECT],
            effective_quota=QUOTA,
            reason="data ganda",
            update_id=4242,
        )

    async with database.engine.connect() as worker:
        # The worker's resubmission, caught between its UPDATE and its COMMIT.
        await worker.execute(
            sa.update(Application)
            .where(Application.id == application_id)  # type: ignore[arg-type]
            .values(status=Status.PENDING, step=None)
        )
        decision = asyncio.create_task(reject())
        async with database.engine.connect() as watcher:
            for _ in range(10_000):
                waiting = await watcher.scalar(
                    sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
                )
                if waiting:
                    break
                await asyncio.sleep(0.001)
            assert waiting, "the decision never waited for the worker's row"
        await worker.commit()
    outcome = await decision
    assert outcome.result is Result.ALREADY_DECIDED
    assert outcome.application is not None
    assert outcome.application.status == Status.PENDING
    events, notes = await trail_and_notes(database, application_id)
    assert (events, notes) == ([], [])
    assert (await reject()).result is Result.ALREADY_DECIDED
    async with database.read() as session:
        stored = await session.get(Application, application_id)
    assert stored is not None
    assert stored.status == Status.PENDING
