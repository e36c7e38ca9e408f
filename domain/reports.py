"""Programme statistics for staff: the figures, a compact HTML text and a PNG chart.

Pure: no telegram, no sqlalchemy; `storage/reports.py` fills `Statistics` from the database.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape

from domain.budget import MonthMoney, format_month
from domain.i18n import N_
from domain.program import occupation_label
from domain.regions import Regions

Translate = Callable[[str], str]

# Kota Bekasi (and every city on Java and Sumatra) lives in WIB, UTC+7: a worker who submits at
# 06:00 on the 26th belongs to the 26th, not to the UTC 25th.
WIB = timedelta(hours=7)

# Telegram refuses longer messages; the text is kept under it whatever the data.
MAX_MESSAGE_CHARS = 4096
# Rows shown per breakdown before the rest are summed into one "other" line, so a regency with
# 40 kecamatan (or codes nobody expected) still fits one message.
MAX_TEXT_ROWS = 15
MAX_TEXT_DAYS = 31
MAX_CHART_BARS = 15
# Ends a text cut to fit; no words, so it needs no translation and cannot itself be too long.
SHORTENED = "…"

# Short labels for staff (workers see the longer words of handlers/account.py).
STATUS_LABELS: dict[str, str] = {
    "draft": N_("Draft"),
    "ineligible": N_("Ineligible"),
    "pending": N_("Pending"),
    "needs_fix": N_("Needs fix"),
    "approved": N_("Approved"),
    "waitlisted": N_("Waitlisted"),
    "rejected": N_("Rejected"),
    "enrolled": N_("Enrolled"),
    "withdrawn": N_("Withdrawn"),
    "cancelled": N_("Cancelled"),
    "lapsed": N_("Lapsed"),
}

TITLE = N_("Programme statistics")
SCOPED_TITLE = N_("Programme statistics: {kecamatan} only")
QUOTA_LINE = N_("Quota used: {used} / {quota} ({share})")
BUDGET_LINE = N_("Budget committed: {committed} / {budget}")
PREMIUM_LINE = N_("Premium per person per month: {premium} · cover {start} to {end}")
INVOICED_LINE = N_("Invoiced so far: {invoiced} · remaining: {remaining}")
YEAR_TITLE = N_("This year")
YEAR_LINE = N_("Renewed: {renewed} · new: {new} · waitlisted: {waitlisted} · lapsed: {lapsed}")
PER_MONTH = N_("Money committed per month (participants, premiums)")
MONTH = N_("Month")
PARTICIPANTS = N_("Participants")
PREMIUMS = N_("Premiums")
LIVE_LINE = N_("Live applications: {count}")
BY_STATUS = N_("By status")
BY_KECAMATAN = N_("Live applications by kecamatan")
BY_OCCUPATION = N_("Live applications by occupation")
BY_DESIL = N_("Live applications by DTSEN desil")
PER_DAY = N_("Submissions per day, last {days} days")
DESIL_LABEL = N_("Desil {desil}")
NOT_IN_DTSEN = N_("Not in DTSEN")
NOT_GIVEN = N_("Not given")
OTHER_ROWS = N_("Other ({count})")
NOTHING_YET = N_("None yet.")
AS_OF = N_("As of {moment}")
CHART_STATUS = N_("Applications by status")
CHART_KECAMATAN = N_("Live applications by kecamatan")
CHART_DAYS = N_("Submissions per day")
# Column headers of the terminal tables (`rentan-bot stats`).
COUNT = N_("Count")
DAY = N_("Day")
STATUS = N_("Status")
KECAMATAN = N_("Kecamatan")
OCCUPATION = N_("Occupation")
DESIL = N_("Desil")


@dataclass(frozen=True)
class Statistics:
    """The programme at one moment: counts by status, breakdowns, quota and money."""

    by_status: Mapping[str, int]  # every Status value, zero included, in lifecycle order
    by_occupation: Mapping[str, int]  # live applications; "" = not given
    by_kecamatan: Mapping[str, int]  # live applications, 6-digit code; "" = not given
    by_desil: Mapping[int | None, int]  # live applications; None = no DTSEN desil
    per_day: Sequence[tuple[date, int]]  # submissions per local day, oldest first, zero-filled
    quota_used: int  # approved + enrolled
    effective_quota: int  # places held + places the money left still buys (the city's)
    budget_committed_idr: int  # premiums of every month paid for, to its end (the city's)
    budget_idr: int
    premium_idr: int  # per person and month
    generated_at: datetime  # aware
    utc_offset: timedelta = WIB  # of the local days in `per_day` and of the time shown
    scope: tuple[str, ...] = ()  # kecamatan codes the figures are limited to; () = everywhere
    invoiced_idr: int = 0  # premiums of the months of cover started up to this month
    coverage: tuple[date, date] | None = None  # first and last month of cover
    per_month: Sequence[MonthMoney] = ()  # participants and premiums per month of cover
    renewed: int = 0  # places held by last year's participants renewed
    new: int = 0  # places held by others
    lapsed: int = 0  # applications whose cover lapsed (three months unpaid)

    @property
    def remaining_idr(self) -> int:
        """The budget not committed yet."""
        return self.budget_idr - self.budget_committed_idr

    @property
    def live(self) -> int:
        """Live applications (they all appear in `by_kecamatan`, "" standing for none given)."""
        return sum(self.by_kecamatan.values())


def format_number(value: int) -> str:
    """Indonesian thousands: `2000000000` -> `2.000.000.000`."""
    return f"{value:,}".replace(",", ".")


def format_idr(value: int) -> str:
    """Rupiah the Indonesian way: `Rp2.000.000.000`."""
    return "Rp" + format_number(value)


def format_percent(part: int, whole: int) -> str:
    """A share with a decimal comma: `99,2%` (a dash when the whole is zero)."""
    if whole <= 0:
        return "-"
    return f"{100 * part / whole:.1f}%".replace(".", ",")


def kecamatan_name(code: str, regions: Regions) -> str:
    """The kecamatan's name, else its code as stored ("" when none was given)."""
    if not code:
        return ""
    return regions.name(code) or code


def _top(
    counts: Iterable[tuple[str, int]], limit: int, other: Callable[[int], str]
) -> list[tuple[str, int]]:
    """The biggest `limit - 1` rows and one summed "other" row when there are more than `limit`."""
    ranked = sorted(counts, key=lambda item: (-item[1], item[0]))
    if len(ranked) <= limit:
        return ranked
    kept, rest = ranked[: limit - 1], ranked[limit - 1 :]
    return [*kept, (other(len(rest)), sum(count for _label, count in rest))]


def kecamatan_rows(
    stats: Statistics, translate: Translate, regions: Regions, limit: int
) -> list[tuple[str, int]]:
    """(name, count) of live applications per kecamatan, biggest first, capped at `limit` rows."""
    named = [
        (kecamatan_name(code, regions) or translate(NOT_GIVEN), count)
        for code, count in stats.by_kecamatan.items()
        if count
    ]
    return _top(named, limit, lambda n: translate(OTHER_ROWS).format(count=n))


def occupation_rows(stats: Statistics, translate: Translate, limit: int) -> list[tuple[str, int]]:
    """(label, count) of live applications per occupation, biggest first."""
    named = [
        (translate(occupation_label(code)) if occupation_label(code) else code, count)
        for code, count in stats.by_occupation.items()
        if count
    ]
    named = [(label or translate(NOT_GIVEN), count) for label, count in named]
    return _top(named, limit, lambda n: translate(OTHER_ROWS).format(count=n))


def desil_rows(stats: Statistics, translate: Translate) -> list[tuple[str, int]]:
    """(label, count) per desil, desil 1 first and "not in DTSEN" last."""
    known = sorted(d for d in stats.by_desil if d is not None)
    rows = [(translate(DESIL_LABEL).format(desil=d), stats.by_desil[d]) for d in known]
    if stats.by_desil.get(None):
        rows.append((translate(NOT_IN_DTSEN), stats.by_desil[None]))
    return [(label, count) for label, count in rows if count]


def status_rows(stats: Statistics, translate: Translate) -> list[tuple[str, int]]:
    """(label, count) for every status, in lifecycle order, zeros included."""
    return [
        (translate(STATUS_LABELS[status]) if status in STATUS_LABELS else status, count)
        for status, count in stats.by_status.items()
    ]


def format_moment(moment: datetime, utc_offset: timedelta) -> str:
    """`25-11-2026 12:00 WIB` (or `UTC+8` and so on outside WIB)."""
    local = moment.astimezone(UTC) + utc_offset
    hours = utc_offset.total_seconds() / 3600
    zone = "WIB" if utc_offset == WIB else f"UTC{hours:+g}"
    return f"{local:%d-%m-%Y %H:%M} {zone}"


def day_label(day: date) -> str:
    """`25-11`: short, and the same in both languages."""
    return f"{day.day:02d}-{day.month:02d}"


def quota_line(stats: Statistics, translate: Translate) -> str:
    """`Quota used: 9.000 / 9.920 (90,7%)`, plain text."""
    return translate(QUOTA_LINE).format(
        used=format_number(stats.quota_used),
        quota=format_number(stats.effective_quota),
        share=format_percent(stats.quota_used, stats.effective_quota),
    )


def budget_line(stats: Statistics, translate: Translate) -> str:
    """`Budget committed: Rp1.814.400.000 / Rp2.000.000.000`, plain text."""
    return translate(BUDGET_LINE).format(
        committed=format_idr(stats.budget_committed_idr), budget=format_idr(stats.budget_idr)
    )


def money_lines(stats: Statistics, translate: Translate) -> list[str]:
    """Invoiced and remaining money, then the monthly premium and the months of cover."""
    start, end = stats.coverage or (None, None)
    return [
        translate(INVOICED_LINE).format(
            invoiced=format_idr(stats.invoiced_idr), remaining=format_idr(stats.remaining_idr)
        ),
        translate(PREMIUM_LINE).format(
            premium=format_idr(stats.premium_idr),
            start=format_month(start) if start else "-",
            end=format_month(end) if end else "-",
        ),
    ]


def year_line(stats: Statistics, translate: Translate) -> str:
    """`Renewed: 8.000 · new: 1.000 · waitlisted: 200 · lapsed: 12`, plain text."""
    return translate(YEAR_LINE).format(
        renewed=format_number(stats.renewed),
        new=format_number(stats.new),
        waitlisted=format_number(stats.by_status.get("waitlisted", 0)),
        lapsed=format_number(stats.lapsed),
    )


def month_rows(stats: Statistics) -> list[tuple[str, str, str]]:
    """(month, participants, premiums) of every month of cover, first month first."""
    return [
        (format_month(row.month), format_number(row.people), format_idr(row.idr))
        for row in stats.per_month
    ]


def _section(title: str, rows: Sequence[tuple[str, int]], translate: Translate) -> list[str]:
    lines = ["", f"<b>{escape(title)}</b>"]
    if not rows:
        lines.append(escape(translate(NOTHING_YET)))
    lines.extend(f"{escape(label)}: {format_number(count)}" for label, count in rows)
    return lines


def _fit(lines: list[str]) -> str:
    """Join lines, dropping whole lines from the end (never half a tag) until it fits."""
    text = "\n".join(lines)
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    kept: list[str] = []
    size = len(SHORTENED)
    for line in lines:
        if size + len(line) + 1 > MAX_MESSAGE_CHARS:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join([*kept, SHORTENED])


def title(stats: Statistics, translate: Translate, regions: Regions) -> str:
    """`Programme statistics`, or which kecamatan alone the figures cover, plain text."""
    if not stats.scope:
        return translate(TITLE)
    names = ", ".join(kecamatan_name(code, regions) for code in stats.scope)
    return translate(SCOPED_TITLE).format(kecamatan=names)


def format_statistics(
    stats: Statistics, translate: Translate, regions: Regions, extra: Sequence[str] = ()
) -> str:
    """The statistics as one Telegram HTML message (at most 4096 characters); `extra` lines
    (other sections, already HTML) follow the quota block."""
    _ = translate
    moment = format_moment(stats.generated_at, stats.utc_offset)
    lines = [
        f"<b>{escape(title(stats, _, regions))}</b>",
        escape(_(AS_OF).format(moment=moment)),
        "",
        f"<b>{escape(quota_line(stats, _))}</b>",
        f"<b>{escape(budget_line(stats, _))}</b>",
        *(escape(line) for line in money_lines(stats, _)),
        escape(_(LIVE_LINE).format(count=format_number(stats.live))),
        "",
        f"<b>{escape(_(YEAR_TITLE))}</b>",
        escape(year_line(stats, _)),
        *extra,
    ]
    if stats.per_month:
        lines += ["", f"<b>{escape(_(PER_MONTH))}</b>"]
        lines += [f"{month}: {people} · {idr}" for month, people, idr in month_rows(stats)]
    lines += _section(_(BY_STATUS), status_rows(stats, _), _)
    lines += _section(_(BY_KECAMATAN), kecamatan_rows(stats, _, regions, MAX_TEXT_ROWS), _)
    lines += _section(_(BY_OCCUPATION), occupation_rows(stats, _, MAX_TEXT_ROWS), _)
    lines += _section(_(BY_DESIL), desil_rows(stats, _), _)
    days = list(stats.per_day)[-MAX_TEXT_DAYS:]
    lines += _section(_(PER_DAY).format(days=len(days)), [(day_label(d), n) for d, n in days], _)
    return _fit(lines)


def render_chart(stats: Statistics, translate: Translate, regions: Regions) -> bytes:
    """The statistics as a PNG of three small bar charts: status, kecamatan, submissions per day.

    Takes ~0.2 s of CPU (plus ~0.5 s to import matplotlib the first time): call it through
    `asyncio.to_thread` from a handler.
    """
    # Imported here: matplotlib costs half a second at start-up and only this function needs it.
    # The object API (Figure + the Agg canvas) rather than pyplot keeps no global figure registry,
    # so nothing is left open between calls and no GUI backend is ever picked.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    _ = translate
    thousands = FuncFormatter(lambda value, _pos: format_number(round(value)))
    figure = Figure(figsize=(8, 10), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    status_axes, kecamatan_axes, day_axes = figure.subplots(
        3, 1, gridspec_kw={"height_ratios": [1, 1.3, 1]}
    )
    figure.suptitle(
        f"{title(stats, _, regions)}\n{quota_line(stats, _)} · {budget_line(stats, _)}",
        fontsize=10,
    )

    statuses = [row for row in status_rows(stats, _) if row[1]] or status_rows(stats, _)
    labels, counts = zip(*reversed(statuses), strict=True) if statuses else ((), ())
    status_axes.barh(list(labels), list(counts), color="#4c72b0")
    status_axes.set_title(_(CHART_STATUS), fontsize=10, loc="left")

    kecamatan = kecamatan_rows(stats, _, regions, MAX_CHART_BARS)
    if kecamatan:
        names, counts = zip(*reversed(kecamatan), strict=True)
        kecamatan_axes.barh(list(names), list(counts), color="#55a868")
    else:
        kecamatan_axes.text(0.5, 0.5, _(NOTHING_YET), ha="center", va="center")
    kecamatan_axes.set_title(_(CHART_KECAMATAN), fontsize=10, loc="left")

    days = list(stats.per_day)
    day_axes.bar([day_label(d) for d, _n in days], [n for _d, n in days], color="#c44e52")
    day_axes.set_title(_(CHART_DAYS), fontsize=10, loc="left")
    day_axes.tick_params(axis="x", labelrotation=60, labelsize=8)
    day_axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    day_axes.yaxis.set_major_formatter(thousands)

    for axes in (status_axes, kecamatan_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.xaxis.set_major_formatter(thousands)
        axes.tick_params(axis="y", labelsize=8)
    for axes in (status_axes, kecamatan_axes, day_axes):
        axes.spines[["top", "right"]].set_visible(False)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    figure.clear()
    return buffer.getvalue()
