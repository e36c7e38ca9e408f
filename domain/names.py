"""Personal names: accept the worker's own spelling, and compare names loosely for matching."""

from __future__ import annotations

import unicodedata
from difflib import SequenceMatcher
from enum import StrEnum

from domain.i18n import N_
from domain.parsing import ZERO_WIDTH, ParseError, clean_text
from domain.text import clean_free_text, has_invisible

MAX_NAME_LENGTH = 100
MIN_LETTERS = 2


class NameReason(StrEnum):
    """Why a name was refused."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    HAS_DIGITS = "has_digits"
    BAD_CHARACTERS = "bad_characters"
    TOO_SHORT = "too_short"


_MESSAGES: dict[NameReason, str] = {
    NameReason.EMPTY: N_("Please type your full name as written on your KTP."),
    NameReason.TOO_LONG: N_(
        "That name is longer than 100 characters. Please type your name as written on your KTP."
    ),
    NameReason.HAS_DIGITS: N_(
        "A name cannot contain digits. Please type your full name as written on your KTP."
    ),
    NameReason.BAD_CHARACTERS: N_(
        "Please use only letters, spaces and the marks . , ' - in your name, "
        "as written on your KTP."
    ),
    NameReason.TOO_SHORT: N_(
        "That name is too short. Please type your full name as written on your KTP."
    ),
}


class InvalidName(ParseError[NameReason]):
    """A name that cannot be accepted; `reason` says why."""

    def __init__(self, reason: NameReason, message: str | None = None) -> None:
        super().__init__(reason, _MESSAGES[reason] if message is None else message)


# Straight and typographic apostrophes: phone keyboards turn ' into ’ by themselves.
APOSTROPHES = "'\u2018\u2019\u02bc`"
_ALLOWED_MARKS = frozenset(".,-" + APOSTROPHES)


def parse_name(text: str) -> str:
    """The worker's own spelling, whitespace collapsed; raise `InvalidName` if it is not a name."""
    # The shared free-text rule: no bidi or invisible characters, marks limited, and NFC so
    # that a letter typed as "e" + combining accent counts as the single letter it is.
    raw = clean_text(text)
    # Direction overrides and invisible letters (Hangul fillers) make a name read differently
    # on a staff card than it was typed: ask again rather than guess.
    if has_invisible(raw):
        raise InvalidName(NameReason.BAD_CHARACTERS)
    name = clean_free_text(raw)
    if not name:
        raise InvalidName(NameReason.EMPTY)
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(NameReason.TOO_LONG)
    if any(unicodedata.category(char).startswith("N") for char in name):
        raise InvalidName(NameReason.HAS_DIGITS)
    letters = 0
    for char in name:
        category = unicodedata.category(char)
        if category.startswith("L"):
            letters += 1
        # Combining marks belong to the letter before them (accents, Arabic or Javanese vowels).
        elif not (category.startswith("M") or char == " " or char in _ALLOWED_MARKS):
            raise InvalidName(NameReason.BAD_CHARACTERS)
    if letters < MIN_LETTERS:
        raise InvalidName(NameReason.TOO_SHORT)
    return name


# fmt: off
# Honorifics and religious titles written before a name, as compact keys (no dots or spaces).
_PREFIX_TITLES = frozenset(
    {
        "h", "hj", "haji", "hajjah", "hajah",
        "dr", "drs", "dra", "ir", "prof",
        "kh", "ust", "ustad", "ustadz", "ustadzah", "ustazah",
        "tn", "tuan", "ny", "nyonya", "nn", "nona",
        "bpk", "bapak", "pak", "ibu", "bu", "sdr", "sdri", "sdra",
    }
)
# Academic degrees written after a name. Compact keys, so "S.Pd.", "S. Pd" and "SPd" all match.
# Keys that are also common name parts (such as "ma", a surname) are left out on purpose.
_SUFFIX_TITLES = frozenset(
    {
        "spd", "spdi", "sh", "shi", "se", "skom", "st", "ssi", "sag", "ssos", "sip",
        "sikom", "skm", "sked", "skep", "sfarm", "spsi", "sthi", "ssn", "sp",
        "mm", "mpd", "mpdi", "msi", "mh", "mkom", "mt", "mag", "msc", "mba", "mhum", "mkes",
        "amd", "amdkeb", "amdkep", "amk", "amkeb", "ak", "phd", "ners",
    }
)
# Abbreviations that stand for one full name part, so "Moch." and "Muhammad" compare equal.
_EXPANSIONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "m", "md", "mhd", "moh", "mohd", "moch", "mochammad", "mochamad", "mohammad",
            "mohamad", "mohammed", "muh", "muhd", "muhamad", "muchammad", "muhammed",
        ),
        "muhammad",
    ),
    "abd": "abdul",
}
# fmt: on


def _tokens(name: str) -> list[str]:
    """Lower-case ASCII-folded words: accents dropped, apostrophes removed, other marks split."""
    # NFKD before and after casefold: each can produce what the other has to undo ("ℌ" -> "H").
    text = unicodedata.normalize("NFKD", name)
    text = unicodedata.normalize("NFKD", text.casefold())
    kept = []
    for char in text:
        if char in APOSTROPHES or char in ZERO_WIDTH or unicodedata.category(char) == "Mn":
            continue  # Ma'ruf and Maruf are the same name
        kept.append(char if char.isalnum() else " ")
    return "".join(kept).split()


def _strip_titles(tokens: list[str]) -> list[str]:
    """Drop leading honorifics and trailing degrees, each possibly split over several tokens."""
    changed = True
    while changed and tokens:
        changed = False
        for size in (2, 1):
            if len(tokens) > size and "".join(tokens[:size]) in _PREFIX_TITLES:
                tokens, changed = tokens[size:], True
                break
        for size in (3, 2, 1):
            if len(tokens) > size and "".join(tokens[-size:]) in _SUFFIX_TITLES:
                tokens, changed = tokens[:-size], True
                break
    return tokens


def normalize_name(name: str) -> str:
    """The form used for matching: casefolded, unaccented, no titles, abbreviations expanded."""
    tokens = _strip_titles(_tokens(name))
    return " ".join(_EXPANSIONS.get(token, token) for token in tokens)


def _ratio(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def name_similarity(a: str, b: str) -> float:
    """How alike two names are, 0 to 1, ignoring titles, case, accents and word order."""
    left, right = normalize_name(a), normalize_name(b)
    if not left or not right:
        return 0.0  # a name that is only titles matches nothing, not everything
    if left == right:
        return 1.0
    # Sorting the words makes "Santoso Budi" equal "Budi Santoso"; keeping the typed order too
    # means a typo in a first letter (which moves the word when sorted) still scores well.
    in_order = _ratio(left, right)
    sorted_words = _ratio(" ".join(sorted(left.split())), " ".join(sorted(right.split())))
    return max(in_order, sorted_words)


def names_match(a: str, b: str, threshold: float = 0.85) -> bool:
    """Whether two names are alike enough to be the same person's."""
    return name_similarity(a, b) >= threshold


def _title_key(word: str) -> str:
    folded = word.lower() if word.isascii() else unicodedata.normalize("NFKD", word.casefold())
    return "".join(char for char in folded if char.isalnum())


def strip_titles(name: str) -> str:
    """The name as written without honorifics before it ("Bpk.", "Ibu", "H.", "Hj.", "Sdr")
    or degrees after it ("S.Pd.", ", S.E."): what a BPJS membership is registered under.
    A name that is only titles is kept as it is."""
    words = name.replace(",", " ").split()
    keys = [_title_key(word) for word in words]
    first, last = 0, len(words)
    changed = True
    while changed:
        changed = False
        if last - first > 1 and keys[first] in _PREFIX_TITLES:
            first, changed = first + 1, True
        for size in (3, 2, 1):
            if last - first > size and "".join(keys[last - size : last]) in _SUFFIX_TITLES:
                last, changed = last - size, True
                break
    return " ".join(words[first:last]) if words else name
