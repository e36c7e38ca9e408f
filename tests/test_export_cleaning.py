"""What goes to BPJS is clean: the DTSEN name without titles, a KPJ column, free text without
HTML or emoji; and the address question wants an address a kelurahan officer could find."""

from __future__ import annotations

import io
from datetime import date

import pytest

from domain.address import is_findable_address
from domain.exports import COLUMNS, ExportRow, export_text, write_csv
from domain.lifecycle import Status
from domain.names import strip_titles
from domain.pii import hash_identifier
from storage.engine import Database
from storage.exports import ExportRepository
from testkit.factories import make_person
from testkit.fakes import row_of, seed_dtsen
from testkit.harness import Harness
from tests.test_exports import BAHASA, SECRET, add, application, read_csv
from tests.test_registration import give_identity, reach_address, reach_nik, seed


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("Bpk. Budi Santoso", "Budi Santoso"),
        ("Ibu Siti Aminah", "Siti Aminah"),
        ("H. AHMAD DAHLAN", "AHMAD DAHLAN"),
        ("Hj. Siti Rohmah", "Siti Rohmah"),
        ("Sdr Joko Widodo", "Joko Widodo"),
        ("Drs. H. Ahmad, S.E., M.M.", "Ahmad"),
        ("Dewi Nugraha, S.Pd.", "Dewi Nugraha"),
        ("Ibu", "Ibu"),
    ],
)
def test_titles_before_and_degrees_after_a_name_are_removed(typed: str, kept: str) -> None:
    """Honorifics and degrees are not part of the name BPJS registers; a bare title stays."""
    assert strip_titles(typed) == kept


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("Jl. <b>Melati</b> No. 5 &amp; RT 01", "Jl. Melati No. 5 & RT 01"),
        ("Gg. Haji 3 🏠🙏", "Gg. Haji 3"),
        ("tukang 👨🏽\u200d🔧 cukur", "tukang cukur"),
        ("Blok C 🇮🇩 No. 2", "Blok C No. 2"),
        ("Jl. Melati No. 5°", "Jl. Melati No. 5°"),
    ],
)
def test_free_text_for_bpjs_loses_html_and_emoji(text: str, clean: str) -> None:
    """Tags, entities and emoji (with skin tones, joiners and flags) are dropped."""
    assert export_text(text) == clean


def test_csv_cells_are_clean_and_carry_the_kpj() -> None:
    """The name prefers DTSEN's without titles; address, heir and occupation are plain text;
    NO_KPJ holds the membership number."""
    row = ExportRow(
        nik="3275011708850001",
        nama="Bpk. budi santoso 😀",
        tanggal_lahir=date(1985, 8, 7),
        jenis_kelamin="L",
        alamat="Jl. <i>Melati</i> No. 5 🏠",
        kecamatan_code="327501",
        kelurahan_code="3275011001",
        phone="+6281234567890",
        occupation="lainnya",
        occupation_other="tukang <b>cukur</b> ✂️",
        heir_name="Ibu Siti Rahayu 💕",
        heir_relation="pasangan",
        code="BKS-4F7K2Q",
        kpj="12345678901",
        nama_dtsen="H. BUDI SANTOSO",
    )
    stream = io.BytesIO()
    write_csv([row], stream, translate=BAHASA)
    (cells,) = read_csv(stream.getvalue())
    assert "TEMPAT_LAHIR" not in cells
    assert cells["NO_KPJ"] == "12345678901"
    assert cells["NAMA"] == "BUDI SANTOSO"
    assert cells["ALAMAT"] == "Jl. Melati No. 5"
    assert cells["PEKERJAAN"] == "tukang cukur"
    assert cells["AHLI_WARIS"] == "Siti Rahayu"
    assert list(cells) == list(COLUMNS)


async def test_enrolled_export_has_the_dtsen_name_and_the_kpj(database: Database) -> None:
    """Rows read from the database carry the DTSEN name of their NIK and the KPJ; a NIK the
    extract no longer holds falls back to the typed name."""
    known = make_person(401)
    await seed_dtsen(database, SECRET, [row_of(known, nama="H. BUDI SANTOSO")])
    enrolled = application(
        Status.ENROLLED,
        nik=known.nik,
        nik_hash=hash_identifier(known.nik, SECRET),
        nama="Bpk Budi Santosa",
        kpj_number="12345678901",
    )
    unknown = application(Status.ENROLLED, nama="Ibu Sri Wahyuni", kpj_number="10987654321")
    await add(database, enrolled, unknown)
    rows = await ExportRepository(database).collect(statuses=(Status.ENROLLED,))
    stream = io.BytesIO()
    write_csv(rows, stream, translate=BAHASA)
    cells = read_csv(stream.getvalue())
    assert [(c["NAMA"], c["NO_KPJ"]) for c in cells] == [
        ("BUDI SANTOSO", "12345678901"),
        ("Sri Wahyuni", "10987654321"),
    ]


@pytest.mark.parametrize(
    "address",
    [
        "Jl. Melati No. 5 RT 01/RW 02",
        "Gg. Haji 3",
        "Blok C2 No. 14",
        "RT 03 RW 05 No. 12",
        "Kp. Rawa 001/004",
        "Perum Griya Asri C-12",
    ],
)
def test_a_findable_address_is_accepted(address: str) -> None:
    """A street, gang, blok or RT/RW word with a number is enough."""
    assert is_findable_address(address)


@pytest.mark.parametrize(
    "address", ["ok", "rumah", "Bekasi", "dekat masjid", "Jl. Melati", "12345678"]
)
def test_an_address_nobody_could_find_is_refused(address: str) -> None:
    """No place word or no number: not an address."""
    assert not is_findable_address(address)


async def test_worker_typing_ok_as_the_address_is_asked_again_kindly(harness: Harness) -> None:
    """ "ok" is not taken: the worker reads what is missing, with an example, and the same
    question; a real address then goes on."""
    person = make_person(402)
    await seed(harness, person)
    user = harness.user(210402)
    await reach_nik(user)
    await give_identity(user, person)
    await reach_address(user, person)
    await user.send("ok")
    again = await user.expect(r"Jl\. Melati No\. 5 RT 01/RW 02")
    assert "nomor rumah" in again.text
    assert "(5/9)" in again.text
    await user.send("Gg. Haji No. 3 RT 02/RW 05")
    await user.expect(r"\(6/9\)")
