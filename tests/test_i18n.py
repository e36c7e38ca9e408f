"""Catalogs: every string in the code is translated in `id` and present in `en`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from config.catalogs import Catalogs

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def _code_messages() -> set[str]:
    found: set[str] = set()
    for package in ("domain", "config", "storage", "usecases", "handlers", "bot"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def _catalog(language: str) -> dict[str, str]:
    path = ROOT / "locales" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language)
    entries: dict[str, str] = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        value = message.string if isinstance(message.string, str) else message.string[0]
        entries[key] = value
    return entries


@pytest.mark.parametrize("language", ["id", "en"])
def test_every_message_in_the_code_is_translated(language: str) -> None:
    """A string added to the code without a translation fails here, not in a worker's chat."""
    catalog = _catalog(language)
    missing = sorted(m for m in _code_messages() if not catalog.get(m))
    assert missing == []


@pytest.mark.parametrize("language", ["id", "en"])
def test_translations_keep_their_placeholders(language: str) -> None:
    """A translation that drops or renames `{name}` would crash at format time."""
    broken = [
        msgid
        for msgid, msgstr in _catalog(language).items()
        if msgstr and set(PLACEHOLDER.findall(msgid)) != set(PLACEHOLDER.findall(msgstr))
    ]
    assert broken == []


def test_indonesian_is_the_default_and_english_is_available() -> None:
    """Unknown or missing languages fall back to Bahasa Indonesia."""
    catalogs = Catalogs()
    welcome = "Start or continue registration"
    assert catalogs.get(None)._(welcome) == "Mulai atau lanjutkan pendaftaran"
    assert catalogs.get("fr")._(welcome) == "Mulai atau lanjutkan pendaftaran"
    assert catalogs.get("en-GB")._(welcome) == welcome


def test_an_empty_message_stays_empty_instead_of_becoming_the_catalog_header() -> None:
    """gettext("") returns the PO header; an unset label must not show it to anyone."""
    catalogs = Catalogs()
    assert catalogs.get("id")._("") == ""
    assert catalogs.get("en")._("") == ""


def test_stored_preference_wins_over_the_client_language() -> None:
    """A worker who chose English keeps it even on an Indonesian phone, and vice versa."""
    catalogs = Catalogs()
    assert catalogs.pick("en", "id").language == "en"
    assert catalogs.pick(None, "en").language == "en"
    assert catalogs.pick(None, None).language == "id"
