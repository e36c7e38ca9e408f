"""The marker for translatable text in pure modules; the catalogs themselves live in config."""

from __future__ import annotations

from collections.abc import Callable

# A translation function: English message in, the reader's language out.
Translate = Callable[[str], str]


def N_(message: str) -> str:
    """Mark a string for extraction without translating it (pure modules use this)."""
    return message
