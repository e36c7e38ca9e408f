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

from domain.appeals import appeal_section
from domain.exports import write_csv, write_xlsx
from domain.reports import format_statistics, render_chart
from domain.roles import Role, StaffMember
from handlers.common import escape, message_of
from handlers.context import Context
from handlers.notifications import deliver_notifications
from handlers.staff_access import member_of, staff_command
from storage.enrollment import KpjFileError, import_kpj
from storage.models import Status
from usecases.appeals import appeal_statistics

KPJ_FILE_LIMIT = 5 * 1024 * 1024
PROBLEMS_SHOWN = 20


async def statistics(update: Update, context: Context, member: StaffMember) -> None:
    """/statistik: totals, quota and budget as text, then the same as a chart; a reviewer
    scoped to some kecamatan sees only theirs."""
    settings = context.settings
    stats = await context.services.reports.statistics(
        premium_idr=settings.program_premium_idr,
        budget_idr=settings.program_budget_idr,
        effective_quota=settings.effective_quota,
        kecamatan=member.kecamatan,
    )
    regions = context.services.regions
    message = message_of(update)
    appeals = await appeal_statistics(
        context.services.appeals, now=context.services.clock(), kecamatan=member.kecamatan
    )
    await message.reply_text(
        format_statistics(stats, context._, regions, extra=appeal_section(appeals, context._)),
        parse_mode=ParseMode.HTML,
    )
    # matplotlib is CPU-bound; keep it off the event loop so other chats are not held up.
    png = await asyncio.to_thread(render_chart, stats, context._, regions)
    await message.reply_photo(png)


async def export(update: Update, context: Context, member: StaffMember) -> None:
    """/ekspor: the approved list for BPJS Ketenagakerjaan as CSV and XLSX documents (audited)."""
    message = message_of(update)
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
