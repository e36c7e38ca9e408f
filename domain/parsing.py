"""The base error of every input parser and the text clean-up they share."""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Generic, TypeVar

ReasonT = TypeVar("ReasonT", bound=StrEnum)


class ParseError(ValueError, Generic[ReasonT]):
    """Input a worker typed could not be read: a machine `reason` and a worker-facing `message`.

    `message` is English marked with `N_()`; handlers translate it with `_()`. It never quotes the
    input, so the exception can be logged without leaking personal data.
    """

    def __init__(self, reason: ReasonT, message: str) -> None:
        super().__init__(reason, message)
        self.reason: ReasonT = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _digit_table() -> dict[int, str]:
    # Only the digit sets phone keyboards actually produce. Other "digits" such as superscripts
    # or circled numbers are refused rather than guessed (NFKC would quietly accept "①").
    starts = (0xFF10, 0x0660, 0x06F0)  # full-width, Arabic-Indic, Extended Arabic-Indic
    table = {}
    for start in starts:
        for offset in range(10):
            char = chr(start + offset)
            table[ord(char)] = str(unicodedata.decimal(char))
    return table


# Invisible characters that copy-paste from chat apps and PDFs leave inside numbers and names.
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
# Spaces that are not U+0020 but look like it (no-break, narrow no-break, ideographic, ...).
ODD_SPACES = "\u00a0\u2007\u2009\u202f\u3000"

# Dashes and minus signs that autocorrect or other keyboards put where "-" was meant.
DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"

_CLEAN_TABLE: dict[int, str | None] = {
    # Full-width ASCII (U+FF01-FF5E) from CJK and some Android keyboards, digits included.
    **{code: chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)},
    **_digit_table(),
    **{ord(char): "-" for char in DASHES},
    **dict.fromkeys(map(ord, ZERO_WIDTH)),
    **{ord(char): " " for char in ODD_SPACES},
}


def clean_text(text: str) -> str:
    """Make digits and full-width ASCII plain ASCII, drop zero-width characters, plain spaces."""
    return text.translate(_CLEAN_TABLE).strip()


def collapse_spaces(text: str) -> str:
    """Replace every run of whitespace with one space and trim."""
    return " ".join(text.split())
