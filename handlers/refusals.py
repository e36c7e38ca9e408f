"""What a refused worker reads: the refusal in a few kind lines (the headline, one next step,
what else there is, whom to call) and the buttons under it. Figures come from settings."""

from __future__ import annotations

from datetime import date

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from domain.dates import MONTH_NAMES_EN, MONTH_NAMES_ID
from domain.eligibility import SELF_PAY_ROUTE, Decision, refusal_lines
from domain.reports import format_idr
from handlers.common import escape
from handlers.context import Context

# The callback data of "Try again": a new registration from the welcome.
RETRY = "retry"


def _month_year(value: str, context: Context) -> str:
    """`2027-03` as `Maret 2027` / `March 2027`."""
    month = date.fromisoformat(f"{value}-01")
    names = MONTH_NAMES_EN if context.tr.language == "en" else MONTH_NAMES_ID
    return f"{names[month.month]} {month.year}"


def refusal_params(context: Context) -> dict[str, str]:
    """The values every refusal line may name, from settings."""
    settings = context.settings
    return {
        "min_age": str(settings.program_min_age),
        "max_age": str(settings.program_max_age),
        "premium": format_idr(settings.self_pay_premium_idr),
        "until": _month_year(settings.self_pay_until, context),
        "phone": escape(settings.office_phone),
    }


def refusal_text(decision: Decision, context: Context) -> str:
    """The whole refusal, translated, for parse_mode HTML."""
    params = refusal_params(context)
    return "\n\n".join(context._(line).format(**params) for line in refusal_lines(decision))


def self_pay_text(context: Context) -> str:
    """The self-pay route alone (for a worker waiting for a place)."""
    return context._(SELF_PAY_ROUTE).format(**refusal_params(context))


def refusal_keyboard(context: Context) -> InlineKeyboardMarkup:
    """The buttons under a refusal, one per row; add a row here to offer another step."""
    rows = [[InlineKeyboardButton(context._("🔁 Try again"), callback_data=RETRY)]]
    return InlineKeyboardMarkup(rows)
