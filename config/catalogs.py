"""Gettext catalogs from `locales/`, compiled in memory at load time, one per language."""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from domain.i18n import choose_language

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"


@dataclass(frozen=True)
class Translator:
    """The catalog of one language: `_`, `ngettext` and the language code."""

    language: str
    catalog: gettext.NullTranslations

    def _(self, message: str) -> str:
        """Translate one message; an empty one stays empty."""
        # gettext("") is the catalog's header (Project-Id-Version: ...), never a translation.
        return self.catalog.gettext(message) if message else message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """Translate a message whose form depends on a count."""
        return self.catalog.ngettext(singular, plural, n)


def _compile(language: str) -> gettext.NullTranslations:
    po_path = resources.files("locales").joinpath(language, "LC_MESSAGES", "messages.po")
    if not po_path.is_file():
        return gettext.NullTranslations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


class Catalogs:
    """All languages, compiled once; `get()` picks one, falling back to the default."""

    def __init__(self, default: str = DEFAULT_LANGUAGE) -> None:
        self.default = default if default in LANGUAGES else DEFAULT_LANGUAGE
        self._translators = {lang: Translator(lang, _compile(lang)) for lang in LANGUAGES}

    def get(self, language: str | None) -> Translator:
        """The translator for a language code such as `id`, `en` or `en-US`."""
        code = (language or "").split("-")[0].lower()
        return self._translators.get(code) or self._translators[self.default]

    def every(self, message: str) -> tuple[str, ...]:
        """A message in every language (to recognise a button's label typed in any of them)."""
        return tuple(translator._(message) for translator in self._translators.values())

    def pick(self, stored: str | None, telegram_code: str | None) -> Translator:
        """Stored preference first, then the Telegram client's language, then the default."""
        return self._translators[
            choose_language(stored, telegram_code, self._translators, self.default)
        ]
