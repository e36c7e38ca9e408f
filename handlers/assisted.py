"""What the registration conversation needs to know when an operator answers for a worker:
their open assisted draft, and the words that differ for them."""

from __future__ import annotations

from handlers.common import escape
from handlers.context import Context
from storage.models import Application


async def assisted_draft_of(user_id: int, context: Context) -> Application | None:
    """The draft an operator is filling in for a worker; None for everyone else (known
    without a database read in a polling process: the operators are kept in memory)."""
    services = context.services
    if not await services.staff.is_operator(user_id=user_id):
        return None
    return await services.operators.assisted_draft(operator_id=user_id)


async def assisted_press(
    user_id: int, data: str, context: Context
) -> tuple[Application | None, str]:
    """An operator's press for a worker (`as:<draft id>:<step>:<value>`): their open assisted
    draft when the press names that very draft (else None, and the attempt is audited), and
    the rest as the worker's keyboards write it (`reg:<step>:<value>`)."""
    draft_id, _sep, rest = data.removeprefix("as:").partition(":")
    draft = await assisted_draft_of(user_id, context)
    if draft is None or str(draft.id) != draft_id:
        await context.services.review.record_denied(
            actor_id=user_id, action="button", detail=data[:60]
        )
        return None, ""
    return draft, f"reg:{rest}"


def submitted_for_worker_text(code: str, context: Context) -> str:
    """The operator sent the worker's application."""
    return context._(
        "✅ The worker's application has been sent.\n"
        "Application number: <b>{code}</b>\n"
        "Give the worker this number. You can check it with /status {code}; the worker "
        "can take it over from their own Telegram by registering with the same NIK "
        "and date of birth."
    ).format(code=escape(code))


def taken_over_text(code: str | None, context: Context) -> str:
    """The worker took over the application an operator registered for them."""
    return context._(
        "An operator registered application {code} for you. It is now linked to this "
        "Telegram account: send /status at any time to see where it stands, and we "
        "will message you here."
    ).format(code=escape(code or "-"))


def cancelled_for_worker_text(context: Context) -> str:
    """The operator cancelled the registration they were filling in."""
    return context._(
        "Registration for the worker cancelled; their answers have been deleted. Send "
        "/daftarkan to register a worker."
    )
