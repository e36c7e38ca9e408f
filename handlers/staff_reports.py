"""Staff reports in Telegram: /statistik (text and chart), /ekspor (admin), KPJ files (admin)."""

from __future__ import annotations

import asyncio
import io

from telegram import Update
from telegram.constants import ParseMode
from telegram.ext import (
    ApplicationHandlerStop,
    BaseHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from domain.annex import AnnexTotals, write_annex
from domain.appeals import appeal_section
from domain.exports import write_csv, write_xlsx
from domain.lifecycle import PLACE_HOLDING, Status
from domain.operators import format_channels
from domain.reports import (
    MAX_MESSAGE_CHARS,
    format_idr,
    format_number,
    format_statistics,
    render_chart,
)
from domain.roles import Role, StaffMember
from handlers.common import escape, message_of
from handlers.context import Context
from handlers.notifications import deliver_notifications
from handlers.staff_access import member_of, staff_command
from storage.enrollment import KpjFileError, import_kpj
from usecases.appeals import appeal_statistics

KPJ_FILE_LIMIT = 5 * 1024 * 1024
PROBLEMS_SHOWN = 20


async def statistics(update: Update, context: Context, member: StaffMember) -> None:
    """/statistik: totals, the year, quota and money as text, then the same as a chart; a reviewer
    scoped to some kecamatan sees only theirs."""
    settings = context.settings
    stats = await context.services.reports.statistics(
        budget=settings.budget, now=context.services.clock(), kecamatan=member.kecamatan
    )
    regions = context.services.regions
    message = message_of(update)
    appeals = await appeal_statistics(
        context.services.appeals, now=context.services.clock(), kecamatan=member.kecamatan
    )
    text = format_statistics(stats, context._, regions, extra=appeal_section(appeals, context._))
    if not member.kecamatan:
        text = await _with_channels(text, context)
    await message.reply_text(text, parse_mode=ParseMode.HTML)
    # matplotlib is CPU-bound; keep it off the event loop so other chats are not held up.
    png = await asyncio.to_thread(render_chart, stats, context._, regions)
    await message.reply_photo(png)


async def _with_channels(text: str, context: Context) -> str:
    """The statistics text and, when it still fits one message, registrations and completions
    per community and per operator (the whole area only: scoped reviewers skip it)."""
    per_community, per_operator = await context.services.operators.channel_counts()
    section = format_channels(per_community, per_operator, context._)
    if not section or len(text) + len(section) + 2 > MAX_MESSAGE_CHARS:
        return text
    return f"{text}\n\n{section}"


# `/ekspor lampiran` (or `sk`): the decree's annex instead of the list for BPJS.
ANNEX_WORDS = frozenset({"lampiran", "sk", "annex"})


async def export(update: Update, context: Context, member: StaffMember) -> None:
    """/ekspor: the approved list for BPJS Ketenagakerjaan as CSV and XLSX documents (audited);
    `/ekspor lampiran`: the decree's annex instead."""
    message = message_of(update)
    if context.args and context.args[0].casefold() in ANNEX_WORDS:
        await export_annex(update, context, member)
        return
    statuses = (Status.APPROVED,)
    rows = await context.services.exports.collect(statuses=statuses)
    if not rows:
        await message.reply_text(context._("No approved applications to export yet."))
        return
    # Written before the files go out: once sent, the full NIKs have left the database.
    await context.services.review.record_export(
        actor_id=member.user_id,
        source="telegram",
        statuses=statuses,
        rows=len(rows),
        kind="csv+xlsx",
    )
    regions = context.services.regions
    translate = context.services.catalogs.get("id")._
    stamp = context.services.clock().strftime("%Y%m%d")

    def _render() -> tuple[bytes, bytes]:
        csv_buffer, xlsx_buffer = io.BytesIO(), io.BytesIO()
        write_csv(rows, csv_buffer, translate=translate, regions=regions)
        write_xlsx(rows, xlsx_buffer, translate=translate, regions=regions)
        return csv_buffer.getvalue(), xlsx_buffer.getvalue()

    csv_bytes, xlsx_bytes = await asyncio.to_thread(_render)
    caption = context._("{count} approved applications for BPJS Ketenagakerjaan.").format(
        count=len(rows)
    )
    await message.reply_document(csv_bytes, filename=f"bpjs_bpu_{stamp}.csv", caption=caption)
    await message.reply_document(xlsx_bytes, filename=f"bpjs_bpu_{stamp}.xlsx")


async def export_annex(update: Update, context: Context, member: StaffMember) -> None:
    """`/ekspor lampiran`: every participant (approved and enrolled) numbered per kecamatan and
    kelurahan, with totals and the premium total of the cover period, as XLSX (audited)."""
    message = message_of(update)
    rows = await context.services.exports.annex_rows()
    if not rows:
        await message.reply_text(context._("No participants for the annex yet."))
        return
    # Written before the file goes out: once sent, the full NIKs have left the database.
    await context.services.review.record_export(
        actor_id=member.user_id,
        source="telegram",
        statuses=PLACE_HOLDING,
        rows=len(rows),
        kind="annex",
    )
    regions = context.services.regions
    # The annex is attached to a decree written in Bahasa Indonesia, whoever asks.
    translate = context.services.catalogs.get("id")._
    budget = context.settings.budget

    def _render() -> tuple[bytes, AnnexTotals]:
        buffer = io.BytesIO()
        totals = write_annex(rows, buffer, budget=budget, translate=translate, regions=regions)
        return buffer.getvalue(), totals

    data, totals = await asyncio.to_thread(_render)
    stamp = context.services.clock().strftime("%Y%m%d")
    caption = context._("Annex to the decree: {count} participants, premium total {premium}.")
    await message.reply_document(
        data,
        filename=f"lampiran_sk_{stamp}.xlsx",
        caption=caption.format(
            count=format_number(totals.participants), premium=format_idr(totals.premium_idr)
        ),
    )


async def kpj_document(update: Update, context: Context) -> None:
    """A CSV/XLSX an admin sends: KPJ numbers from BPJS; others' documents pass through."""
    message = message_of(update)
    document = message.document
    member = await member_of(update, context)
    if document is None or member is None or not member.can(Role.ADMIN):
        return
    name = document.file_name or ""
    if not name.lower().endswith((".csv", ".xlsx")):
        await message.reply_text(context._("Send the KPJ list from BPJS as a .csv or .xlsx file."))
        raise ApplicationHandlerStop
    if (document.file_size or 0) > KPJ_FILE_LIMIT:
        await message.reply_text(context._("That file is too large (at most 5 MB)."))
        raise ApplicationHandlerStop
    telegram_file = await document.get_file()
    data = bytes(await telegram_file.download_as_bytearray())
    services = context.services
    try:
        report = await import_kpj(
            services.database,
            data,
            filename=name,
            secret=services.secret,
            actor_id=member.user_id,
            today=services.clock().date(),
            max_rows=context.settings.kpj_max_rows,
            max_uncompressed_bytes=context.settings.kpj_max_uncompressed_mb * 1024 * 1024,
        )
    except KpjFileError as error:
        await message.reply_text(error.message(context._))
        raise ApplicationHandlerStop from None
    lines = [
        context._("{applied} of {rows} rows applied; {problems} not applied.").format(
            applied=report.applied, rows=report.rows, problems=len(report.problems)
        )
    ]
    for problem in report.problems[:PROBLEMS_SHOWN]:
        lines.append(
            escape(f"{problem.line}: {problem.masked_nik} — {problem.message(context._)}")
        )
    if len(report.problems) > PROBLEMS_SHOWN:
        lines.append(f"… +{len(report.problems) - PROBLEMS_SHOWN}")
    await message.reply_text("\n".join(lines), parse_mode=ParseMode.HTML)
    if report.applied:
        context.application.create_task(deliver_notifications(context))
    raise ApplicationHandlerStop


def build() -> list[BaseHandler[Update, Context, None]]:
    """Report commands."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        CommandHandler("statistik", staff_command(Role.REVIEWER, statistics), filters=private),
        CommandHandler("ekspor", staff_command(Role.ADMIN, export), filters=private),
    ]


def build_documents() -> list[BaseHandler[Update, Context, None]]:
    """Admins' KPJ files, looked at before the registration flow sees documents."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [MessageHandler(private & filters.Document.ALL, kpj_document)]
