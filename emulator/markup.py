"""Reply markup checked as Telegram checks it: inline keyboards (labels, one action per button,
callback_data size, button URLs), reply keyboards and keyboard removal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from emulator.api import MAX_CALLBACK_DATA_BYTES, JSONDict, bad

_INLINE_ACTIONS: Final = (
    "callback_data",
    "url",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "callback_game",
    "pay",
    "web_app",
    "copy_text",
)


@dataclass(frozen=True)
class Markup:
    """A checked reply_markup: an inline keyboard, a reply keyboard's labels, or removal."""

    inline: JSONDict | None = None
    reply_keyboard: list[list[str]] | None = None
    remove_keyboard: bool = False


def _valid_button_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return bool(parts.hostname) and "." in (parts.hostname or "")
    return parts.scheme == "tg"


def parse_reply_markup(markup: Any) -> Markup:
    """Validate a reply_markup object like Telegram does."""
    if markup is None or markup == "":
        return Markup()
    if not isinstance(markup, dict):
        raise bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        return Markup(inline=_validate_inline_keyboard(markup["inline_keyboard"]))
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad("can't parse reply keyboard markup JSON object")
        labels: list[list[str]] = []
        for row in rows:
            labels.append([])
            for button in row:
                label = button.get("text") if isinstance(button, dict) else button
                if not isinstance(label, str) or not label:
                    raise bad('can\'t parse keyboard button: Field "text" must be of type String')
                labels[-1].append(label)
        return Markup(reply_keyboard=labels)
    if markup.get("remove_keyboard") is True:
        return Markup(remove_keyboard=True)
    if markup.get("force_reply") is True:
        return Markup()
    raise bad("can't parse reply keyboard markup JSON object")


def _validate_inline_keyboard(rows: Any) -> JSONDict | None:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad('can\'t parse inline keyboard button: Field "inline_keyboard" must be an Array')
    total = 0
    for row in rows:
        for button in row:
            total += 1
            if not isinstance(button, dict):
                raise bad(
                    "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                )
            label = button.get("text")
            if not isinstance(label, str):
                raise bad(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            if not label.strip():
                raise bad("BUTTON_TEXT_INVALID")
            actions = [name for name in _INLINE_ACTIONS if name in button]
            if not actions:
                raise bad("text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise bad(
                    "can't parse inline keyboard button: exactly one of the optional fields "
                    f"must be used, found {', '.join(actions)}"
                )
            if "callback_data" in button:
                data = button["callback_data"]
                if (
                    not isinstance(data, str)
                    or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
                ):
                    raise bad("BUTTON_DATA_INVALID")
            if "url" in button:
                url = button["url"]
                if not isinstance(url, str) or not _valid_button_url(url):
                    raise bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")
    if total > 100:
        raise bad("reply markup is too long")
    if total == 0:
        return None
    return {"inline_keyboard": rows}
