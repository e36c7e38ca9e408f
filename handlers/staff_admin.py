"""Admin and audit commands: /riwayat (an application's history) and /staf (the staff list)."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ParseMode

from domain.regions import match_kecamatan
from domain.roles import Role, StaffMember
from domain.text import is_ascii_number
from handlers.common import escape, message_of
from handlers.context import Context
from handlers.staff_access import member_by_id, named_application
from handlers.staff_history import history_lines
from handlers.staff_menu import publish_staff_menu


async def history(update: Update, context: Context, member: StaffMember) -> None:
    """/riwayat NUMBER: every state change with who, when and why."""
    application = await named_application(update, context, member)
    if application is None or application.id is None:
        return
    _ = context._
    events = await context.services.review.history(application_id=application.id)
    lines = [_("<b>History of {code}</b>").format(code=escape(application.code or "-"))]
    lines += await history_lines(application, events[-40:], context)
    await message_of(update).reply_text("\n".join(lines)[:4000], parse_mode=ParseMode.HTML)


async def staff_list(update: Update, context: Context, member: StaffMember) -> None:
    """/staf, /staf tambah ID reviewer|admin|operator [AREA...], /staf hapus ID (admins)."""
    _ = context._
    message = message_of(update)
    args = context.args or []
    services = context.services
    if not args:
        rows = await services.staff.all()
        lines = [_("<b>Staff</b>")]
        lines += [f"{uid} · admin (ADMIN_IDS)" for uid in sorted(context.settings.admin_ids)]
        lines += [
            f"{uid} · reviewer (REVIEWER_IDS)" for uid in sorted(context.settings.reviewer_ids)
        ]
        lines += [
            f"{row.telegram_user_id} · {escape(row.role)}"
            + (f" · {escape(row.kecamatan_scope)}" if row.kecamatan_scope else "")
            for row in rows
        ]
        lines.append(
            _("Add: /staf tambah ID reviewer|admin [KECAMATAN, ...]; remove: /staf hapus ID")
            + "\n"
            + _("Operators: /staf tambah ID operator KECAMATAN or KELURAHAN, ...")
        )
        await message.reply_text("\n".join(lines), parse_mode=ParseMode.HTML)
        return
    if (
        args[0] == "tambah"
        and len(args) >= 3
        and is_ascii_number(args[1])
        and args[2] in ("reviewer", "admin", "operator")
    ):
        await _add_staff(update, context, member, int(args[1]), args[2], " ".join(args[3:]))
        return
    if args[0] == "hapus" and len(args) == 2 and is_ascii_number(args[1]):
        removed = await services.staff.remove(user_id=int(args[1]), actor_id=member.user_id)
        if removed:
            await _refresh_menu(context, int(args[1]))
        await message.reply_text(
            _("Staff {user} removed.").format(user=args[1])
            if removed
            else _(
                "{user} is not in the staff table (ids from settings are changed there)."
            ).format(user=args[1])
        )
        return
    await message.reply_text(
        _("Usage: /staf, /staf tambah ID reviewer|admin [KECAMATAN, ...], /staf hapus ID")
        + "\n"
        + _("Operators: /staf tambah ID operator KECAMATAN or KELURAHAN, ...")
    )


async def _add_staff(
    update: Update, context: Context, member: StaffMember, user_id: int, role: str, area: str
) -> None:
    """/staf tambah: a reviewer's kecamatan, or an operator's kecamatan and kelurahan (at least
    one), resolved by name or code within the programme's region."""
    _ = context._
    message = message_of(update)
    services = context.services
    regions = services.regions
    regency = context.settings.program_region_code[:4]
    kecamatan = regions.kecamatan_of(regency)
    operator = role == Role.OPERATOR
    # Operators may be given kelurahan too; kecamatan come last so their names win a tie.
    choices = [v for k in kecamatan for v in regions.kelurahan_of(k.code)] if operator else []
    found, unknown = match_kecamatan(area, [*choices, *kecamatan])
    problem = None
    if unknown:
        problem = _("Unknown kecamatan: {names}.").format(names=escape(", ".join(unknown)))
    elif role == Role.ADMIN and found:
        problem = _("Admins always see the whole area; give kecamatan for reviewers only.")
    elif operator and not found:
        problem = _("An operator needs an area: one or more kecamatan or kelurahan.")
    if problem is not None:
        await message.reply_text(
            problem
            + "\n"
            + _("Valid kecamatan (name or code, separated by commas): {names}").format(
                names=escape(", ".join(f"{k.name} ({k.code})" for k in kecamatan))
            ),
            parse_mode=ParseMode.HTML,
        )
        return
    scope = ",".join(region.code for region in found) or None
    await services.staff.put(
        user_id=user_id, role=role, kecamatan_scope=scope, actor_id=member.user_id
    )
    await _refresh_menu(context, user_id)
    where = (
        _("Scope: {kecamatan}.").format(
            kecamatan=escape(", ".join(f"{k.name} ({k.code})" for k in found))
        )
        if found
        else _("Scope: the whole programme area.")
    )
    await message.reply_text(
        _("Staff {user} is now {role}.").format(user=user_id, role=role) + " " + where,
        parse_mode=ParseMode.HTML,
    )


async def _refresh_menu(context: Context, user_id: int) -> None:
    """The changed member's command menu follows their role now (none: the workers' menu)."""
    await publish_staff_menu(
        context.bot, context.services.catalogs, user_id, await member_by_id(user_id, context)
    )
