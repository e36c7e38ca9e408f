"""Appeals (sanggah): who may appeal, the ticket, the answer's deadline in working days, the
route to a DTSEN update, and the appeal figures for /statistik. Pure: no Telegram, no SQL."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from html import escape

from domain.eligibility import Reason, ReasonCode
from domain.i18n import N_
from domain.lifecycle import Status
from domain.roles import Role

Translate = Callable[[str], str]

# A worker may appeal a refusal by the DTSEN check, a reviewer's rejection or the waiting list.
APPEALABLE = (Status.INELIGIBLE, Status.REJECTED, Status.WAITLISTED)
# What the worker writes: one short message (a Telegram message holds 4096 characters; staff
# read this on a card beside the DTSEN finding, so it stays short).
MAX_APPEAL_CHARS = 500
MIN_APPEAL_CHARS = 10
# A staff answer the worker reads (dismissal) or the audit keeps (manual inclusion).
MAX_ANSWER_CHARS = 300
TICKET_PREFIX = "SGH"


class AppealStatus(StrEnum):
    """An appeal waits (open) until staff uphold or dismiss it."""

    OPEN = "open"
    UPHELD = "upheld"
    DISMISSED = "dismissed"


class Outcome(StrEnum):
    """What staff can answer: re-open for review, include by an admin's override, dismiss."""

    REOPEN = "reopen"
    INCLUDE = "include"
    DISMISS = "dismiss"


# The least role for each answer: a manual inclusion overrides the DTSEN rule, so admins only.
REQUIRED_ROLE: dict[Outcome, Role] = {
    Outcome.REOPEN: Role.REVIEWER,
    Outcome.INCLUDE: Role.ADMIN,
    Outcome.DISMISS: Role.REVIEWER,
}


def ticket(appeal_id: int) -> str:
    """`SGH-000123`: the number the worker quotes."""
    return f"{TICKET_PREFIX}-{appeal_id:06d}"


def parse_ticket(text: str) -> int | None:
    """The appeal id of `SGH-000123` (any case, leading zeros optional), else None."""
    prefix, _, digits = text.strip().upper().partition("-")
    if prefix != TICKET_PREFIX or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits) or None


def add_working_days(start: date, days: int) -> date:
    """The date `days` working days (Monday to Friday) after `start`.

    Counting starts the next working day, so an appeal filed on a Friday or a Saturday with 5
    days is due the following Friday. Public holidays are not known here and count as working.
    """
    if days < 0:
        raise ValueError("days must be >= 0")
    current = start
    left = days
    while left:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current


def is_overdue(deadline: date, today: date) -> bool:
    """Overdue once the deadline day has passed without an answer."""
    return today > deadline


def needs_dtsen_route(reasons: Iterable[Reason]) -> bool:
    """Whether the refusal came from DTSEN itself (not listed, or a desil too high): only a
    DTSEN update can change that, so the worker is told how to ask for one."""
    return any(
        reason.code in (ReasonCode.NOT_IN_DTSEN, ReasonCode.DESIL_TOO_HIGH) for reason in reasons
    )


DTSEN_ROUTE = N_(
    "Your data in DTSEN can only be changed through a DTSEN update: ask at your kelurahan "
    "office to be included in the monthly village deliberation (musyawarah kelurahan), or "
    "propose it yourself in the Cek Bansos application of the Ministry of Social Affairs. "
    "Once DTSEN is updated you can register again. Questions: {office}, call centre {phone}."
)


@dataclass(frozen=True)
class AppealStats:
    """Appeals at one moment: open (of which overdue), answered, and how long answers took."""

    open: int
    overdue: int
    upheld: int
    dismissed: int
    median_hours: float | None  # filing to answer, over answered appeals; None: none yet


def median_hours(durations: Sequence[float]) -> float | None:
    """The median of answer times in hours, None when nothing was answered yet."""
    return statistics.median(durations) if durations else None


APPEALS_TITLE = N_("Appeals (sanggah)")
APPEALS_LINE = N_("Open: {open} (overdue: {overdue}) · upheld: {upheld} · dismissed: {dismissed}")
APPEALS_MEDIAN = N_("Median time to answer: {hours} hours")
APPEALS_NO_MEDIAN = N_("Median time to answer: none answered yet")


def appeal_lines(stats: AppealStats, translate: Translate) -> list[str]:
    """The appeal figures as plain text lines (the title first)."""
    _ = translate
    lines = [
        _(APPEALS_TITLE),
        _(APPEALS_LINE).format(
            open=stats.open, overdue=stats.overdue, upheld=stats.upheld, dismissed=stats.dismissed
        ),
    ]
    if stats.median_hours is None:
        lines.append(_(APPEALS_NO_MEDIAN))
    else:
        hours = f"{stats.median_hours:.1f}".replace(".", ",")
        lines.append(_(APPEALS_MEDIAN).format(hours=hours))
    return lines


def appeal_section(stats: AppealStats, translate: Translate) -> list[str]:
    """The appeal figures as a /statistik section (Telegram HTML lines, a blank line first)."""
    title, *rest = appeal_lines(stats, translate)
    marker = "🔴 " if stats.overdue else ""
    return ["", f"<b>{marker}{escape(title)}</b>", *(escape(line) for line in rest)]
