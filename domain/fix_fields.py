"""The field a reviewer names in /perbaiki: Indonesian words as staff type them, or the English
step names. Pure."""

from __future__ import annotations

import re

from domain.flow import Step

# Words staff type for each field a worker can be asked to correct, compact (lower case, no
# spaces, dots, dashes or underscores): "tgl lahir", "tanggal_lahir" and "Tgl. Lahir" all match.
_ALIASES: dict[str, Step] = {
    **dict.fromkeys(("nik", "noktp", "nomorktp", "ktp"), Step.NIK),
    **dict.fromkeys(("nama", "namalengkap", "name"), Step.NAME),
    **dict.fromkeys(
        ("tanggallahir", "tgllahir", "tgllhr", "lahir", "ttl", "birthdate"), Step.BIRTH_DATE
    ),
    **dict.fromkeys(
        ("hp", "nohp", "nomorhp", "telepon", "telp", "notelp", "wa", "nowa", "phone"),
        Step.PHONE,
    ),
    **dict.fromkeys(("pekerjaan", "kerja", "profesi", "occupation"), Step.OCCUPATION),
    **dict.fromkeys(("kecamatan", "kelurahan", "kec", "kel", "wilayah"), Step.KECAMATAN),
    **dict.fromkeys(("alamat", "domisili", "address"), Step.ADDRESS),
    **dict.fromkeys(("ahliwaris", "waris", "namaahliwaris", "heirname"), Step.HEIR_NAME),
    **dict.fromkeys(
        ("hubungan", "hubunganahliwaris", "hubunganwaris", "heirrelation"), Step.HEIR_RELATION
    ),
}


def _compact(text: str) -> str:
    return re.sub(r"[\s._\-]+", "", text.casefold())


def read_fix_field(words: list[str]) -> tuple[Step, list[str]] | None:
    """The field the first words name (up to three words: "tgl lahir", "nama ahli waris") and
    the words after it (a note for the worker); None when they name no field."""
    for size in (3, 2, 1):
        if len(words) >= size and (step := _ALIASES.get(_compact("".join(words[:size])))):
            return step, words[size:]
    return None
