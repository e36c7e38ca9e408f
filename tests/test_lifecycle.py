"""The application's lifecycle as pure rules: transitions, roles, where decisions lead, quota."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.lifecycle import (
    CARD_FROM,
    COMMAND_FROM,
    DECIDABLE_ON_CARD,
    EDITABLE_STATUSES,
    LAPSES_FROM,
    LIVE_STATUSES,
    OPEN_STATUSES,
    PLACE_HOLDING,
    Decision,
    EntryPoint,
    Status,
    allowed_from,
    effective_quota,
    frees_place,
    may_decide,
    status_after,
)
from domain.roles import Role, StaffMember

ADMIN = StaffMember(1, Role.ADMIN)
REVIEWER = StaffMember(2, Role.REVIEWER)
SCOPED_REVIEWER = StaffMember(3, Role.REVIEWER, ("3275010",))


def test_withdraw_is_only_for_admins() -> None:
    """Withdrawing frees a place: admins may, reviewers (scoped or not) may not."""
    assert may_decide(ADMIN, Decision.WITHDRAW)
    assert not may_decide(REVIEWER, Decision.WITHDRAW)
    assert not may_decide(SCOPED_REVIEWER, Decision.WITHDRAW)


@pytest.mark.parametrize("decision", [Decision.APPROVE, Decision.REJECT, Decision.FIX])
def test_reviewers_and_admins_approve_reject_and_ask_for_fixes(decision: Decision) -> None:
    """The everyday decisions are open to every staff role."""
    assert may_decide(REVIEWER, decision)
    assert may_decide(SCOPED_REVIEWER, decision)
    assert may_decide(ADMIN, decision)


def test_approve_when_full_waitlists() -> None:
    """An approval with every place taken puts the application on the waiting list."""
    assert status_after(Decision.APPROVE, places_taken=7, quota=7) is Status.WAITLISTED
    assert status_after(Decision.APPROVE, places_taken=8, quota=7) is Status.WAITLISTED


def test_approve_with_a_place_free_approves() -> None:
    """The last free place is taken by the approval."""
    assert status_after(Decision.APPROVE, places_taken=6, quota=7) is Status.APPROVED


@pytest.mark.parametrize(
    ("decision", "status"),
    [
        (Decision.REJECT, Status.REJECTED),
        (Decision.FIX, Status.NEEDS_FIX),
        (Decision.WITHDRAW, Status.WITHDRAWN),
    ],
)
def test_other_decisions_ignore_the_quota(decision: Decision, status: Status) -> None:
    """Only approvals count places."""
    assert status_after(decision, places_taken=0, quota=10) is status
    assert status_after(decision, places_taken=10, quota=10) is status


def test_withdrawal_is_a_command_never_a_card_button() -> None:
    """No card button withdraws; the /tarik command does, from approved or enrolled."""
    assert Decision.WITHDRAW not in CARD_FROM
    assert allowed_from(Decision.WITHDRAW, EntryPoint.CARD) == ()
    assert allowed_from(Decision.WITHDRAW, EntryPoint.COMMAND) == PLACE_HOLDING


def test_commands_reach_everything_cards_reach() -> None:
    """A typed command can do whatever a button can, from the same statuses."""
    for decision, statuses in CARD_FROM.items():
        assert COMMAND_FROM[decision] == statuses


def test_no_decision_applies_to_a_draft_or_a_closed_application() -> None:
    """Drafts belong to the worker; rejected, withdrawn, cancelled and ineligible are final."""
    closed = {
        Status.DRAFT,
        Status.REJECTED,
        Status.WITHDRAWN,
        Status.CANCELLED,
        Status.INELIGIBLE,
        Status.LAPSED,
    }
    for entry in EntryPoint:
        for decision in Decision:
            assert not closed & set(allowed_from(decision, entry))


def test_the_status_seen_narrows_where_a_decision_may_land() -> None:
    """A rejection prepared on a pending card applies only while it is still pending."""
    assert allowed_from(Decision.REJECT, EntryPoint.CARD, status_seen=Status.PENDING) == (
        Status.PENDING,
    )
    # Seen in a status the decision never applies from: it applies from nowhere.
    assert allowed_from(Decision.REJECT, EntryPoint.CARD, status_seen=Status.APPROVED) == ()


def test_card_buttons_show_only_where_some_button_acts() -> None:
    """Cards of pending, waitlisted and needs-fix applications carry buttons; others do not."""
    assert {Status.PENDING, Status.WAITLISTED, Status.NEEDS_FIX} == DECIDABLE_ON_CARD


def test_status_sets_nest() -> None:
    """Places are held by live applications; editable and live ones are open."""
    assert set(PLACE_HOLDING) <= set(LIVE_STATUSES) <= set(OPEN_STATUSES)
    assert set(EDITABLE_STATUSES) <= set(OPEN_STATUSES)


@given(st.sampled_from(Status), st.sampled_from(Status))
def test_a_place_is_freed_only_by_leaving_the_place_holders(before: Status, after: Status) -> None:
    """Freed exactly when an application moves from holding a place to not holding one."""
    assert frees_place(before, after) == (before in PLACE_HOLDING and after not in PLACE_HOLDING)


def test_lapsed_cover_frees_the_place_and_the_nik() -> None:
    """A lapse (three months unpaid) leaves the place holders and the live statuses: the
    place goes to the waiting list and the worker may register again."""
    assert all(frees_place(before, Status.LAPSED) for before in LAPSES_FROM)
    assert Status.LAPSED not in LIVE_STATUSES


def test_withdrawing_an_approval_frees_its_place() -> None:
    """The transition /tarik makes hands the place to the waiting list."""
    after = status_after(Decision.WITHDRAW, places_taken=1, quota=1)
    assert all(frees_place(before, after) for before in COMMAND_FROM[Decision.WITHDRAW])


def test_the_default_budget_covers_9920_people() -> None:
    """Rp2 miliar at Rp201.600 a year covers 9.920 people, below the quota of 10.000."""
    assert effective_quota(10_000, 2_000_000_000, 201_600) == 9_920


def test_a_generous_budget_is_capped_by_the_quota() -> None:
    """The headcount quota still applies when money is plentiful."""
    assert effective_quota(10_000, 5_000_000_000, 201_600) == 10_000


@pytest.mark.parametrize(
    ("quota", "budget", "premium"), [(10, 100, 0), (-1, 100, 10), (10, -1, 10)]
)
def test_effective_quota_refuses_nonsense(quota: int, budget: int, premium: int) -> None:
    """A zero premium or negative amounts are configuration errors."""
    with pytest.raises(ValueError, match="premium"):
        effective_quota(quota, budget, premium)


@given(st.integers(0, 10**6), st.integers(0, 10**12), st.integers(1, 10**7))
def test_places_never_exceed_the_quota_or_the_budget(
    quota: int, budget: int, premium: int
) -> None:
    """The budget pays a premium for every place, and there are never more than the quota."""
    places = effective_quota(quota, budget, premium)
    assert 0 <= places <= quota
    assert places * premium <= budget
