"""Staff review in Telegram: the queue, the review card, decisions, history, search, staff list.

Every command and every button checks the caller's numeric Telegram id and role on every
update. A caller who is not staff gets exactly the answer an unknown command gets, and the
attempt is written to the audit log; callback data is untrusted and re-validated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeGuard

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import (
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from domain.eligibility import age_on, decode_reasons
from domain.flow import FIELD_LABELS
from domain.i18n import N_
from domain.nik import InvalidNik, parse_nik
from domain.phones import format_phone_display
from domain.pii import hash_identifier, mask_nik
from domain.program import relation_label
from domain.regions import match_kecamatan
from domain.roles import Role, StaffMember, resolve_role
from domain.text import clean_free_text, is_ascii_number, strip_invisible
from handlers import account
from handlers.common import answer_query, escape, message_of, user_of
from handlers.context import Context
from handlers.notifications import deliver_notifications
from handlers.views import format_date, occupation_text
from storage.models import Application, Status
from storage.review import Decision, DecisionOutcome, Result
from storage.staff import AWAIT_REASON

PAGE_SIZE = 10
# A staff reason the worker reads (rejection, withdrawal), after the free-text rule.
REASON_MAX = 300
CODE_PATTERN = re.compile(r"^[A-Z0-9]{1,8}-[0-9A-Z]{6}$", re.IGNORECASE)

REJECT_REASONS: dict[str, str] = {
    "not_informal": N_("Not an informal worker"),
    "documents": N_("Data does not match the documents"),
    "covered": N_("Already covered by BPJS Ketenagakerjaan"),
    "area": N_("Does not live in the programme area"),
}
# Where each entry point may act. Card buttons only act on what the card showed; withdrawing an
# approval (which frees a place) is its own admin command, /tarik, never a double tap.
CARD_FROM = {
    Decision.APPROVE: (Status.PENDING, Status.WAITLISTED),
    Decision.REJECT: (Status.PENDING, Status.WAITLISTED, Status.NEEDS_FIX),
    Decision.FIX: (Status.PENDING, Status.WAITLISTED),
}
COMMAND_FROM = {
    **CARD_FROM,
    Decision.WITHDRAW: (Status.APPROVED, Status.ENROLLED),
}

Handler = Callable[[Update, Context, StaffMember], Coroutine[Any, Any, None]]
Callback = Callable[[Update, Context], Coroutine[Any, Any, None]]


# --- who is calling ----------------------------------------------------------------------------


async def member_of(update: Update, context: Context) -> StaffMember | None:
    """The caller's staff membership, looked up by numeric id on every update."""
    user = update.effective_user
    if user is None or update.effective_chat is None or update.effective_chat.type != "private":
        return None
    settings = context.settings
    stored = None
    if user.id not in settings.admin_ids:
        stored = await context.services.staff.get(user_id=user.id)
    return resolve_role(
        user.id,
        admin_ids=settings.admin_ids,
        reviewer_ids=settings.reviewer_ids,
        stored_role=stored.role if stored else None,
        stored_scope=stored.kecamatan_scope if stored else None,
    )


def staff_command(needed: Role, handler: Handler) -> Callback:
    """Wrap a command so non-staff get the unknown-command answer and an audit entry."""

    async def guarded(update: Update, context: Context) -> None:
        member = await member_of(update, context)
        if member is None or not member.can(needed):
            user = user_of(update)
            text = (update.effective_message.text or "") if update.effective_message else ""
            await context.services.review.record_denied(
                actor_id=user.id, action="command", detail=text.split(" ")[0][:40]
            )
            await account.unknown_command(update, context)
            return
        await handler(update, context, member)

    return guarded


def staff_button(needed: Role, handler: Handler) -> Callback:
    """Wrap a button so a forged or stale press by non-staff changes nothing and is audited."""

    async def guarded(update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        member = await member_of(update, context)
        if member is None or not member.can(needed):
            await context.services.review.record_denied(
                actor_id=user_of(update).id, action="button", detail=(query.data or "")[:60]
            )
            await answer_query(query, context._("This button is no longer active."))
            return
        await handler(update, context, member)

    return guarded


# --- the queue ---------------------------------------------------------------------------------


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
    taken = await review.places_taken()
    lines = [
        _("<b>Applications</b>"),
        " · ".join(
            f"{escape(_(account.STATUS_WORDS[status]))}: {counts.get(status, 0)}"
            for status in (
                Status.PENDING,
                Status.NEEDS_FIX,
                Status.WAITLISTED,
                Status.APPROVED,
                Status.ENROLLED,
                Status.REJECTED,
                Status.INELIGIBLE,
            )
        ),
        _("Places: {taken} of {quota}").format(
            taken=taken, quota=context.settings.effective_quota
        ),
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
        submitted = entry.submitted_at.strftime("%d-%m %H:%M") if entry.submitted_at else "-"
        lines.append(
            f"{number}. <code>{escape(entry.code)}</code> · desil {entry.desil or '-'} · "
            f"{escape(kecamatan)} · {submitted}"
        )
    lines.append("")
    lines.append(_("Review the next one with /tinjau, or /tinjau NUMBER."))
    buttons = []
    if page > 0:
        buttons.append(InlineKeyboardButton("◀", callback_data=f"sq:{page - 1}"))
    if len(entries) == PAGE_SIZE:
        buttons.append(InlineKeyboardButton("▶", callback_data=f"sq:{page + 1}"))
    return "\n".join(lines), InlineKeyboardMarkup([buttons]) if buttons else None


# --- the review card ---------------------------------------------------------------------------


async def review(update: Update, context: Context, member: StaffMember) -> None:
    """/tinjau [NUMBER]: the next application in priority order, or the one named."""
    message = message_of(update)
    args = context.args or []
    if args:
        application = await context.services.review.find(code=args[0])
        if application is None or not _in_scope(member, application):
            await message.reply_text(context._("No application with that number."))
            return
    else:
        application = await _next_pending(context, member)
        if application is None:
            await message.reply_text(context._("Nothing is waiting for verification."))
            return
    await send_card(message, application, context, via="/tinjau")


async def _next_pending(context: Context, member: StaffMember) -> Application | None:
    skipped = (
        context.user_data.setdefault("skipped", set()) if context.user_data is not None else set()
    )
    leases = context.services.card_leases
    excluded = sorted({*skipped, *leases.held_by_others(member.user_id)})
    entries = await context.services.review.queue(
        limit=1, kecamatan=member.kecamatan or None, exclude=excluded
    )
    if not entries:
        return None
    leases.take(entries[0].application_id, member.user_id)
    return await context.services.review.get(application_id=entries[0].application_id)


def _in_scope(member: StaffMember, application: Application) -> bool:
    return not member.kecamatan or (application.kecamatan_code or "") in member.kecamatan


def sees_full_nik(member: StaffMember | None) -> TypeGuard[StaffMember]:
    """Admins read the whole NIK on a card (and that is audited); reviewers a masked one."""
    return member is not None and member.role is Role.ADMIN


async def card_text(application: Application, context: Context, member: StaffMember | None) -> str:
    """Everything a reviewer needs to decide, with the DTSEN match and risk flags."""
    _ = context._
    services = context.services
    regions = services.regions
    flags = await services.review.risk_flags(application=application)
    born = application.tanggal_lahir
    nik = application.nik or ""
    shown_nik = nik if sees_full_nik(member) else mask_nik(nik)
    today = services.clock().date()
    lines = [
        _("<b>Application {code}</b> · {status}").format(
            code=escape(application.code or "-"),
            status=escape(_(account.STATUS_WORDS.get(application.status, application.status))),
        ),
        f"{_('Name')}: {escape(application.nama or '-')}",
        f"NIK: <code>{escape(shown_nik)}</code> ({application.jenis_kelamin or '-'})",
        f"{_('Date of birth')}: "
        + (f"{format_date(born, context)} ({age_on(born, today)})" if born else "-"),
        f"{_('Mobile number')}: "
        + (escape(format_phone_display(application.phone)) if application.phone else "-"),
        f"{_('Work')}: {escape(occupation_text(application, context))}",
        f"{_('Kecamatan/kelurahan')}: "
        + escape(
            ", ".join(
                regions.name(code) or code
                for code in (application.kelurahan_code, application.kecamatan_code)
                if code
            )
            or "-"
        ),
        f"{_('Address')}: {escape(application.alamat or '-')}",
        f"{_('Heir')}: {escape(application.heir_name or '-')} "
        f"({escape(_(relation_label(application.heir_relation)) or '-')})",
        "",
        _("<b>DTSEN</b>: desil {desil} · {region} · name match {score}").format(
            desil=application.dtsen_desil if application.dtsen_desil is not None else "-",
            region=escape(regions.name(application.dtsen_kode_wilayah or "") or "-"),
            score=f"{round((flags.name_score or 0) * 100)}%",
        ),
    ]
    risks = []
    if flags.same_phone:
        risks.append(
            _("same phone number on {count} other application(s)").format(count=flags.same_phone)
        )
    if flags.nik_attempts > 1:
        risks.append(
            _("{count} different NIKs tried from this Telegram account").format(
                count=flags.nik_attempts
            )
        )
    if flags.nik_other_accounts:
        risks.append(
            _("this NIK was also tried by {count} other account(s)").format(
                count=flags.nik_other_accounts
            )
        )
    if flags.name_score is not None and flags.name_score < 0.999:
        risks.append(_("name differs slightly from DTSEN"))
    if application.identity_mismatch_at is not None:
        # The worker's corrections failed the check until the daily limit: data unchanged.
        risks.append(_("identity correction did not match DTSEN"))
    # The exact findings of the DTSEN check (the worker only saw the neutral wording).
    risks.extend(
        escape(_(reason.staff_template).format(**reason.params))
        for reason in decode_reasons(application.eligibility_reasons)
    )
    if risks:
        lines.append("⚠️ " + _("Risk flags: {flags}").format(flags="; ".join(risks)))
    if application.decided_at is not None:
        lines.append(
            _("Last decision by {actor} at {when}").format(
                actor=application.decided_by or "-",
                when=application.decided_at.strftime("%Y-%m-%d %H:%M UTC"),
            )
        )
    return "\n".join(lines)


# Statuses a card's buttons can act on; other cards (found with /cari) are for reading.
DECIDABLE = frozenset(status for statuses in CARD_FROM.values() for status in statuses)


def card_buttons(application: Application, context: Context) -> InlineKeyboardMarkup | None:
    """Approve, reject, ask for a fix, skip; none on a card no button could act on."""
    if application.status not in DECIDABLE:
        return None
    _ = context._
    ident = application.id
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(_("✅ Approve"), callback_data=f"sv:ap:{ident}"),
                InlineKeyboardButton(_("❌ Reject"), callback_data=f"sv:rj:{ident}"),
            ],
            [
                InlineKeyboardButton(_("✏️ Needs fixing"), callback_data=f"sv:fx:{ident}"),
                InlineKeyboardButton(_("⏭ Skip"), callback_data=f"sv:sk:{ident}"),
            ],
        ]
    )


async def send_card(
    message: Message, application: Application, context: Context, *, via: str
) -> None:
    """Send the review card of one application; an admin's (full NIK) is audited with `via`."""
    member = await member_of_message(message, context)
    if sees_full_nik(member) and application.nik and application.id:
        await context.services.review.record_nik_view(
            actor_id=member.user_id, application_id=application.id, via=via
        )
    await message.reply_text(
        await card_text(application, context, member),
        parse_mode=ParseMode.HTML,
        reply_markup=card_buttons(application, context),
    )


async def member_of_message(message: Message, context: Context) -> StaffMember | None:
    """The membership of whoever the message is addressed to (the reviewer in this chat)."""
    settings = context.settings
    user_id = message.chat.id
    stored = (
        None
        if user_id in settings.admin_ids
        else await context.services.staff.get(user_id=user_id)
    )
    return resolve_role(
        user_id,
        admin_ids=settings.admin_ids,
        reviewer_ids=settings.reviewer_ids,
        stored_role=stored.role if stored else None,
        stored_scope=stored.kecamatan_scope if stored else None,
    )


# --- decisions from the card -------------------------------------------------------------------


async def card_action(update: Update, context: Context, member: StaffMember) -> None:
    """`sv:<action>:<id>[:<extra>]` from a review card."""
    query = update.callback_query
    assert query is not None
    parts = (query.data or "").split(":")
    message = query.message if isinstance(query.message, Message) else None
    if len(parts) < 3 or not is_ascii_number(parts[2]) or message is None:
        await answer_query(query, context._("This button is no longer active."))
        return
    action, application_id = parts[1], int(parts[2])
    extra = parts[3] if len(parts) > 3 else ""
    application = await context.services.review.get(application_id=application_id)
    if application is None or not _in_scope(member, application):
        await answer_query(query, context._("This button is no longer active."))
        return
    _ = context._
    if action == "ap":
        await answer_query(query)
        await _decide(
            update.update_id, message, context, member, application, Decision.APPROVE, CARD_FROM
        )
    elif action == "rj":
        await answer_query(query)
        rows = [
            [InlineKeyboardButton(_(label), callback_data=f"sv:rr:{application_id}:{key}")]
            for key, label in REJECT_REASONS.items()
        ]
        rows.append(
            [InlineKeyboardButton(_("✍️ Type a reason"), callback_data=f"sv:rt:{application_id}")]
        )
        await message.reply_text(
            _("Why is {code} rejected?").format(code=application.code),
            reply_markup=InlineKeyboardMarkup(rows),
        )
    elif action == "rr" and extra in REJECT_REASONS:
        await answer_query(query)
        reason = context.services.catalogs.get(None)._(REJECT_REASONS[extra])
        await _decide(
            update.update_id,
            message,
            context,
            member,
            application,
            Decision.REJECT,
            CARD_FROM,
            reason=reason,
        )
    elif action == "rt":
        await answer_query(query)
        await context.services.staff.await_reason(
            user_id=member.user_id,
            application_id=application_id,
            status_read=application.status,
            now=context.services.clock(),
        )
        await message.reply_text(
            _("Type the reason for rejecting {code} (the worker will read it).").format(
                code=application.code
            )
        )
    elif action == "fx":
        await answer_query(query)
        rows = [
            [InlineKeyboardButton(_(label), callback_data=f"sv:ff:{application_id}:{field}")]
            for field, label in FIELD_LABELS.items()
        ]
        await message.reply_text(
            _("Which field must the worker correct?"), reply_markup=InlineKeyboardMarkup(rows)
        )
    elif action == "ff" and extra in FIELD_LABELS:
        await answer_query(query)
        await _decide(
            update.update_id,
            message,
            context,
            member,
            application,
            Decision.FIX,
            CARD_FROM,
            field=extra,
        )
    elif action == "sk":
        await answer_query(query)
        if context.user_data is not None:
            context.user_data.setdefault("skipped", set()).add(application_id)
        following = await _next_pending(context, member)
        if following is None:
            await message.reply_text(_("Nothing else is waiting for verification."))
        else:
            await send_card(message, following, context, via="skip")
    elif action == "nx":
        await answer_query(query)
        following = await _next_pending(context, member)
        if following is None:
            await message.reply_text(_("Nothing else is waiting for verification."))
        else:
            await send_card(message, following, context, via="next")
    else:
        await answer_query(query, context._("This button is no longer active."))


async def typed_reason(update: Update, context: Context) -> None:
    """The rejection reason a reviewer was asked for: shown back with Kirim / Batal, not sent.

    Only the first text after "Type a reason", within PENDING_INPUT_TTL, is read as the reason;
    anything else (or an expired wait) goes on to the usual handlers.
    """
    user = update.effective_user
    if user is None:
        return
    services = context.services
    pending = await services.staff.pending_input(user_id=user.id, now=services.clock())
    if pending is None or pending.awaiting != AWAIT_REASON:
        return
    message = message_of(update)
    member = await member_of(update, context)
    application = await services.review.get(application_id=pending.application_id)
    if member is None or application is None or not _in_scope(member, application):
        await services.staff.end_input(user_id=user.id)
        if member is None:
            return
        # Erased by the worker while the reviewer was typing.
        await message.reply_text(context._("No application with that number."))
        raise ApplicationHandlerStop
    reason = clean_free_text(message.text or "")[:REASON_MAX]
    if not reason:
        return
    held = await services.staff.hold_reason(
        user_id=user.id, token=pending.token, reason=reason, now=services.clock()
    )
    if held is None:
        return
    _ = context._
    await message.reply_text(
        _("Reject {code} with this reason? Nothing is sent until you press Send.").format(
            code=escape(application.code or "-")
        )
        + f"\n\n<i>{escape(reason)}</i>",
        parse_mode=ParseMode.HTML,
        reply_markup=InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(_("✅ Send"), callback_data=f"sr:ok:{held.token}"),
                    InlineKeyboardButton(_("✖️ Cancel"), callback_data=f"sr:no:{held.token}"),
                ]
            ]
        ),
    )
    raise ApplicationHandlerStop


async def reason_confirmation(update: Update, context: Context, member: StaffMember) -> None:
    """`sr:ok:<token>` sends the typed reason's rejection; `sr:no:<token>` drops it."""
    query = update.callback_query
    assert query is not None
    _ = context._
    parts = (query.data or "").split(":")
    message = query.message if isinstance(query.message, Message) else None
    services = context.services
    if len(parts) != 3 or message is None or parts[1] not in ("ok", "no"):
        await answer_query(query, _("This button is no longer active."))
        return
    action, token = parts[1], parts[2]
    if action == "no":
        if await services.staff.end_input(user_id=member.user_id, token=token):
            await answer_query(query)
            await message.reply_text(_("Cancelled: nothing was sent to the worker."))
        else:
            await answer_query(query, _("This button is no longer active."))
        return
    pending = await services.staff.take_confirmed(
        user_id=member.user_id, token=token, now=services.clock()
    )
    if pending is None:
        await answer_query(query, _("This button is no longer active."))
        return
    await answer_query(query)
    application = await services.review.get(application_id=pending.application_id)
    if application is None or not _in_scope(member, application):
        await message.reply_text(_("No application with that number."))
        return
    # Only from the status the reviewer saw when they chose to reject.
    allowed = tuple(s for s in CARD_FROM[Decision.REJECT] if s == pending.status_read)
    await _decide(
        update.update_id,
        message,
        context,
        member,
        application,
        Decision.REJECT,
        {Decision.REJECT: allowed},
        reason=pending.reason,
    )


async def end_pending_input(update: Update, context: Context) -> None:
    """Any command or button press (other than Kirim / Batal) ends a wait for typed text."""
    user = update.effective_user
    if user is not None:
        await context.services.staff.end_input(user_id=user.id)


# --- decisions as commands ---------------------------------------------------------------------


async def approve_command(update: Update, context: Context, member: StaffMember) -> None:
    """/setujui NUMBER."""
    application = await _named_application(update, context, member)
    if application is not None:
        await _decide(
            update.update_id,
            message_of(update),
            context,
            member,
            application,
            Decision.APPROVE,
            COMMAND_FROM,
        )


async def reject_command(update: Update, context: Context, member: StaffMember) -> None:
    """/tolak NUMBER REASON."""
    args = context.args or []
    if len(args) < 2:
        await message_of(update).reply_text(context._("Usage: /tolak NUMBER REASON"))
        return
    application = await _named_application(update, context, member)
    if application is not None:
        reason = clean_free_text(" ".join(args[1:]))[:REASON_MAX]
        await _decide(
            update.update_id,
            message_of(update),
            context,
            member,
            application,
            Decision.REJECT,
            COMMAND_FROM,
            reason=reason,
        )


async def withdraw_command(update: Update, context: Context, member: StaffMember) -> None:
    """/tarik NUMBER REASON: take an approved or enrolled worker out; the place is freed."""
    args = context.args or []
    if len(args) < 2:
        await message_of(update).reply_text(context._("Usage: /tarik NUMBER REASON"))
        return
    application = await _named_application(update, context, member)
    if application is not None:
        reason = clean_free_text(" ".join(args[1:]))[:REASON_MAX]
        message = message_of(update)
        await _decide(
            update.update_id,
            message,
            context,
            member,
            application,
            Decision.WITHDRAW,
            COMMAND_FROM,
            reason=reason,
        )


async def fix_command(update: Update, context: Context, member: StaffMember) -> None:
    """/perbaiki NUMBER FIELD."""
    args = context.args or []
    fields = ", ".join(FIELD_LABELS)
    if len(args) != 2 or args[1] not in FIELD_LABELS:
        await message_of(update).reply_text(
            context._("Usage: /perbaiki NUMBER FIELD, where FIELD is one of: {fields}").format(
                fields=fields
            )
        )
        return
    application = await _named_application(update, context, member)
    if application is not None:
        await _decide(
            update.update_id,
            message_of(update),
            context,
            member,
            application,
            Decision.FIX,
            COMMAND_FROM,
            field=args[1],
        )


async def _named_application(
    update: Update, context: Context, member: StaffMember
) -> Application | None:
    args = context.args or []
    if not args:
        await message_of(update).reply_text(
            context._("Give the application number, e.g. BKS-4F7K2Q.")
        )
        return None
    application = await context.services.review.find(code=args[0])
    if application is None or not _in_scope(member, application):
        await message_of(update).reply_text(context._("No application with that number."))
        return None
    return application


async def _decide(
    update_id: int,
    message: Message,
    context: Context,
    member: StaffMember,
    application: Application,
    decision: Decision,
    allowed: Mapping[Decision, tuple[str, ...]],
    *,
    reason: str | None = None,
    field: str | None = None,
) -> None:
    """Apply a decision, tell the reviewer what happened, then notify outside the transaction."""
    services = context.services
    assert application.id is not None
    outcome = await services.review.decide(
        application_id=application.id,
        decision=decision,
        actor_id=member.user_id,
        allowed_from=allowed[decision],
        effective_quota=context.settings.effective_quota,
        reason=reason,
        fix_field=field,
        update_id=update_id,
    )
    await message.reply_text(
        await _outcome_text(outcome, decision, context),
        parse_mode=ParseMode.HTML,
        reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton(context._("Next ▶"), callback_data=f"sv:nx:{application.id}")]]
        ),
    )
    if outcome.result in (Result.DONE, Result.WAITLISTED):
        context.application.create_task(deliver_notifications(context))
    if outcome.freed_place:
        await offer_freed_place(context)


async def _outcome_text(outcome: DecisionOutcome, decision: Decision, context: Context) -> str:
    _ = context._
    application = outcome.application
    code = escape(application.code or "-") if application else "-"
    if outcome.result is Result.NOT_FOUND or application is None:
        return _("No application with that number.")
    if outcome.result is Result.OWN_APPLICATION:
        return _(
            "You cannot decide on {code}: it is your own application. Another staff member "
            "must review it."
        ).format(code=code)
    if outcome.result is Result.ALREADY_DECIDED:
        when = (
            application.decided_at.strftime("%Y-%m-%d %H:%M UTC")
            if application.decided_at
            else "-"
        )
        return _(
            "Nothing changed: {code} is already {status} (decided by {actor} at {when})."
        ).format(
            code=code,
            status=escape(_(account.STATUS_WORDS.get(application.status, application.status))),
            actor=application.decided_by or "-",
            when=when,
        )
    if outcome.result is Result.WAITLISTED:
        return _(
            "⚠️ Quota full (kuota penuh): {code} is on the waiting list at position {position}."
        ).format(code=code, position=outcome.waitlist_position or "-")
    taken = await context.services.review.places_taken()
    quota = context.settings.effective_quota
    if decision is Decision.APPROVE:
        return _("✅ {code} approved. Places taken: {taken} of {quota}.").format(
            code=code, taken=taken, quota=quota
        )
    if decision is Decision.REJECT:
        return _("❌ {code} rejected. The worker will be told the reason.").format(code=code)
    if decision is Decision.WITHDRAW:
        return _("{code} withdrawn from the programme; its place is free.").format(code=code)
    return _("✏️ {code} sent back to the worker to correct.").format(code=code)


async def offer_freed_place(context: Context) -> None:
    """A place came free: offer the first waiting application to every staff member."""
    services = context.services
    waiting = await services.review.first_waitlisted()
    if waiting is None:
        return
    text = context._("A place is free. First on the waiting list: {code} — /tinjau {code}").format(
        code=waiting.code
    )
    recipients = set(context.settings.staff_ids) | {
        s.telegram_user_id for s in await services.staff.all()
    }
    for user_id in sorted(recipients):
        try:
            await context.bot.send_message(user_id, text)
        except Exception:
            continue


# --- history, search, staff --------------------------------------------------------------------


async def history(update: Update, context: Context, member: StaffMember) -> None:
    """/riwayat NUMBER: every state change with who, when and why."""
    application = await _named_application(update, context, member)
    if application is None or application.id is None:
        return
    _ = context._
    events = await context.services.review.history(application_id=application.id)
    lines = [_("<b>History of {code}</b>").format(code=escape(application.code or "-"))]
    for event in events[-40:]:
        lines.append(
            f"{event.at.strftime('%Y-%m-%d %H:%M')} · {escape(event.action)} · "
            f"{escape(event.from_status or '-')} → {escape(event.to_status or '-')} · "
            f"{event.actor_id or '-'}" + (f" · {escape(event.reason)}" if event.reason else "")
        )
    await message_of(update).reply_text("\n".join(lines)[:4000], parse_mode=ParseMode.HTML)


async def search(update: Update, context: Context, member: StaffMember) -> None:
    """/cari NIK|NUMBER: find any application (the NIK shown masked except to admins)."""
    message = message_of(update)
    # Invisible characters from a paste (a bidi mark before a NIK) are not part of the query.
    query = strip_invisible("".join(context.args or []))
    if not query:
        await message.reply_text(context._("Usage: /cari NIK or /cari NUMBER"))
        return
    services = context.services
    if CODE_PATTERN.match(query):
        application = await services.review.find(code=query)
    else:
        try:
            nik = parse_nik(query, today=services.clock().date())
        except InvalidNik:
            await message.reply_text(context._("That is neither a NIK nor an application number."))
            return
        application = await services.review.find(
            nik_hash=hash_identifier(nik.digits, services.secret)
        )
    if application is None or not _in_scope(member, application):
        await message.reply_text(context._("No application found."))
        return
    await send_card(message, application, context, via="/cari")


async def staff_list(update: Update, context: Context, member: StaffMember) -> None:
    """/staf, /staf tambah ID reviewer|admin [KECAMATAN...], /staf hapus ID (admins)."""
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
        )
        await message.reply_text("\n".join(lines), parse_mode=ParseMode.HTML)
        return
    if (
        args[0] == "tambah"
        and len(args) >= 3
        and is_ascii_number(args[1])
        and args[2] in ("reviewer", "admin")
    ):
        choices = services.regions.kecamatan_of(context.settings.program_region_code[:4])
        found, unknown = match_kecamatan(" ".join(args[3:]), choices)
        if unknown or (args[2] == "admin" and found):
            problem = (
                _("Unknown kecamatan: {names}.").format(names=escape(", ".join(unknown)))
                if unknown
                else _("Admins always see the whole area; give kecamatan for reviewers only.")
            )
            await message.reply_text(
                problem
                + "\n"
                + _("Valid kecamatan (name or code, separated by commas): {names}").format(
                    names=escape(", ".join(f"{k.name} ({k.code})" for k in choices))
                ),
                parse_mode=ParseMode.HTML,
            )
            return
        scope = ",".join(region.code for region in found) or None
        await services.staff.put(
            user_id=int(args[1]), role=args[2], kecamatan_scope=scope, actor_id=member.user_id
        )
        where = (
            _("Scope: {kecamatan}.").format(
                kecamatan=escape(", ".join(f"{k.name} ({k.code})" for k in found))
            )
            if found
            else _("Scope: the whole programme area.")
        )
        await message.reply_text(
            _("Staff {user} is now {role}.").format(user=args[1], role=args[2]) + " " + where,
            parse_mode=ParseMode.HTML,
        )
        return
    if args[0] == "hapus" and len(args) == 2 and is_ascii_number(args[1]):
        removed = await services.staff.remove(user_id=int(args[1]), actor_id=member.user_id)
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
    )


def build() -> list[BaseHandler[Update, Context, None]]:
    """Staff commands and buttons (private chats only; every one re-checks the caller)."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    reviewer, admin = Role.REVIEWER, Role.ADMIN
    return [
        CommandHandler("antrian", staff_command(reviewer, queue), filters=private),
        CommandHandler("tinjau", staff_command(reviewer, review), filters=private),
        CommandHandler("setujui", staff_command(reviewer, approve_command), filters=private),
        CommandHandler("tolak", staff_command(reviewer, reject_command), filters=private),
        CommandHandler("perbaiki", staff_command(reviewer, fix_command), filters=private),
        CommandHandler("tarik", staff_command(admin, withdraw_command), filters=private),
        CommandHandler("riwayat", staff_command(reviewer, history), filters=private),
        CommandHandler("cari", staff_command(reviewer, search), filters=private),
        CommandHandler("staf", staff_command(admin, staff_list), filters=private),
        CallbackQueryHandler(staff_button(reviewer, queue_page), pattern=r"^sq:"),
        CallbackQueryHandler(staff_button(reviewer, card_action), pattern=r"^sv:"),
        CallbackQueryHandler(staff_button(reviewer, reason_confirmation), pattern=r"^sr:"),
    ]


def build_reason_input() -> list[BaseHandler[Update, Context, None]]:
    """A reviewer's typed rejection reason, checked before the registration flow sees text;
    commands and other buttons end the wait first (and then run as usual)."""
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    return [
        MessageHandler(private & filters.TEXT & ~filters.COMMAND, typed_reason),
        MessageHandler(private & filters.COMMAND, end_pending_input),
        CallbackQueryHandler(end_pending_input, pattern=r"^(?!sr:)"),
    ]
