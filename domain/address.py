"""A domicile address a kelurahan officer could find: a street, gang, blok or RT/RW word and a
number, not "ok" or "rumah". Pure."""

from __future__ import annotations

import re

from domain.i18n import N_

# The shortest address that can name a place ("Gg. Haji 3").
ADDRESS_MIN = 8
# Words that say where in the kelurahan: street, alley, block, housing estate, neighbourhood.
PLACE_WORDS = frozenset(
    {
        "jl", "jln", "jalan", "gg", "gang", "lr", "lorong", "blok", "blk", "kp", "kmp", "kampung",
        "komplek", "kompleks", "komp", "perum", "perumahan", "cluster", "klaster", "griya",
        "rt", "rw", "no", "nomor", "dusun", "dsn", "desa", "kav", "kavling", "rusun", "asrama",
        "apartemen", "tower", "lantai", "pasar", "kontrakan", "kost", "kos", "gedung", "ruko",
    }
)  # fmt: skip
# "RT 01/RW 02", "01/02", "003/005": an RT/RW pair alone also places a house.
_RT_RW = re.compile(r"\d{1,3}\s*/\s*\d{1,3}")
_WORDS = re.compile(r"[^\W\d_]+")
ADDRESS_HINT = N_(
    "Please write an address someone could find: the street, gang or blok, the house number "
    "and the RT/RW, for example: Jl. Melati No. 5 RT 01/RW 02."
)


def is_findable_address(text: str) -> bool:
    """Whether a cleaned address names a place (a place word or an RT/RW pair) and a number,
    and is at least ADDRESS_MIN characters long."""
    if len(text) < ADDRESS_MIN or not any(char.isdigit() for char in text):
        return False
    words = {word.casefold() for word in _WORDS.findall(text)}
    return bool(words & PLACE_WORDS) or bool(_RT_RW.search(text))
