"""Free text people type (names, addresses, reasons): what is kept is visible and reads one way.

One rule for every stored text: no control or format characters (bidi overrides such as U+202E,
zero-width characters), no invisible "letters" (Hangul fillers), and at most a few combining
marks on one base character (Zalgo text stacks dozens, and they spill over other lines on a
staff card). Digits are checked separately: `str.isdigit()` is true for superscripts, which
`int()` refuses.
"""

from __future__ import annotations

import unicodedata

# Enough for real text (Vietnamese stacks two accents, some Indic and Javanese clusters three),
# far below what Zalgo text stacks.
MAX_MARKS_PER_BASE = 3

# Characters that draw nothing but are letters or marks, so their category does not give them
# away: Hangul fillers, the combining grapheme joiner, Khmer inherent vowels, Mongolian free
# variation selectors, the Braille blank and variation selectors.
INVISIBLE = frozenset(
    "\u115f\u1160\u3164\uffa0\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800"
    + "".join(chr(code) for code in range(0xFE00, 0xFE10))
)
# Control (includes tab and newline), format (bidi controls, zero-width characters, soft
# hyphen), private use, surrogates and unassigned code points.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})
_SPACE_CATEGORIES = frozenset({"Zs", "Zl", "Zp"})
_WHITESPACE_CONTROLS = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85")


def strip_invisible(text: str) -> str:
    """Drop control, format and invisible characters and marks beyond the limit per base;
    whitespace of any kind becomes one plain space. No other character changes."""
    kept: list[str] = []
    marks = 0
    for char in text:
        category = unicodedata.category(char)
        if char in _WHITESPACE_CONTROLS or category in _SPACE_CATEGORIES:
            kept.append(" ")
            marks = 0
        elif category in _DROPPED_CATEGORIES or char in INVISIBLE:
            continue
        elif category.startswith("M"):
            # A mark needs a base (not a space); once the base has its share, further marks
            # are dropped.
            if not kept or kept[-1] == " " or marks >= MAX_MARKS_PER_BASE:
                continue
            kept.append(char)
            marks += 1
        else:
            kept.append(char)
            marks = 0
    return " ".join("".join(kept).split())


def has_invisible(text: str) -> bool:
    """Whether `text` holds a control, format or invisible character (whitespace aside): for
    fields that refuse such text with a re-prompt rather than clean it."""
    return any(
        char not in _WHITESPACE_CONTROLS
        and (unicodedata.category(char) in _DROPPED_CATEGORIES or char in INVISIBLE)
        for char in text
    )


def clean_free_text(text: str) -> str:
    """Free text as it may be stored: compatibility forms folded (NFKC: full-width letters,
    ligatures), invisible characters dropped, marks limited, spaces collapsed, then NFC."""
    cleaned = strip_invisible(unicodedata.normalize("NFKC", text))
    # Composing again can only join marks to their base, never add any.
    return unicodedata.normalize("NFC", cleaned)


def is_clean(text: str) -> bool:
    """Whether `text` follows the rule: what `clean_free_text` produces always does."""
    marks = 0
    previous_is_base = False
    for char in text:
        category = unicodedata.category(char)
        if category in _DROPPED_CATEGORIES or char in INVISIBLE:
            return False
        if category.startswith("M"):
            marks += 1
            if not previous_is_base or marks > MAX_MARKS_PER_BASE:
                return False
        else:
            marks = 0
            previous_is_base = not char.isspace()
    return True


def is_ascii_number(text: str) -> bool:
    """Plain digits 0-9 only, the only digits `int()` should be given from a command or button.

    `"²".isdigit()` is true but `int("²")` raises; `isdecimal` alone still lets Arabic-Indic
    digits through, which staff never type into an id.
    """
    return bool(text) and text.isascii() and text.isdecimal()
