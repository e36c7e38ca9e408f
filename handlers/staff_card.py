"""The review card: /tinjau, /cari, the card's text and its buttons, dispatched from a table."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeGuard

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode

from domain.coverage import format_month
from domain.eligibility import DESIL_SCALE_LABELS, DesilScale, age_on, decode_reasons
from domain.flow import FIELD_LABELS, Step
from domain.i18n import N_
from domain.lifecycle import DECIDABLE_ON_CARD, Decision, EntryPoint
from domain.nik import InvalidNik, parse_nik
from domain.phones import format_phone_display
from domain.pii import hash_identifier, mask_nik
from domain.program import relation_label
from domain.reports import WIB, format_moment
from domain.roles import Role, StaffMember
from domain.text import is_ascii_number, strip_invisible
from handlers.common import answer_query, escape, message_of
from handlers.context import Context
from handlers.staff_access import in_scope, member_by_id
from handlers.staff_decisions import cancel_row, carry_out, fix_field_picker
from handlers.staff_queue import STAFF_STATUS_WORDS
from handlers.views import format_date, format_time, occupation_text
from storage.models import Application

# A name score from here up is the same name (rounding aside): no flag.
NAME_SAME = 0.999
CODE_PATTERN = re.compile(r"^[A-Z0-9]{1,8}-[0-9A-Z]{6}$", re.IGNORECASE)

REJECT_REASONS: dict[str, str] = {
    "not_informal": N_("Not an informal worker"),
    "documents": N_("Data does not match the documents"),
    "covered": N_("Already covered by BPJS Ketenagakerjaan"),
    "area": N_("Does not live in the programme area"),
}


# --- finding a card ----------------------------------------------------------------------------


async def review(update: Update, context: Context, member: StaffMember) -> None:
    """/tinjau [NUMBER]: the next application in priority order, or the one named."""
    message = message_of(update)
    args = context.args or []
    if args:
        application = await context.services.review.find(code=args[0])
        if application is None or not in_scope(member, application):
            await message.reply_text(context._("No application with that number."))
            return
    else:
        application = await _next_pending(context, member)
        if application is None:
            await message.reply_text(context._("Nothing is waiting for verification."))
            return
    await send_card(message, application, context, via="/tinjau", update_id=update.update_id)


async def _next_pending(context: Context, member: StaffMember) -> Application | None:
    skipped = (
        context.user_data.setdefault("skipped", set()) if context.user_data is not None else set()
    )
    services = context.services
    now = services.clock()
    # Two reviewers asking at once may both find the same head of the queue: the one whose
    # lease did not land looks again (a few times; the lease is a hint, the decision guarded).
    for _attempt in range(3):
        held = await services.card_leases.held_by_others(reviewer_id=member.user_id, now=now)
        entries = await services.review.queue(
            limit=1, kecamatan=member.kecamatan or None, exclude=sorted({*skipped, *held})
        )
        if not entries:
            return None
        application_id = entries[0].application_id
        if await services.card_leases.take(
            application_id=application_id, reviewer_id=member.user_id, now=now
        ):
            break
    return await services.review.get(application_id=application_id)


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
    if application is None or not in_scope(member, application):
        await message.reply_text(context._("No application found."))
        return
    await send_card(message, application, context, via="/cari", update_id=update.update_id)


# --- the card ----------------------------------------------------------------------------------


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
            status=escape(_(STAFF_STATUS_WORDS.get(application.status, application.status))),
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
            desil=escape(desil_text(application, context)),
            region=escape(regions.name(application.dtsen_kode_wilayah or "") or "-"),
            score=f"{round((flags.name_score or 0) * 100)}%",
        ),
    ]
    if application.dtsen_work:
        lines.append(_("DTSEN work: {work}").format(work=escape(application.dtsen_work)))
    risks = []
    if ktp_outside(application, context.settings.program_region_code):
        risks.append(
            escape(
                _("KTP outside the city (regency code {code})").format(
                    code=application.dtsen_ktp_regency
                )
            )
        )
    if flags.same_phone:
        risks.append(
            _("same phone number as {count} other person(s) (other NIKs)").format(
                count=flags.same_phone
            )
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
    risks += name_flags(flags.name_score, context)
    if application.identity_mismatch_at is not None:
        # The worker's corrections failed the check until the daily limit: data unchanged.
        risks.append(_("identity correction did not match DTSEN"))
    if application.recheck_flag:
        # A newer DTSEN table no longer supports the application: staff decide, nothing is
        # refused automatically.
        findings = "; ".join(
            escape(_(reason.staff_template).format(**reason.params))
            for reason in decode_reasons(application.recheck_flag)
        )
        risks.append(
            _("fails the DTSEN re-check after the last import: {findings}").format(
                findings=findings
            )
        )
    # The exact findings of the DTSEN check (the worker only saw the neutral wording).
    risks.extend(
        escape(_(reason.staff_template).format(**reason.params))
        for reason in decode_reasons(application.eligibility_reasons)
    )
    if risks:
        lines.append("⚠️ " + _("Risk flags: {flags}").format(flags="; ".join(risks)))
    lines += cover_lines(application, context)
    lines.extend(await override_lines(application, context))
    lines += await nik_history_lines(application, context)
    if application.decided_at is not None:
        lines.append(
            _("Last decision by {actor} at {when}").format(
                actor=application.decided_by or "-",
                when=format_time(application.decided_at),
            )
        )
    return "\n".join(lines)


def cover_lines(application: Application, context: Context) -> list[str]:
    """How far premiums are paid (BPJS's member list), and when cover lapsed."""
    _ = context._
    lines = []
    if application.paid_through is not None:
        lines.append(
            _("Premiums paid through: {month}").format(
                month=format_month(application.paid_through, context.tr.language)
            )
        )
    if application.lapsed_at is not None:
        lines.append(
            "⚠️ "
            + _("Cover lapsed on {when} (three months unpaid)").format(
                when=format_date(application.lapsed_at.date(), context)
            )
        )
    return lines


def desil_text(application: Application, context: Context) -> str:
    """The desil as the card reads it, "nasional 4 (provinsi 6, kab/kota 8)": the scale the rule
    used first, then the other rankings DTSEN had (a one-file extract has only the national)."""
    if application.dtsen_desil is None:
        return "-"
    if application.dtsen_desil_scale not in {str(scale) for scale in DesilScale}:
        return str(application.dtsen_desil)  # assessed before the scales were recorded
    _ = context._
    used = DesilScale(application.dtsen_desil_scale)
    values = {
        DesilScale.NASIONAL: application.dtsen_desil_nasional,
        DesilScale.PROVINSI: application.dtsen_desil_provinsi,
        DesilScale.KABUPATEN_KOTA: application.dtsen_desil_kabupaten_kota,
    }
    text = f"{_(DESIL_SCALE_LABELS[used])} {application.dtsen_desil}"
    others = [
        f"{_(DESIL_SCALE_LABELS[scale])} {value}"
        for scale, value in values.items()
        if scale is not used and value is not None
    ]
    return f"{text} ({', '.join(others)})" if others else text


def ktp_outside(application: Application, region_code: str) -> bool:
    """Whether DTSEN's KTP regency lies outside the programme's regency (its first 4 digits):
    a reviewer's flag only, domicile is what the rule checks."""
    ktp = application.dtsen_ktp_regency
    return bool(ktp) and not (ktp or "").startswith(region_code[:4])


async def override_lines(application: Application, context: Context) -> list[str]:
    """An admin's manual inclusion after an appeal: an override of the DTSEN rule, shown."""
    if application.id is None:
        return []
    event = await context.services.appeals.override_of(application_id=application.id)
    if event is None:
        return []
    return [
        "⭐ "
        + context._("Manual inclusion (override) by {actor}: {reason}").format(
            actor=event.actor_id or "-", reason=escape(event.reason or "-")
        )
    ]


def name_flags(score: float | None, context: Context) -> list[str]:
    """ "Slightly different" only for a name that passed the match threshold without being
    the same; below the threshold the card says so plainly, with both percentages."""
    if score is None or score >= NAME_SAME:
        return []
    _ = context._
    threshold = context.settings.program_name_match_threshold
    if score >= threshold:
        return [_("name differs slightly from DTSEN")]
    return [
        _("name differs from DTSEN: {score}% alike, {threshold}% needed").format(
            score=round(score * 100), threshold=round(threshold * 100)
        )
    ]


async def nik_history_lines(application: Application, context: Context) -> list[str]:
    """Earlier applications of this NIK that were rejected, withdrawn, cancelled or found not
    eligible, with the date (WIB) and the reason."""
    earlier = await context.services.review.earlier_of_nik(application=application)
    if not earlier:
        return []
    _ = context._
    lines = ["📜 " + _("Earlier applications with this NIK:")]
    for entry in earlier:
        when = format_moment(entry.at, WIB)[:10]
        words = STAFF_STATUS_WORDS.get(entry.status)
        line = f"• <code>{escape(entry.code)}</code> · {escape(_(words) if words else '-')} {when}"
        if entry.reason:
            line += " · " + escape(entry.reason)
        lines.append(line)
    return lines


def card_buttons(application: Application, context: Context) -> InlineKeyboardMarkup | None:
    """Approve, reject, ask for a fix, skip; none on a card no button could act on."""
    if application.status not in DECIDABLE_ON_CARD:
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
    message: Message, application: Application, context: Context, *, via: str, update_id: int
) -> None:
    """Send the review card of one application; an admin's (full NIK) is audited with `via`,
    once per update (a redelivered update does not audit the same view twice)."""
    # Whoever the message is addressed to: the reviewer in this private chat.
    member = await member_by_id(message.chat.id, context)
    if sees_full_nik(member) and application.nik and application.id:
        await context.services.review.record_nik_view(
            actor_id=member.user_id, application_id=application.id, via=via, update_id=update_id
        )
    await message.reply_text(
        await card_text(application, context, member),
        parse_mode=ParseMode.HTML,
        reply_markup=card_buttons(application, context),
    )


# --- the card's buttons: `sv:<code>:<id>[:<extra>]` --------------------------------------------


@dataclass(frozen=True)
class Press:
    """One press of a card button, checked: a staff member, an application they may see."""

    update: Update
    context: Context
    member: StaffMember
    query: CallbackQuery
    message: Message
    application: Application
    extra: str

    @property
    def application_id(self) -> int:
        """The pressed card's application (stored, so it has an id)."""
        assert self.application.id is not None
        return self.application.id

    async def decide(
        self, decision: Decision, *, reason: str | None = None, field: str | None = None
    ) -> None:
        """Take `decision` on the card's application, as a card button may."""
        await answer_query(self.query)
        await carry_out(
            self.update.update_id,
            self.message,
            self.context,
            self.member,
            self.application_id,
            decision,
            EntryPoint.CARD,
            reason=reason,
            field=field,
        )

    async def no_longer_active(self) -> None:
        """The stale or malformed press is answered and nothing happens."""
        await answer_query(self.query, self.context._("This button is no longer active."))


async def _approve(press: Press) -> None:
    await press.decide(Decision.APPROVE)


async def _ask_reject_reason(press: Press) -> None:
    await answer_query(press.query)
    _ = press.context._
    application_id = press.application_id
    rows = [
        [InlineKeyboardButton(_(label), callback_data=f"sv:rr:{application_id}:{key}")]
        for key, label in REJECT_REASONS.items()
    ]
    rows.append(
        [InlineKeyboardButton(_("✍️ Type a reason"), callback_data=f"sv:rt:{application_id}")]
    )
    rows.append(cancel_row(application_id, press.context))
    await press.message.reply_text(
        _("Why is {code} rejected?").format(code=press.application.code),
        reply_markup=InlineKeyboardMarkup(rows),
    )


async def _reject_with_listed_reason(press: Press) -> None:
    if press.extra not in REJECT_REASONS:
        await press.no_longer_active()
        return
    # Stored in the default language: staff and the worker's notification both read it.
    reason = press.context.services.catalogs.get(None)._(REJECT_REASONS[press.extra])
    await press.decide(Decision.REJECT, reason=reason)


async def _await_typed_reason(press: Press) -> None:
    await answer_query(press.query)
    services = press.context.services
    await services.staff.await_reason(
        user_id=press.member.user_id,
        application_id=press.application_id,
        status_read=press.application.status,
        now=services.clock(),
    )
    await press.message.reply_text(
        press.context._("Type the reason for rejecting {code} (the worker will read it).").format(
            code=press.application.code
        )
    )


async def _ask_fix_field(press: Press) -> None:
    await answer_query(press.query)
    await press.message.reply_text(
        press.context._("Which field must the worker correct?"),
        reply_markup=fix_field_picker(press.application_id, press.context),
    )


async def _ask_fix_note(press: Press) -> None:
    """A field was chosen: the reviewer may type a note the worker reads with the request."""
    if press.extra not in FIELD_LABELS:
        await press.no_longer_active()
        return
    await answer_query(press.query)
    _ = press.context._
    services = press.context.services
    await services.staff.await_note(
        user_id=press.member.user_id,
        application_id=press.application_id,
        status_read=press.application.status,
        field=press.extra,
        now=services.clock(),
    )
    send = InlineKeyboardButton(
        _("✅ Send without a note"),
        callback_data=f"sv:fs:{press.application_id}:{press.extra}",
    )
    await press.message.reply_text(
        _(
            "{code}: the worker will be asked to correct {field}. Type a note for them (what "
            "is wrong, what to send), or send the request without one."
        ).format(code=press.application.code, field=_(FIELD_LABELS[Step(press.extra)])),
        reply_markup=InlineKeyboardMarkup(
            [[send], cancel_row(press.application_id, press.context)]
        ),
    )


async def _ask_for_fix(press: Press) -> None:
    if press.extra not in FIELD_LABELS:
        await press.no_longer_active()
        return
    await press.decide(Decision.FIX, field=press.extra)


async def _cancel(press: Press) -> None:
    await answer_query(press.query)
    await press.message.reply_text(press.context._("Cancelled: nothing was sent to the worker."))


async def _skip(press: Press) -> None:
    context = press.context
    if context.user_data is not None:
        context.user_data.setdefault("skipped", set()).add(press.application_id)
    await _show_next(press, via="skip")


async def _next(press: Press) -> None:
    await _show_next(press, via="next")


async def _show_next(press: Press, *, via: str) -> None:
    await answer_query(press.query)
    following = await _next_pending(press.context, press.member)
    if following is None:
        await press.message.reply_text(
            press.context._("Nothing else is waiting for verification.")
        )
    else:
        await send_card(
            press.message, following, press.context, via=via, update_id=press.update.update_id
        )


CARD_BUTTONS: dict[str, Callable[[Press], Coroutine[Any, Any, None]]] = {
    "ap": _approve,
    "rj": _ask_reject_reason,
    "rr": _reject_with_listed_reason,
    "rt": _await_typed_reason,
    "fx": _ask_fix_field,
    "ff": _ask_fix_note,
    "fs": _ask_for_fix,
    "cx": _cancel,
    "sk": _skip,
    "nx": _next,
}


async def card_action(update: Update, context: Context, member: StaffMember) -> None:
    """`sv:<code>:<id>[:<extra>]` from a review card, run by its entry in CARD_BUTTONS."""
    query = update.callback_query
    assert query is not None
    parts = (query.data or "").split(":")
    message = query.message if isinstance(query.message, Message) else None
    if len(parts) < 3 or not is_ascii_number(parts[2]) or message is None:
        await answer_query(query, context._("This button is no longer active."))
        return
    application = await context.services.review.get(application_id=int(parts[2]))
    button = CARD_BUTTONS.get(parts[1])
    if application is None or not in_scope(member, application) or button is None:
        await answer_query(query, context._("This button is no longer active."))
        return
    extra = parts[3] if len(parts) > 3 else ""
    await button(Press(update, context, member, query, message, application, extra))
