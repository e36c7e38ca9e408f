"""The programme's money in person-months: what a place costs from the month its cover starts,
what is committed, invoiced and left, and how many places the money still buys.

Pure: `storage/budget.py` reads the cover spans from the database into a `Ledger`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from domain.lifecycle import effective_quota

# Kota Bekasi lives in WIB: an approval at 23:30 UTC on the 31st belongs to the next month.
WIB = timedelta(hours=7)


def month_of(day: date) -> date:
    """The first day of `day`'s month (months are dates on the 1st)."""
    return date(day.year, day.month, 1)


def add_months(month: date, count: int) -> date:
    """The month `count` months after `month` (before it when negative)."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def months_between(first: date, last: date) -> int:
    """Months from `first` through `last`, both included; 0 when `first` is after `last`."""
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return max(count, 0)


def parse_month(text: str) -> date:
    """`2026-04` -> the 1st of April 2026; ValueError for anything else."""
    year, sep, month = text.strip().partition("-")
    if not sep or len(year) != 4 or not year.isdigit() or not month.isdigit():
        raise ValueError(f"expected YYYY-MM, e.g. 2026-04, not {text!r}")
    number = int(month)
    if not 1 <= number <= 12:
        raise ValueError(f"expected a month 01-12, not {text!r}")
    return date(int(year), number, 1)


def format_month(month: date) -> str:
    """`04-2026`: short, the same in both languages."""
    return f"{month.month:02d}-{month.year}"


def local_today(now: datetime, utc_offset: timedelta = WIB) -> date:
    """The local calendar day of an aware `now`."""
    return (now + utc_offset).date()


@dataclass(frozen=True, order=True)
class Span:
    """The months one participant's premiums are paid for: `first` through `last`."""

    first: date
    last: date

    @property
    def months(self) -> int:
        """How many months the span pays for."""
        return months_between(self.first, self.last)


@dataclass(frozen=True)
class Budget:
    """The programme's limits: headcount, money, monthly premium and the months of cover."""

    quota: int
    budget_idr: int
    monthly_premium_idr: int
    start: date  # first month of cover (a 1st)
    end: date  # last month of cover (a 1st)

    def __post_init__(self) -> None:
        if self.monthly_premium_idr <= 0 or self.quota < 0 or self.budget_idr < 0:
            raise ValueError("quota and budget must be >= 0 and the premium > 0")
        if self.start.day != 1 or self.end.day != 1 or self.start > self.end:
            raise ValueError("the cover must run from a first month to a later or equal one")

    @property
    def months(self) -> int:
        """Months of cover in the programme period."""
        return months_between(self.start, self.end)

    def cost_from(self, first: date) -> int:
        """What one participant whose cover starts in `first` costs up to the end."""
        months = months_between(max(month_of(first), self.start), self.end)
        return self.monthly_premium_idr * months

    def places_from(self, first: date) -> int:
        """Places if every participant's cover starts in `first`: min(quota, budget // cost)."""
        cost = self.cost_from(first)
        return effective_quota(self.quota, self.budget_idr, cost) if cost else 0

    @property
    def places(self) -> int:
        """Places when everyone is covered from the first month (nothing spent yet)."""
        return self.places_from(self.start)

    def new_cover_start(self, today: date) -> date:
        """Where the cover of someone approved `today` starts: next month, or the first month."""
        return max(self.start, add_months(month_of(today), 1))

    def span(
        self,
        *,
        approved_on: date | None,
        coverage_start: date | None = None,
        ended_on: date | None = None,
    ) -> Span | None:
        """The months paid for one participant, or None when none fall in the period.

        Cover starts in the month BPJS gave (`coverage_start`), else the month after the
        approval, never before the programme's first month; a place freed (withdrawn, erased,
        lapsed) `ended_on` is paid up to and including that month.
        """
        if coverage_start is not None:
            first = month_of(coverage_start)
        elif approved_on is not None:
            first = add_months(month_of(approved_on), 1)
        else:
            first = self.start
        first = max(first, self.start)
        last = self.end if ended_on is None else min(self.end, month_of(ended_on))
        return Span(first, last) if first <= last else None


@dataclass(frozen=True)
class MonthMoney:
    """One month of the period: participants covered and the premiums owed for them."""

    month: date
    people: int
    idr: int


@dataclass(frozen=True)
class Ledger:
    """The money at one moment: every span paid for (places held and places freed)."""

    budget: Budget
    placed: int  # applications holding a place now (approved + enrolled)
    spans: Mapping[Span, int]  # how many participants are paid for over each span

    @property
    def committed_idr(self) -> int:
        """Premiums owed for every span, to its end."""
        premium = self.budget.monthly_premium_idr
        return sum(premium * span.months * count for span, count in self.spans.items())

    @property
    def remaining_idr(self) -> int:
        """The budget not yet committed (negative if a smaller budget was configured later)."""
        return self.budget.budget_idr - self.committed_idr

    def invoiced_idr(self, today: date) -> int:
        """Premiums of the months of cover already started, up to `today`'s month."""
        premium = self.budget.monthly_premium_idr
        now = month_of(today)
        return sum(
            premium * months_between(span.first, min(span.last, now)) * count
            for span, count in self.spans.items()
        )

    def per_month(self) -> list[MonthMoney]:
        """Participants and premiums of every month of the period, first month first."""
        rows = []
        for index in range(self.budget.months):
            month = add_months(self.budget.start, index)
            people = sum(
                count for span, count in self.spans.items() if span.first <= month <= span.last
            )
            rows.append(MonthMoney(month, people, people * self.budget.monthly_premium_idr))
        return rows

    def available(self, today: date) -> int:
        """Places offered now: what the remaining money buys of a new participant's months
        (from next month to the end), within the headcount quota."""
        cost = self.budget.cost_from(self.budget.new_cover_start(today))
        if cost <= 0:
            return 0
        by_money = max(self.remaining_idr, 0) // cost
        return max(0, min(self.budget.quota - self.placed, by_money))

    def quota_now(self, today: date) -> int:
        """Places taken plus places still offered: the quota staff work against today."""
        return self.placed + self.available(today)
