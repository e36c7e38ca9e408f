"""The marker for translatable text in pure modules and the rule that picks a user's language;
the catalogs themselves live in config."""

from __future__ import annotations

from collections.abc import Callable, Collection

# A translation function: English message in, the reader's language out.
Translate = Callable[[str], str]


def N_(message: str) -> str:
    """Mark a string for extraction without translating it (pure modules use this)."""
    return message


def choose_language(
    stored: str | None, telegram_code: str | None, available: Collection[str], default: str
) -> str:
    """The language to speak: the user's stored choice, else their Telegram client's
    (`en-GB` counts as `en`), else the default."""
    if stored is not None and stored in available:
        return stored
    code = (telegram_code or "").split("-")[0].lower()
    return code if code in available else default
