"""Fraud controls on assisted registration: the operator's day (WIB), night hours, and the
figures staff see per operator. Pure: rows in, figures out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from html import escape

from domain.i18n import N_
from domain.lifecycle import Status
from domain.reports import WIB

# Registrations between 22:00 and 05:00 WIB count as "at night": few kelurahan offices or
# pangkalan meet then, so a burst is worth a look.
NIGHT_FROM = time(22, 0)
NIGHT_UNTIL = time(5, 0)
# A phone number on this many applications (anyone's) is flagged on the operator's line.
SHARED_PHONE_MIN = 3
# What counts as refused: the DTSEN check failed, or a reviewer rejected it.
REFUSED_STATUSES = frozenset({Status.INELIGIBLE, Status.REJECTED})


def day_start(now: datetime, offset: timedelta = WIB) -> datetime:
    """The UTC instant at which `now`'s local (WIB) day began."""
    local = (now.astimezone(UTC) + offset).date()
    return datetime.combine(local, time(), tzinfo=UTC) - offset


def is_night(moment: datetime, offset: timedelta = WIB) -> bool:
    """Whether `moment` falls between 22:00 and 05:00 local time."""
    local = (moment.astimezone(UTC) + offset).time()
    return local >= NIGHT_FROM or local < NIGHT_UNTIL


@dataclass(frozen=True)
class DayCount:
    """One operator's registrations opened on one local (WIB) day."""

    operator_id: int
    day: date
    registrations: int
    refused: int  # ineligible or rejected by now
    night: int  # opened between 22:00 and 05:00 WIB


@dataclass(frozen=True)
class ChannelCount:
    """Applications that came through one channel (a community or an operator)."""

    key: str  # the community's name, or the operator's Telegram id
    registrations: int  # applications begun (drafts included)
    completions: int  # applications sent (a number given)


@dataclass(frozen=True)
class OperatorFigures:
    """One operator's registrations as staff see them."""

    operator_id: int
    total: int = 0
    today: int = 0
    busiest_day: int = 0  # the most registrations on one WIB day
    refused: int = 0  # ineligible or rejected
    night: int = 0  # opened between 22:00 and 05:00 WIB
    shared_phones: int = 0  # their applications whose phone is on SHARED_PHONE_MIN or more

    @property
    def refused_share(self) -> float:
        """The share of their registrations refused (0 when none)."""
        return self.refused / self.total if self.total else 0.0


def operator_figures(
    operator_ids: Iterable[int],
    days: Iterable[DayCount],
    shared_phones: Mapping[int, int],
    now: datetime,
) -> list[OperatorFigures]:
    """The figures of every listed operator (those without registrations too), by id, from
    their registrations per day and how many of them carry a shared phone number."""
    today = (now.astimezone(UTC) + WIB).date()
    per_operator: dict[int, list[DayCount]] = {}
    for row in days:
        per_operator.setdefault(row.operator_id, []).append(row)
    result = []
    for operator_id in sorted(set(operator_ids) | set(per_operator) | set(shared_phones)):
        rows = per_operator.get(operator_id, [])
        result.append(
            OperatorFigures(
                operator_id=operator_id,
                total=sum(row.registrations for row in rows),
                today=sum(row.registrations for row in rows if row.day == today),
                busiest_day=max((row.registrations for row in rows), default=0),
                refused=sum(row.refused for row in rows),
                night=sum(row.night for row in rows),
                shared_phones=shared_phones.get(operator_id, 0),
            )
        )
    return result


PER_COMMUNITY = N_("Registrations / sent per community")
PER_OPERATOR = N_("Registrations / sent per operator")
CHANNEL_ROWS = 15


def format_channels(
    per_community: Sequence[ChannelCount],
    per_operator: Sequence[ChannelCount],
    translate: Callable[[str], str],
) -> str:
    """The /statistik section on where workers came from (HTML, at most 15 rows a list; the
    rest summed). Empty when no community link or operator brought anyone."""
    parts = []
    for title, rows in ((PER_COMMUNITY, per_community), (PER_OPERATOR, per_operator)):
        if not rows:
            continue
        ranked = sorted(rows, key=lambda row: (-row.registrations, row.key))
        lines = [f"<b>{escape(translate(title))}</b>"]
        lines += [
            f"{escape(row.key)}: {row.registrations} / {row.completions}"
            for row in ranked[:CHANNEL_ROWS]
        ]
        rest = ranked[CHANNEL_ROWS:]
        if rest:
            lines.append(
                f"… +{len(rest)}: {sum(r.registrations for r in rest)} / "
                f"{sum(r.completions for r in rest)}"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)
