"""/antrian: counts per status, places taken, and the pending queue a page at a time."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode

from domain.budget import local_today
from domain.i18n import N_
from domain.lifecycle import Status
from domain.roles import StaffMember
from domain.text import is_ascii_number
from handlers import account
from handlers.common import answer_query, escape, message_of
from handlers.context import Context
from handlers.views import format_time

PAGE_SIZE = 10
# Status words as staff read them: a fix is awaited from the worker, not from the reader.
STAFF_STATUS_WORDS: dict[str, str] = {
    **account.STATUS_WORDS,
    Status.NEEDS_FIX: N_("waiting for the worker's correction"),
}
# The order of the counts line: the queue first, then where applications end up.
COUNTED = (
    Status.PENDING,
    Status.NEEDS_FIX,
    Status.WAITLISTED,
    Status.APPROVED,
    Status.ENROLLED,
    Status.REJECTED,
    Status.INELIGIBLE,
)


async def queue(update: Update, context: Context, member: StaffMember) -> None:
    """/antrian: counts per status and the first page of the pending queue."""
    text, markup = await _queue_page(context, member, 0)
    await message_of(update).reply_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def queue_page(update: Update, context: Context, member: StaffMember) -> None:
    """Queue paging buttons (`sq:<page>`)."""
    query = update.callback_query
    assert query is not None
    raw = (query.data or "").removeprefix("sq:")
    page = int(raw) if is_ascii_number(raw) else 0
    text, markup = await _queue_page(context, member, min(page, 10_000))
    await answer_query(query)
    await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def _queue_page(
    context: Context, member: StaffMember, page: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    _ = context._
    review = context.services.review
    regions = context.services.regions
    counts = await review.counts(kecamatan=member.kecamatan or None)
    # Places held, and the quota the money left allows today (see domain/budget.py).
    ledger = (await review.ledger(budget=context.settings.budget)).ledger
    today = local_today(context.services.clock())
    flagged = await review.recheck_flagged(kecamatan=member.kecamatan or None)
    lines = [
        _("<b>Applications</b>"),
        " · ".join(
            f"{escape(_(STAFF_STATUS_WORDS[status]))}: {counts.get(status, 0)}"
            for status in COUNTED
        ),
        _("Places: {taken} of {quota}").format(taken=ledger.placed, quota=ledger.quota_now(today)),
    ]
    if flagged:
        flag_line = _("Flagged by the DTSEN re-check after an import: {count}")
        lines.append("⚠️ " + flag_line.format(count=flagged))
    lines += [
        "",
        _("<b>Waiting for verification</b> (lowest desil first, then oldest)"),
    ]
    entries = await review.queue(
        offset=page * PAGE_SIZE, limit=PAGE_SIZE, kecamatan=member.kecamatan or None
    )
    if not entries:
        lines.append(_("Nothing waiting."))
    for number, entry in enumerate(entries, start=page * PAGE_SIZE + 1):
        kecamatan = regions.name(entry.kecamatan_code or "") or "-"
        submitted = format_time(entry.submitted_at, short=True) if entry.submitted_at else "-"
        lines.append(
            f"{number}. <code>{escape(entry.code)}</code> · desil {entry.desil or '-'} · "
            f"{escape(kecamatan)} · {submitted}"
        )
    if page == 0:
        lines += await _waitlist_lines(context, member)
    lines.append("")
    lines.append(_("Review the next one with /tinjau, or /tinjau NUMBER."))
    buttons = []
    if page > 0:
        buttons.append(InlineKeyboardButton("◀", callback_data=f"sq:{page - 1}"))
    if len(entries) == PAGE_SIZE:
        buttons.append(InlineKeyboardButton("▶", callback_data=f"sq:{page + 1}"))
    return "\n".join(lines), InlineKeyboardMarkup([buttons]) if buttons else None


async def _waitlist_lines(context: Context, member: StaffMember) -> list[str]:
    """The head of the waiting list, in the order freed places go to it."""
    _ = context._
    entries = await context.services.review.queue(
        status=Status.WAITLISTED, limit=PAGE_SIZE, kecamatan=member.kecamatan or None
    )
    if not entries:
        return []
    lines = ["", _("<b>Waiting list</b> (a freed place goes to the first)")]
    for number, entry in enumerate(entries, start=1):
        since = entry.submitted_at.strftime("%d-%m %H:%M") if entry.submitted_at else "-"
        lines.append(
            f"{number}. <code>{escape(entry.code)}</code> · desil {entry.desil or '-'} · "
            + _("since {when}").format(when=since)
        )
    return lines
