"""/riwayat's lines: what happened to an application, when (WIB), by whom and why, in the
reviewer's language; never a raw action code, status code or JSON."""

from __future__ import annotations

from domain.eligibility import decode_reasons
from domain.flow import FIELD_LABELS, Step
from domain.i18n import N_
from domain.lifecycle import Status
from domain.reports import WIB, format_moment
from domain.roles import Role
from handlers.common import escape
from handlers.context import Context
from handlers.staff_access import member_by_id
from handlers.staff_queue import STAFF_STATUS_WORDS
from storage.models import Application, AuditEvent

# What each audited action reads as; {actor} is "1234 (admin)", "the worker" or "the system".
ACTION_WORDS: dict[str, str] = {
    "consent": N_("consent given by {actor}"),
    "submit": N_("submitted by {actor}"),
    "resubmit": N_("sent again after a correction by {actor}"),
    "approve": N_("approved by {actor}"),
    "reject": N_("rejected by {actor}"),
    "fix": N_("sent back to the worker to correct {field} by {actor}"),
    "withdraw": N_("withdrawn from the programme by {actor}"),
    "assess": N_("not eligible after the DTSEN check"),
    "correction_mismatch": N_("the worker's identity correction did not match DTSEN"),
    "enroll": N_("registered with BPJS Ketenagakerjaan (KPJ file) by {actor}"),
    "erase": N_("data erased at the worker's request"),
    "deregistered": N_("deregistration with BPJS Ketenagakerjaan marked done by {actor}"),
    "nik_view": N_("full NIK shown to {actor}"),
    "import_cohort": N_("imported from last year's participants"),
    "renew": N_("renewed by {actor}"),
    "claim_cohort": N_("taken over on Telegram by {actor}"),
    "denied": N_("refused action by {actor}"),
}
WAITLISTED_WORDS = N_("put on the waiting list by {actor} (all places taken)")
OTHER_WORDS = N_("changed by {actor}")


async def history_lines(
    application: Application, events: list[AuditEvent], context: Context
) -> list[str]:
    """One readable line per audit event, oldest first."""
    roles: dict[int, str] = {}
    return [await _line(application, event, context, roles) for event in events]


async def _actor(
    application: Application, actor_id: int | None, context: Context, roles: dict[int, str]
) -> str:
    _ = context._
    if actor_id is None:
        return _("the system")
    if actor_id == application.telegram_user_id:
        return _("the worker")
    if actor_id not in roles:
        member = await member_by_id(actor_id, context)
        if member is None:
            role = _("no longer staff")
        else:
            role = _("admin") if member.role is Role.ADMIN else _("reviewer")
        roles[actor_id] = f"{actor_id} ({role})"
    return roles[actor_id]


async def _line(
    application: Application, event: AuditEvent, context: Context, roles: dict[int, str]
) -> str:
    _ = context._
    actor = await _actor(application, event.actor_id, context, roles)
    template = ACTION_WORDS.get(event.action, OTHER_WORDS)
    if event.action == "approve" and event.to_status == Status.WAITLISTED:
        template = WAITLISTED_WORDS
    field, detail = "", event.reason or ""
    if event.action == "fix":
        # Audited as "address" or "address: the reviewer's note".
        name, _sep, detail = detail.partition(": ")
        label = FIELD_LABELS.get(Step(name)) if name in set(FIELD_LABELS) else None
        field = _(label) if label else name
    elif event.action == "assess":
        detail = "; ".join(
            _(reason.staff_template).format(**reason.params)
            for reason in decode_reasons(event.reason)
        )
    elif event.action not in ("reject", "withdraw"):
        # Other reasons are internal (a consent version, a file name): not shown.
        detail = ""
    text = _(template).format(actor=actor, field=field)
    if template is OTHER_WORDS and event.to_status:
        words = STAFF_STATUS_WORDS.get(event.to_status)
        text += " → " + (_(words) if words else event.to_status)
    line = f"{format_moment(event.at, WIB)} · {escape(text)}"
    if detail and event.action == "fix":
        line += " · " + escape(_("Note to the worker: {note}").format(note=detail))
    elif detail:
        line += " · " + escape(_("reason: {reason}").format(reason=detail))
    return line
