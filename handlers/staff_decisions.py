"""Decisions: /setujui, /tolak, /perbaiki, /tarik, a typed rejection reason with Kirim / Batal,
and how each decision's outcome is told to the reviewer (and a freed place to all staff)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.ext import ApplicationHandlerStop

from domain.fix_fields import read_fix_field
from domain.flow import FIELD_LABELS
from domain.lifecycle import Decision, EntryPoint
from domain.roles import StaffMember
from domain.text import clean_free_text
from handlers.common import answer_query, escape, message_of
from handlers.context import Context
from handlers.notifications import deliver_notifications
from handlers.staff_access import in_scope, member_of, named_application
from handlers.staff_queue import STAFF_STATUS_WORDS
from handlers.views import format_time
from storage.models import StaffPendingInput
from storage.review import Result
from storage.staff import AWAIT_NOTE_PREFIX, AWAIT_REASON
from usecases.decisions import Decided, FreedPlaceOffer, decide

# A staff reason the worker reads (rejection, withdrawal), after the free-text rule.
REASON_MAX = 300


# --- decisions as commands ---------------------------------------------------------------------


async def approve_command(update: Update, context: Context, member: StaffMember) -> None:
    """/setujui NUMBER."""
    await _command(update, context, member, Decision.APPROVE)


async def reject_command(update: Update, context: Context, member: StaffMember) -> None:
    """/tolak NUMBER REASON."""
    args = context.args or []
    if len(args) < 2:
        await message_of(update).reply_text(context._("Usage: /tolak NUMBER REASON"))
        return
    reason = clean_free_text(" ".join(args[1:]))[:REASON_MAX]
    await _command(update, context, member, Decision.REJECT, reason=reason)


async def withdraw_command(update: Update, context: Context, member: StaffMember) -> None:
    """/tarik NUMBER REASON: take an approved or enrolled worker out; the place is freed."""
    args = context.args or []
    if len(args) < 2:
        await message_of(update).reply_text(context._("Usage: /tarik NUMBER REASON"))
        return
    reason = clean_free_text(" ".join(args[1:]))[:REASON_MAX]
    await _command(update, context, member, Decision.WITHDRAW, reason=reason)


async def fix_command(update: Update, context: Context, member: StaffMember) -> None:
    """/perbaiki NUMBER [FIELD [NOTE]]: FIELD in Indonesian ("alamat", "tgl lahir") or as the
    step's name; the rest is a note the worker reads. No or an unknown FIELD: the field buttons."""
    args = context.args or []
    read = read_fix_field(args[1:]) if len(args) > 1 else None
    if read is None:
        application = await named_application(update, context, member)
        if application is None or application.id is None:
            return
        _ = context._
        await message_of(update).reply_text(
            (_("I don't know that field. ") if len(args) > 1 else "")
            + _("Which field must the worker correct in {code}?").format(code=application.code),
            reply_markup=fix_field_picker(application.id, context),
        )
        return
    field, rest = read
    note = clean_free_text(" ".join(rest))[:REASON_MAX] or None
    await _command(update, context, member, Decision.FIX, reason=note, field=field)


def fix_field_picker(application_id: int, context: Context) -> InlineKeyboardMarkup:
    """A button per field a worker can be asked to correct, and Batal."""
    _ = context._
    rows = [
        [InlineKeyboardButton(_(label), callback_data=f"sv:ff:{application_id}:{field}")]
        for field, label in FIELD_LABELS.items()
    ]
    rows.append(cancel_row(application_id, context))
    return InlineKeyboardMarkup(rows)


def cancel_row(application_id: int, context: Context) -> list[InlineKeyboardButton]:
    """The Batal row of a picker: nothing is decided or sent."""
    return [InlineKeyboardButton(context._("✖️ Cancel"), callback_data=f"sv:cx:{application_id}")]


async def _command(
    update: Update,
    context: Context,
    member: StaffMember,
    decision: Decision,
    *,
    reason: str | None = None,
    field: str | None = None,
) -> None:
    application = await named_application(update, context, member)
    if application is None or application.id is None:
        return
    await carry_out(
        update.update_id,
        message_of(update),
        context,
        member,
        application.id,
        decision,
        EntryPoint.COMMAND,
        reason=reason,
        field=field,
    )


# --- a typed rejection reason ------------------------------------------------------------------


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
    if pending is None or not (
        pending.awaiting == AWAIT_REASON or pending.awaiting.startswith(AWAIT_NOTE_PREFIX)
    ):
        return
    message = message_of(update)
    member = await member_of(update, context)
    application = await services.review.get(application_id=pending.application_id)
    if member is None or application is None or not in_scope(member, application):
        await services.staff.end_input(user_id=user.id)
        if member is None:
            return
        # Erased by the worker while the reviewer was typing.
        await message.reply_text(context._("No application with that number."))
        raise ApplicationHandlerStop
    reason = clean_free_text(message.text or "")[:REASON_MAX]
    if not reason:
        return
    if pending.awaiting.startswith(AWAIT_NOTE_PREFIX):
        await _fix_with_note(update, context, member, pending, reason)
        raise ApplicationHandlerStop
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


async def _fix_with_note(
    update: Update,
    context: Context,
    member: StaffMember,
    pending: StaffPendingInput,
    note: str,
) -> None:
    """The typed note of a fix request: the fix is sent with it, from the status then seen."""
    services = context.services
    taken = await services.staff.take_note(
        user_id=member.user_id, token=pending.token, now=services.clock()
    )
    if taken is None:
        return
    await carry_out(
        update.update_id,
        message_of(update),
        context,
        member,
        taken.application_id,
        Decision.FIX,
        EntryPoint.CARD,
        status_seen=taken.status_read,
        reason=note,
        field=taken.awaiting.removeprefix(AWAIT_NOTE_PREFIX),
    )


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
    if application is None or application.id is None or not in_scope(member, application):
        await message.reply_text(_("No application with that number."))
        return
    # Only from the status the reviewer saw when they chose to reject.
    await carry_out(
        update.update_id,
        message,
        context,
        member,
        application.id,
        Decision.REJECT,
        EntryPoint.CARD,
        status_seen=pending.status_read,
        reason=pending.reason,
    )


async def end_pending_input(update: Update, context: Context) -> None:
    """Any command or button press (other than Kirim / Batal) ends a wait for typed text."""
    user = update.effective_user
    if user is not None:
        await context.services.staff.end_input(user_id=user.id)


# --- carrying a decision out and telling it ----------------------------------------------------


async def carry_out(
    update_id: int,
    message: Message,
    context: Context,
    member: StaffMember,
    application_id: int,
    decision: Decision,
    entry: EntryPoint,
    *,
    status_seen: str | None = None,
    reason: str | None = None,
    field: str | None = None,
) -> None:
    """Decide, tell the reviewer what happened, then notify outside the transaction."""
    services = context.services
    decided = await decide(
        services.review,
        services.staff,
        context.settings,
        application_id=application_id,
        decision=decision,
        actor=member,
        entry=entry,
        status_seen=status_seen,
        reason=reason,
        fix_field=field,
        update_id=update_id,
        now=services.clock(),
    )
    await message.reply_text(
        outcome_text(decided, decision, context),
        parse_mode=ParseMode.HTML,
        reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton(context._("Next ▶"), callback_data=f"sv:nx:{application_id}")]]
        ),
    )
    if decided.worker_notified:
        context.application.create_task(deliver_notifications(context))
    if decided.offer is not None:
        await offer_freed_place(context, decided.offer)


def outcome_text(decided: Decided, decision: Decision, context: Context) -> str:
    """What the reviewer reads after deciding."""
    _ = context._
    outcome = decided.outcome
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
        when = format_time(application.decided_at) if application.decided_at else "-"
        return _(
            "Nothing changed: {code} is already {status} (decided by {actor} at {when})."
        ).format(
            code=code,
            status=escape(_(STAFF_STATUS_WORDS.get(application.status, application.status))),
            actor=application.decided_by or "-",
            when=when,
        )
    if outcome.result is Result.WAITLISTED:
        return _(
            "⚠️ Quota full (kuota penuh): {code} is on the waiting list at position {position}."
        ).format(code=code, position=outcome.waitlist_position or "-")
    if decision is Decision.APPROVE:
        return _("✅ {code} approved. Places taken: {taken} of {quota}.").format(
            code=code, taken=decided.places_taken, quota=decided.quota
        )
    if decision is Decision.REJECT:
        return _("❌ {code} rejected. The worker will be told the reason.").format(code=code)
    if decision is Decision.WITHDRAW:
        return _("{code} withdrawn from the programme; its place is free.").format(code=code)
    text = _("✏️ {code} sent back to the worker to correct.").format(code=code)
    if application.decision_reason:
        text += "\n" + _("Note to the worker: {note}").format(
            note=escape(application.decision_reason)
        )
    return text


async def offer_freed_place(context: Context, offer: FreedPlaceOffer) -> None:
    """A place came free: tell every staff member why, and who was promoted into it, or offer
    them the first waiting one with a one-tap Approve (PROGRAM_WAITLIST_PROMOTION=staff)."""
    _ = context._
    markup = None
    if offer.promoted:
        text = _(
            "A place came free: {code}, first on the waiting list, was approved automatically."
        ).format(code=offer.code)
    else:
        text = _("A place is free. First on the waiting list: {code} — /tinjau {code}").format(
            code=offer.code
        )
        markup = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        _("✅ Approve"), callback_data=f"sv:ap:{offer.application_id}"
                    )
                ]
            ]
        )
    if offer.freed_code and offer.by_worker:
        why = _("{code} left the programme: consent withdrawn by the worker.").format(
            code=offer.freed_code
        )
        text = why + "\n" + text
    elif offer.freed_code:
        why = _("{code} was withdrawn from the programme by staff.").format(code=offer.freed_code)
        if offer.reason:
            why += " " + _("Reason: {reason}").format(reason=offer.reason)
        text = why + "\n" + text
    for user_id in offer.recipients:
        try:
            await context.bot.send_message(user_id, text, reply_markup=markup)
        except Exception:
            continue
