"""Operators' pure rules: their role opens nothing else, their area, and the fraud figures."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from domain.operators import ChannelCount, DayCount, format_channels, is_night, operator_figures
from domain.roles import Role, StaffMember, covers, resolve_role

OPERATOR = StaffMember(7, Role.OPERATOR, ("327501", "3275021001"))


@pytest.mark.parametrize("needed", [Role.REVIEWER, Role.ADMIN])
def test_operator_role_opens_no_staff_command(needed: Role) -> None:
    """An operator may not review, decide or administer."""
    assert not OPERATOR.can(needed)


def test_only_operators_may_register_for_workers() -> None:
    """/daftarkan is for operators: neither admins nor reviewers hold the role."""
    assert OPERATOR.can(Role.OPERATOR)
    assert not StaffMember(1, Role.ADMIN).can(Role.OPERATOR)
    assert not StaffMember(2, Role.REVIEWER).can(Role.OPERATOR)


def test_stored_operator_role_resolves_with_its_area() -> None:
    """A staff row with role operator gives an operator scoped to its codes."""
    member = resolve_role(
        7,
        admin_ids=frozenset(),
        reviewer_ids=frozenset(),
        stored_role="operator",
        stored_scope="327501,3275021001",
    )
    assert member == OPERATOR


@pytest.mark.parametrize(
    ("kecamatan", "kelurahan", "inside"),
    [
        ("327501", None, True),  # a whole kecamatan of the area
        ("327502", None, True),  # holds one kelurahan of the area
        ("327503", None, False),
        (None, "3275011005", True),  # a kelurahan of a whole kecamatan
        (None, "3275021001", True),  # the one kelurahan given
        (None, "3275021002", False),  # its neighbour is not
    ],
)
def test_operator_area_holds_kecamatan_and_kelurahan(
    kecamatan: str | None, kelurahan: str | None, inside: bool
) -> None:
    """An area of kecamatan and kelurahan codes: what is inside it."""
    assert inside is covers(OPERATOR.kecamatan, kecamatan_code=kecamatan, kelurahan_code=kelurahan)


@pytest.mark.parametrize(
    ("utc_hour", "night"), [(14, False), (15, True), (21, True), (22, False), (3, False)]
)
def test_night_is_22_to_05_wib(utc_hour: int, night: bool) -> None:
    """15:00 UTC is 22:00 WIB (night) and 22:00 UTC is 05:00 WIB (morning)."""
    assert night is is_night(datetime(2026, 11, 2, utc_hour, 0, tzinfo=UTC))


def test_figures_sum_days_and_list_operators_without_registrations() -> None:
    """Today, the busiest day and the totals per operator; a new operator shows zeros."""
    now = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)  # 10:00 WIB on the 3rd
    days = [
        DayCount(7, date(2026, 11, 2), 5, 2, 1),
        DayCount(7, date(2026, 11, 3), 3, 0, 0),
    ]
    seven, eight = operator_figures([8], days, {7: 4}, now)
    assert (seven.today, seven.busiest_day, seven.total, seven.refused, seven.night) == (
        3,
        5,
        8,
        2,
        1,
    )
    assert (seven.shared_phones, seven.refused_share) == (4, 0.25)
    assert (eight.operator_id, eight.total, eight.today) == (8, 0, 0)


def test_channel_section_is_empty_without_channels_and_caps_long_lists() -> None:
    """No community or operator: nothing is added; long lists end with one summed line."""
    assert format_channels([], [], str) == ""
    many = [ChannelCount(f"K{n:02d}", 1, 0) for n in range(20)]
    text = format_channels(many, [], str)
    assert text.count("\n") == 16
    assert text.endswith("… +5: 5 / 0")
