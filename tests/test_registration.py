"""Worker self-registration end to end: the real bot polling the emulator over HTTP."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from config.catalogs import Catalogs
from domain.flow import FIELD_LABELS, Step
from domain.lifecycle import Status
from domain.regions import load_regions
from emulator import BotMessage, EmulatedUser
from storage.models import Application
from testkit.factories import Person, make_person
from testkit.fakes import row_of, seed_dtsen
from testkit.harness import Harness

MONTHS_ID = [
    "Januari", "Februari", "Maret", "April", "Mei", "Juni",
    "Juli", "Agustus", "September", "Oktober", "November", "Desember",
]  # fmt: skip
CODE = re.compile(r"BKS-[0-9A-HJKMNP-TV-Z]{6}")
NO_MATCH = r"belum dapat dicocokkan dengan daftar penerima program"


def spaced(nik: str) -> str:
    """A NIK as workers type it: in groups of four."""
    return " ".join(nik[i : i + 4] for i in range(0, 16, 4))


def in_words(value: date) -> str:
    """`17 Agustus 1985`."""
    return f"{value.day} {MONTHS_ID[value.month - 1]} {value.year}"


async def seed(harness: Harness, *people: Person, **changes: object) -> None:
    """Put people into DTSEN, optionally with a field that disagrees with what they type."""
    services = harness.services
    await seed_dtsen(services.database, services.secret, [row_of(p, **changes) for p in people])


async def reach_nik(user: EmulatedUser) -> None:
    """/start, consent, and the NIK question."""
    await user.send("/start")
    await user.expect(r"Selamat datang")
    await user.press("✅ Setuju")
    await user.expect(r"\(1/9\) Kirim NIK")


async def give_identity(user: EmulatedUser, person: Person, *, name: str | None = None) -> None:
    """NIK, name and date of birth, the way a worker types them."""
    await user.send(spaced(person.nik))
    await user.expect(r"\(2/9\)")
    await user.send(name or person.name)
    await user.expect(r"\(3/9\)")
    await user.send(in_words(person.birth_date))


async def finish(
    user: EmulatedUser, person: Person, *, occupation: str = "Sopir", other: str | None = None
) -> str:
    """Every step after the eligibility check, up to the application number."""
    regions = load_regions()
    await user.expect(r"\(4/9\) Kirim nomor HP")
    await user.share_contact(person.phone)
    await user.expect(r"\(5/9\) Kirim alamat")
    await user.send("Jl. Melati No. 5 RT 01/RW 02")
    await user.expect(r"\(6/9\)")
    kecamatan = regions.district(person.kode_wilayah[:6])
    kelurahan = regions.village(person.kode_wilayah)
    assert kecamatan is not None
    assert kelurahan is not None
    await user.press(kecamatan.name)
    await user.expect(r"\(6/9\) Pilih kelurahan")
    await user.press(kelurahan.name)
    await user.expect(r"\(7/9\) Apa pekerjaan")
    await user.press(occupation)
    if other is not None:
        await user.expect(r"Tulis pekerjaan")
        await user.send(other)
    await user.expect(r"\(8/9\)")
    await user.send("Siti Aminah")
    await user.expect(r"\(9/9\)")
    await user.press("Suami/Istri")
    await user.expect(r"Periksa kembali data Anda")
    await user.press("✅ Kirim")
    sent = await user.expect(r"Pendaftaran Anda sudah dikirim")
    match = CODE.search(sent.text)
    assert match is not None
    return match.group(0)


async def reach_address(user: EmulatedUser, person: Person) -> None:
    """After the eligibility check: the phone (typed), up to the address question."""
    await user.expect(r"\(4/9\)")
    await user.send(person.phone)
    await user.expect(r"\(5/9\) Kirim alamat")


async def reach_heir(user: EmulatedUser, *, occupation: str = "Sopir") -> None:
    """After the address: any kecamatan and kelurahan, then the work, up to the heir
    question."""
    await user.expect(r"\(6/9\)")
    await user.press(re.compile(".+"))
    await user.expect(r"Pilih kelurahan")
    await user.press(re.compile("^(?!«).+"))
    await user.expect(r"\(7/9\)")
    await user.press(occupation)
    await user.expect(r"\(8/9\)")


async def reach_summary(
    user: EmulatedUser, person: Person, address: str, *, occupation: str = "Sopir"
) -> BotMessage:
    """/start to the summary: the identity, the phone (typed), `address`, any kelurahan,
    `occupation`, an heir who is a child; the summary message."""
    await reach_nik(user)
    await give_identity(user, person)
    await reach_address(user, person)
    await user.send(address)
    await reach_heir(user, occupation=occupation)
    await user.send("Siti Aminah")
    await user.expect(r"\(9/9\)")
    await user.press("Anak")
    return await user.expect(r"Periksa kembali")


async def applications_of(harness: Harness, user_id: int) -> list[Application]:
    """Every application row of a Telegram account."""
    async with harness.services.database.read() as session:
        result = await session.execute(
            sa.select(Application).where(Application.telegram_user_id == user_id)
        )
        return list(result.scalars())


@pytest.mark.parametrize(
    ("occupation", "code"),
    [
        ("Ojek online", "ojol"),
        ("Sopir", "sopir"),
        ("Kuli bangunan", "kuli_bangunan"),
        ("Pedagang kecil", "pedagang_kecil"),
        ("Pemulung", "pemulung"),
        ("Lainnya", "lainnya"),
    ],
)
async def test_eligible_worker_registers_and_gets_an_application_number(
    harness: Harness, occupation: str, code: str
) -> None:
    """The whole conversation, for each occupation, ends pending with a BKS- number."""
    person = make_person(11)
    await seed(harness, person)
    user = harness.user(200001)
    await reach_nik(user)
    await give_identity(user, person)
    other = "tukang cukur" if code == "lainnya" else None
    number = await finish(user, person, occupation=occupation, other=other)

    [stored] = await applications_of(harness, 200001)
    assert stored.status == Status.PENDING
    assert stored.code == number
    assert stored.occupation == code
    assert stored.occupation_other == other
    assert stored.nik == person.nik
    assert stored.phone == person.phone
    assert stored.kelurahan_code == person.kode_wilayah
    assert stored.dtsen_desil == person.desil
    assert stored.consent_version is not None
    assert stored.consent_at is not None


async def test_nothing_is_stored_before_consent(harness: Harness) -> None:
    """The welcome asks for consent first; refusing keeps no row at all."""
    user = harness.user(200002)
    await user.send("/start")
    welcome = await user.expect(r"Selamat datang")
    assert "UU PDP" in welcome.text
    assert welcome.button_labels() == [
        "✅ Setuju",
        "Tidak setuju",
        "ℹ️ Selengkapnya tentang data Anda",
    ]
    await user.press("Tidak setuju")
    await user.expect(r"tidak ada data yang disimpan")
    assert await applications_of(harness, 200002) == []


async def test_consent_message_keeps_its_text_records_the_choice_and_asks_the_nik(
    harness: Harness,
) -> None:
    """Setuju turns the consent message into a record of it, followed by the NIK question."""
    user = harness.user(200003)
    await user.send("/start")
    welcome = await user.expect(r"Selamat datang")
    await user.press("✅ Setuju")
    asked = await user.expect(r"\(1/9\) Kirim NIK")
    assert asked.message_id == welcome.message_id
    assert "UU PDP" in asked.text
    assert "✅ Setuju" in asked.text
    assert asked.button_labels() == []
    assert [m.message_id for m in user.messages() if m.from_bot] == [welcome.message_id]


async def test_first_screen_is_short_names_city_and_programme_and_keeps_details_behind_a_button(
    harness: Harness,
) -> None:
    """At most ~400 characters before the first question; the whole consent text one tap away,
    and agreeing there records that text."""
    user = harness.user(200004)
    await user.send("/start")
    welcome = await user.expect(r"Selamat datang")
    assert len(welcome.text) <= 400
    assert "Kota Bekasi" in welcome.text
    assert "BPJS Ketenagakerjaan Pekerja Rentan" in welcome.text
    assert "usia 18-65" in welcome.text
    await user.press("ℹ️ Selengkapnya tentang data Anda")
    details = await user.expect(r"Berapa lama")
    assert details.message_id == welcome.message_id
    assert details.button_labels() == ["✅ Setuju", "Tidak setuju"]
    await user.press("✅ Setuju")
    asked = await user.expect(r"\(1/9\) Kirim NIK")
    assert "Berapa lama" in asked.text


INELIGIBLE_CASES = {
    "not_in_dtsen": (None, {}, None),
    "name_mismatch": ("name", {}, "name_mismatch"),
    "birth_date_mismatch": (None, {"tanggal_lahir": date(1980, 1, 2)}, "birth_date_mismatch"),
    "desil_too_high": (None, {"desil": 9}, "desil_too_high"),
    "outside_region": (None, {"kode_wilayah": "3216011001"}, "outside_region"),
}


# What a reviewer reads on the card of each refusal (the worker only saw the neutral wording).
STAFF_FINDINGS = {
    "not_in_dtsen": "NIK tidak ditemukan di data DTSEN",
    "name_mismatch": "Kemiripan nama dengan DTSEN",
    "birth_date_mismatch": "berbeda dengan DTSEN (1980-01-02)",
    "desil_too_high": "Desil 9 di atas batas maksimal program 5",
    "outside_region": "Domisili DTSEN 3216011001 di luar wilayah program 3275",
}


@pytest.mark.parametrize("case", sorted(INELIGIBLE_CASES))
async def test_ineligible_worker_reads_the_neutral_wording_and_staff_see_the_reason(
    harness: Harness, case: str
) -> None:
    """Not found, mismatches, desil and region all read the same; the row keeps the reason."""
    typed_name, dtsen_changes, expected_code = INELIGIBLE_CASES[case]
    person = make_person(21)
    if case != "not_in_dtsen":
        await seed(harness, person, **dtsen_changes)
    user = harness.user(200010)
    await reach_nik(user)
    await give_identity(user, person, name="Agus Salim Wibowo" if typed_name else None)
    reply = await user.expect(NO_MATCH)
    assert "desil" not in reply.text.lower()

    [stored] = await applications_of(harness, 200010)
    assert stored.status == Status.INELIGIBLE
    codes = [item["code"] for item in json.loads(stored.eligibility_reasons or "[]")]
    assert codes == [expected_code or "not_in_dtsen"]
    reviewer = harness.user(900002)
    await reviewer.send(f"/cari {person.nik}")
    card = await reviewer.expect(r"Pendaftaran - · tidak memenuhi syarat")
    assert STAFF_FINDINGS[case] in card.text
    assert "Project-Id-Version" not in card.text
    # Nothing a reviewer could press would change a refused application.
    assert card.button_labels() == []


async def test_refused_worker_reads_one_next_step_the_other_routes_and_the_office_phone(
    harness: Harness,
) -> None:
    """Not found and desil read exactly alike: try again, DTSEN's update routes, paying for
    oneself at the configured premium and month, and the office's number."""
    texts = []
    for user_id, changes in ((200011, None), (200012, {"desil": 9})):
        person = make_person(user_id)
        if changes is not None:
            await seed(harness, person, **changes)
        user = harness.user(user_id)
        await reach_nik(user)
        await give_identity(user, person)
        reply = await user.expect(NO_MATCH)
        assert reply.button_labels() == ["🔁 Coba lagi"]
        texts.append(reply.text)
    first, second = texts
    assert first == second
    for words in ("coba lagi", "Cek Bansos", "musyawarah kelurahan", "Rp8.400", "Maret 2027"):
        assert words in first
    assert "JMO" in first
    assert "Telepon 1500444" in first


async def test_worker_with_a_name_one_vowel_off_is_reminded_and_may_try_again(
    harness: Harness,
) -> None:
    """ "Dewi Nugraha" for DTSEN's "DEWI NUGROHO": the refusal says to copy the name as on the
    KTP and check the birth date (not which one failed), and Coba lagi leads to a second try
    that passes."""
    person = make_person(66, gender="P", name="DEWI NUGROHO")
    await seed(harness, person)
    user = harness.user(200065)
    await reach_nik(user)
    await give_identity(user, person, name="Dewi Nugraha")
    refusal = await user.expect(NO_MATCH)
    assert "persis seperti di KTP" in refusal.text
    assert "periksa tanggal lahir" in refusal.text
    await user.press("🔁 Coba lagi")
    await user.expect(r"Selamat datang")
    await user.press("✅ Setuju")
    await user.expect(r"\(1/9\) Kirim NIK")
    await give_identity(user, person, name="Dewi Nugroho")
    await user.expect(r"\(4/9\)")
    statuses = sorted(str(a.status) for a in await applications_of(harness, 200065))
    assert statuses == [Status.DRAFT, Status.INELIGIBLE]


@pytest.mark.parametrize(
    ("birth_date", "code"), [(date(1950, 3, 4), "too_old"), (date(2010, 3, 4), "too_young")]
)
async def test_worker_outside_the_age_range_is_told_so(
    harness: Harness, birth_date: date, code: str
) -> None:
    """Age is the worker's own information, so the message may say it is the age."""
    person = make_person(31, birth_date=birth_date)
    await seed(harness, person)
    user = harness.user(200020)
    await reach_nik(user)
    await give_identity(user, person)
    refusal = await user.expect(r"rentang usia")
    assert "rentang usia 18 sampai 65 tahun" in refusal.text
    assert "1500444" in refusal.text
    [stored] = await applications_of(harness, 200020)
    assert stored.status == Status.INELIGIBLE
    assert code in (stored.eligibility_reasons or "")


async def test_worker_with_wrong_birth_date_is_asked_again(harness: Harness) -> None:
    """An impossible date is explained, with an example, and the step stays."""
    person = make_person(41)
    await seed(harness, person)
    user = harness.user(200030)
    await reach_nik(user)
    await user.send(person.nik)
    await user.send(person.name)
    await user.expect(r"\(3/9\)")
    await user.send("31-02-1985")
    reply = await user.expect(r"Tanggal itu tidak ada")
    assert "(3/9)" in reply.text
    assert "Contoh" in reply.text
    await user.send(f"{person.birth_date:%d-%m-%Y}")
    await user.expect(r"\(4/9\)")


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("1234", r"tepat 16 angka"),
        ("3275 01xx 0885 0001", r"hanya berisi angka"),
        ("9975011708850001", r"bukan kode provinsi"),
        ("3275013102850001", r"bukan tanggal yang benar"),
        ("3275011708850000", r"tidak mungkin 0000"),
    ],
)
async def test_bad_nik_is_explained_and_asked_again(
    harness: Harness, typed: str, reason: str
) -> None:
    """Each kind of bad NIK gets its own short reason and the NIK question again."""
    user = harness.user(200040)
    await reach_nik(user)
    await user.send(typed)
    reply = await user.expect(reason)
    assert "(1/9)" in reply.text


async def test_worker_can_type_phone_instead_of_sharing_it(harness: Harness) -> None:
    """A typed 0812-3456-7890 is stored as +6281234567890; a landline is refused."""
    person = make_person(51)
    await seed(harness, person)
    user = harness.user(200050)
    await reach_nik(user)
    await give_identity(user, person)
    await user.expect(r"\(4/9\)")
    await user.send("021-8800-1234")
    await user.expect(r"bukan nomor HP")
    await user.send("0812-3456-7890")
    asked = await user.expect(r"\(5/9\) Kirim alamat")
    # The next question itself takes the contact button away: no "number saved" line.
    assert asked.remove_keyboard
    assert not any("Nomor tersimpan" in m.text for m in user.messages())
    [stored] = await applications_of(harness, 200050)
    assert stored.phone == "+6281234567890"


async def test_phone_changed_from_the_summary_still_takes_the_contact_button_away(
    harness: Harness,
) -> None:
    """Back at the summary (whose buttons cannot ride with a keyboard removal) a short line
    takes the contact button away first."""
    person = make_person(53)
    await seed(harness, person)
    user = harness.user(200053)
    await reach_summary(user, person, "Jl. Melati No. 5 RT 01/RW 02")
    await user.press("✏️ Ubah")
    await user.expect(r"Data mana")
    await user.press("Nomor HP")
    asked = await user.expect(r"\(4/9\)")
    assert asked.reply_keyboard == [["📱 Bagikan nomor saya"]]
    await user.share_contact("+6281298765432")
    saved = await user.expect(r"Nomor tersimpan: 0812-9876-5432")
    assert saved.remove_keyboard
    summary = await user.expect(r"Periksa kembali")
    assert "0812-9876-5432" in summary.text


async def test_a_button_answer_turns_its_question_into_the_next_one(harness: Harness) -> None:
    """One message per button step: the choice stays on record above the next question."""
    person = make_person(52)
    await seed(harness, person)
    user = harness.user(200051)
    await reach_nik(user)
    await give_identity(user, person)
    await user.expect(r"\(4/9\)")
    await user.share_contact(person.phone)
    await user.expect(r"\(5/9\)")
    await user.send("Jl. Melati No. 5 RT 01/RW 02")
    question = await user.expect(r"\(6/9\) Di mana")
    assert "Bekasi" in " ".join(question.button_labels())
    await user.press(re.compile(".+"))
    await user.expect(r"Pilih kelurahan")
    await user.press(re.compile("^(?!«).+"))
    work = await user.expect(r"\(7/9\) Apa pekerjaan")
    assert work.message_id == question.message_id
    await user.press("Sopir")
    following = await user.expect(r"\(8/9\) Siapa")
    assert following.message_id == question.message_id
    assert following.text.startswith("✅ Sopir")
    assert following.button_labels() == []
    await user.expect_no_reply(within=0.3)


async def test_someone_elses_contact_is_refused(harness: Harness) -> None:
    """Only the sender's own contact counts as their number."""
    person = make_person(52)
    await seed(harness, person)
    user = harness.user(200051)
    await reach_nik(user)
    await give_identity(user, person)
    await user.expect(r"\(4/9\)")
    await user.share_contact("+6281298765432", user_id=999999)
    await user.expect(r"nomor Anda sendiri")
    [stored] = await applications_of(harness, 200051)
    assert stored.phone is None


@pytest.mark.parametrize(
    "action",
    ["photo", "sticker", "voice", "location", "contact", "long", "emoji", "markup"],
)
async def test_anything_at_the_name_step_gets_a_short_re_prompt(
    harness: Harness, action: str
) -> None:
    """Photos, stickers, voice, locations, stray contacts, junk text: the step is asked again."""
    person = make_person(61)
    await seed(harness, person)
    user = harness.user(200060)
    await reach_nik(user)
    await user.send(person.nik)
    await user.expect(r"\(2/9\)")
    if action == "photo":
        await user.send_photo()
    elif action == "sticker":
        await user.send_sticker()
    elif action == "voice":
        await user.send_voice()
    elif action == "location":
        await user.send_location(-6.24, 106.99)
    elif action == "contact":
        await user.share_contact(person.phone)
    elif action == "long":
        await user.send("A" * 4000)
    elif action == "emoji":
        await user.send("😀😀😀")
    else:
        await user.send("<b>Budi</b> & *Santoso*")
    reply = await user.expect(r"\(2/9\)")
    assert reply.text.startswith("⚠️")
    [stored] = await applications_of(harness, 200060)
    assert stored.step == "name"
    assert stored.nama is None


async def test_markup_characters_in_an_address_are_shown_escaped(harness: Harness) -> None:
    """HTML-looking input is stored as typed and shown as text, never as markup."""
    person = make_person(62)
    await seed(harness, person)
    user = harness.user(200061)
    summary = await reach_summary(user, person, "Jl. <Mawar> & Co *1*")
    assert "Jl. <Mawar> & Co *1*" in summary.text


async def test_buttons_are_required_where_buttons_are_offered(harness: Harness) -> None:
    """Typing something that is no button's label at the occupation step re-sends them."""
    person = make_person(63)
    await seed(harness, person)
    user = harness.user(200062)
    await reach_nik(user)
    await give_identity(user, person)
    await reach_address(user, person)
    await user.send("Jl. Melati No. 5 RT 01/RW 02")
    await user.expect(r"\(6/9\)")
    await user.press(re.compile(".+"))
    await user.expect(r"Pilih kelurahan")
    await user.press(re.compile("^(?!«).+"))
    await user.expect(r"\(7/9\)")
    await user.send("astronot")
    reply = await user.expect(r"pilih salah satu tombol")
    assert "Ojek online" in reply.button_labels()


async def test_typed_answers_that_match_a_button_are_taken_as_the_press(harness: Harness) -> None:
    """ "SETUJU" under the welcome, the English "driver" in an Indonesian chat, the kecamatan's
    name in capitals, the back button's label: each does what the press does."""
    person = make_person(64)
    await seed(harness, person)
    user = harness.user(200063)
    await user.send("/start")
    await user.expect(r"Selamat datang")
    await user.send("  SETUJU ")
    await user.expect(r"\(1/9\) Kirim NIK")
    await give_identity(user, person)
    await reach_address(user, person)
    await user.send("Jl. Melati No. 5 RT 01/RW 02")
    await user.expect(r"\(6/9\)")
    kecamatan = load_regions().district(person.kode_wilayah[:6])
    assert kecamatan is not None
    await user.send(kecamatan.name.upper())
    await user.expect(r"\(6/9\) Pilih kelurahan")
    await user.send("« kembali ke kecamatan")
    await user.expect(r"\(6/9\) Di mana Anda tinggal")
    [stored] = await applications_of(harness, 200063)
    assert stored.kecamatan_code == kecamatan.code
    await user.press(kecamatan.name)
    await user.expect(r"\(6/9\) Pilih kelurahan")
    await user.press(re.compile("^(?!«).+"))
    await user.expect(r"\(7/9\)")
    await user.send("driver")
    await user.expect(r"\(8/9\)")
    [stored] = await applications_of(harness, 200063)
    assert stored.occupation == "sopir"


async def test_worker_changes_a_field_from_the_summary(harness: Harness) -> None:
    """Ubah -> Alamat -> new address -> back at the summary with the new value."""
    person = make_person(71)
    await seed(harness, person)
    user = harness.user(200070)
    await reach_summary(user, person, "Jl. Lama 1", occupation="Pemulung")
    await user.press("✏️ Ubah")
    await user.expect(r"Data mana")
    await user.press("Alamat")
    await user.expect(r"\(5/9\)")
    await user.send("Jl. Baru 2")
    summary = await user.expect(r"Periksa kembali")
    assert "Jl. Baru 2" in summary.text
    assert "Jl. Lama 1" not in summary.text


async def test_summary_lists_the_answers_in_the_order_the_questions_asked_them(
    harness: Harness,
) -> None:
    """The summary follows the flow's one table (address 5/9, place 6/9, work 7/9), not an
    order of its own that drifts when the questions move."""
    person = make_person(73)
    await seed(harness, person)
    user = harness.user(200072)
    summary = await reach_summary(
        user, person, "Jl. Melati No. 5 RT 01/RW 02", occupation="Pemulung"
    )

    _ = Catalogs().get("id")._
    labels = [_(label) for step, label in FIELD_LABELS.items() if step is not Step.HEIR_RELATION]
    shown = [line.split(":", 1)[0] for line in summary.text.splitlines()]
    assert labels == [label for label in shown if label in labels]


async def test_kelurahan_keyboard_has_a_way_back(harness: Harness) -> None:
    """A worker who picked the wrong kecamatan goes back and picks another."""
    person = make_person(72)
    await seed(harness, person)
    user = harness.user(200071)
    await reach_nik(user)
    await give_identity(user, person)
    await reach_address(user, person)
    await user.send("Jl. Melati No. 5 RT 01/RW 02")
    await user.expect(r"\(6/9\)")
    await user.press("Bantargebang")
    await user.expect(r"Pilih kelurahan")
    await user.press("« Kembali ke kecamatan")
    keyboard = await user.expect(r"Pilih kecamatan")
    assert len(keyboard.button_labels()) == 12


async def test_cancel_in_the_middle_deletes_the_draft(harness: Harness) -> None:
    """/batal at any step leaves nothing half-saved."""
    person = make_person(81)
    await seed(harness, person)
    user = harness.user(200080)
    await reach_nik(user)
    await user.send(person.nik)
    await user.expect(r"\(2/9\)")
    await user.send("/batal")
    await user.expect(r"Pendaftaran dibatalkan")
    assert await applications_of(harness, 200080) == []
    await user.send("/status")
    await user.expect(r"belum punya pendaftaran")


async def test_same_nik_from_a_second_account_is_refused(harness: Harness) -> None:
    """A NIK registered by one account cannot be registered again by another."""
    person = make_person(91)
    await seed(harness, person)
    first = harness.user(200090)
    await reach_nik(first)
    await give_identity(first, person)
    await finish(first, person)
    second = harness.user(200091)
    await reach_nik(second)
    await second.send(person.nik)
    await second.expect(r"NIK ini tidak dapat didaftarkan dari akun ini")
    [original] = await applications_of(harness, 200090)
    assert original.status == Status.PENDING
    [draft] = await applications_of(harness, 200091)
    assert draft.nik is None


async def test_second_registration_from_the_same_account_is_refused(harness: Harness) -> None:
    """One Telegram account holds one live application; /start shows it instead."""
    person = make_person(92)
    await seed(harness, person, desil=1)
    user = harness.user(200092)
    await reach_nik(user)
    await give_identity(user, person)
    number = await finish(user, person)
    await user.send("/start")
    reply = await user.expect(r"sudah punya pendaftaran")
    assert number in reply.text
    assert len(await applications_of(harness, 200092)) == 1


async def test_status_shows_number_and_queue_position(harness: Harness) -> None:
    """A pending worker sees the number, 'menunggu verifikasi' and a queue place."""
    person = make_person(93)
    await seed(harness, person)
    user = harness.user(200093)
    await reach_nik(user)
    await give_identity(user, person)
    number = await finish(user, person)
    await user.send("/status")
    reply = await user.expect(r"menunggu verifikasi")
    assert number in reply.text
    assert "antrean verifikasi: 1" in reply.text


@pytest.mark.parametrize(
    ("status", "changes", "expected"),
    [
        (Status.APPROVED, {}, r"disetujui"),
        (Status.WAITLISTED, {}, r"daftar tunggu"),
        (Status.NEEDS_FIX, {}, r"perlu perbaikan"),
        (Status.REJECTED, {"decision_reason": "Bukan pekerja informal"}, r"Bukan pekerja"),
        (
            Status.ENROLLED,
            {"kpj_number": "12345678901", "coverage_start": date(2026, 12, 1)},
            r"12345678901[\s\S]*1 Desember 2026",
        ),
    ],
)
async def test_status_describes_each_decision(
    harness: Harness, status: Status, changes: dict[str, object], expected: str
) -> None:
    """Whatever staff decided, /status says it in words (with reason, KPJ, start date)."""
    person = make_person(94)
    await seed(harness, person)
    user = harness.user(200094)
    await reach_nik(user)
    await give_identity(user, person)
    await finish(user, person)
    async with harness.services.database.write() as session, session.begin():
        await session.execute(
            sa.update(Application)
            .where(Application.telegram_user_id == 200094)
            .values(status=status, **changes)
        )
    await user.send("/status")
    await user.expect(expected)


async def test_cover_starting_later_reads_as_future_and_times_are_in_wib(
    harness: Harness,
) -> None:
    """Enrolled in December for cover from 1 January: "mulai", not "sejak" (which it becomes
    once January has come); /datasaya gives the consent time in WIB."""
    person = make_person(92)
    await seed(harness, person)
    user = harness.user(200092)
    await reach_nik(user)
    await give_identity(user, person)
    await finish(user, person)
    async with harness.services.database.write() as session, session.begin():
        await session.execute(
            sa.update(Application)
            .where(Application.telegram_user_id == 200092)
            .values(
                status=Status.ENROLLED, kpj_number="12345678901", coverage_start=date(2027, 1, 1)
            )
        )
    harness.services.clock = lambda: datetime(2026, 12, 31, 16, 59, tzinfo=UTC)  # 23:59 WIB
    await user.send("/status")
    future = await user.expect(r"12345678901")
    assert "Terlindungi mulai 1 Januari 2027" in future.text
    harness.services.clock = lambda: datetime(2026, 12, 31, 17, 0, tzinfo=UTC)  # 1 Jan WIB
    await user.send("/status")
    await user.expect(r"Terlindungi sejak 1 Januari 2027")
    await user.send("/datasaya")
    data = await user.expect(r"Persetujuan diberikan")
    assert re.search(r"\d\d-\d\d-\d{4} \d\d:\d\d WIB", data.text)
    assert "UTC" not in data.text


async def test_status_of_an_ineligible_check_repeats_the_neutral_wording(
    harness: Harness,
) -> None:
    """The reason stays hidden from the worker after the fact too."""
    person = make_person(95)
    user = harness.user(200095)
    await reach_nik(user)
    await give_identity(user, person)
    await user.expect(NO_MATCH)
    await user.send("/status")
    reply = await user.expect(r"tidak memenuhi syarat")
    assert re.search(NO_MATCH, reply.text)


async def test_language_switch_is_remembered(harness: Harness) -> None:
    """/bahasa -> English: prompts come in English, also after a restart."""
    user = harness.user(200096)
    await user.send("/bahasa")
    await user.expect(r"Pilih bahasa")
    await user.press("English")
    await user.expect(r"Language set to English")
    await harness.restart()
    await user.send("/start")
    await user.expect(r"Welcome to BPJS Ketenagakerjaan Pekerja Rentan")


async def test_language_switch_asks_the_current_question_again_in_the_new_language(
    harness: Harness,
) -> None:
    """/bahasa in the middle of the form: the question comes again, in English."""
    user = harness.user(200098)
    await reach_nik(user)
    await user.send("/bahasa")
    await user.expect(r"Pilih bahasa")
    await user.press("English")
    await user.expect(r"Language set to English")
    asked = await user.expect(r"\(1/9\) Send your NIK")
    assert "Example" in asked.text
    await user.send("/bahasa")
    await user.expect(r"Choose your language")
    await user.press("Bahasa Indonesia")
    await user.expect(r"\(1/9\) Kirim NIK")


async def test_language_button_pressed_twice_sets_it_once_without_an_apology(
    harness: Harness,
) -> None:
    """A double tap (or the press again after a crash) finds the text already changed."""
    user = harness.user(200095)
    await user.send("/bahasa")
    choice = await user.expect(r"Pilih bahasa")
    await user.press("English")
    await user.expect(r"Language set to English")
    await user.press_data("lang:en", choice.message_id)
    await user.send("/bantuan")
    await user.expect(r"Help")
    # Nothing but the help between the two (no apology, in either language).
    replies = [e.message.text for e in user.transcript() if e.from_bot and e.kind == "message"]
    assert len(replies) == 2
    assert replies[1].startswith("Help")


async def test_my_data_shows_what_is_stored(harness: Harness) -> None:
    """/datasaya lists the stored fields and the consent."""
    person = make_person(97)
    await seed(harness, person)
    user = harness.user(200097)
    await reach_nik(user)
    await give_identity(user, person)
    await finish(user, person)
    await user.send("/datasaya")
    reply = await user.expect(r"Data Anda yang tersimpan")
    assert person.nik in reply.text
    assert person.name in reply.text
    assert "Persetujuan diberikan" in reply.text


async def test_unknown_command_in_the_middle_says_where_the_worker_is(harness: Harness) -> None:
    """An unknown command is named as such and the current question comes again, in one
    message."""
    user = harness.user(200098)
    await reach_nik(user)
    user.skip_to_end()
    await user.send("/foo")
    reply = await user.expect(r"tidak mengenal perintah[\s\S]*\(1/9\)")
    await user.expect_no_reply(within=0.3)
    assert user.replies_since_cursor() == []
    assert reply.text.index("tidak mengenal") < reply.text.index("(1/9)")


async def test_start_in_the_middle_continues_the_draft(harness: Harness) -> None:
    """/start halfway tells the worker where they are; nothing is lost."""
    person = make_person(99)
    user = harness.user(200099)
    await reach_nik(user)
    await user.send(person.nik)
    await user.expect(r"\(2/9\)")
    user.skip_to_end()
    await user.send("/start")
    # One message: where they are, then the question (not two, each a second of the chat's
    # share of Telegram's cap).
    await user.expect(r"belum selesai[\s\S]*\(2/9\) Kirim nama")
    await user.expect_no_reply(within=0.3)
    assert user.replies_since_cursor() == []


async def test_edited_message_is_not_an_answer(harness: Harness) -> None:
    """Editing an earlier answer changes nothing stored."""
    person = make_person(100)
    await seed(harness, person)
    user = harness.user(200100)
    await reach_nik(user)
    sent = await user.send(person.nik)
    await user.expect(r"\(2/9\)")
    await user.edit(sent["message_id"], "3275011708850001")
    await user.expect(r"tidak saya baca")
    [stored] = await applications_of(harness, 200100)
    assert stored.nik == person.nik
    assert stored.step == "name"


async def test_group_chat_is_told_to_use_a_private_chat_and_nothing_is_stored(
    harness: Harness,
) -> None:
    """In a group the bot answers once and stores nothing."""
    group = harness.emulator.group(-100500, "Grup Ojol")
    user = harness.user(200101)
    await group.send(user, "/start")
    await group.expect(r"chat pribadi")
    await group.send(user, "3275011708850001")
    assert await applications_of(harness, 200101) == []


async def test_old_button_after_moving_on_does_nothing(harness: Harness) -> None:
    """A keyboard from an earlier step (or a forged press) cannot skip or change a step."""
    person = make_person(102)
    await seed(harness, person)
    user = harness.user(200102)
    await reach_nik(user)
    await give_identity(user, person)
    await reach_address(user, person)
    await user.send("Jl. Melati No. 5 RT 01/RW 02")
    await user.expect(r"\(6/9\)")
    await user.press(re.compile(".+"))
    await user.expect(r"Pilih kelurahan")
    await user.press(re.compile("^(?!«).+"))
    occupation = await user.expect(r"\(7/9\)")
    await user.press("Sopir")
    await user.expect(r"\(8/9\)")
    await user.press_data("reg:occupation:pemulung", occupation.message_id)
    await user.press_data("reg:summary:send", occupation.message_id)
    await user.expect(r"\(8/9\)")
    [stored] = await applications_of(harness, 200102)
    assert (stored.occupation, stored.step, stored.status) == ("sopir", "heir_name", "draft")


@pytest.mark.parametrize("data", ["x", "consent:maybe", "erase:later", "sv", "🎉"])
async def test_button_with_data_no_handler_knows_is_answered(harness: Harness, data: str) -> None:
    """A forged or outdated press is answered (no endless spinner) and stores nothing."""
    user = harness.user(200777)
    await user.send("/bantuan")
    anchor = await user.expect(r"Bantuan")
    query_id = await user.press_data(data, anchor.message_id)
    # One chat's updates are handled in order: once this is answered, the press was handled.
    await user.send("/bantuan")
    await user.expect(r"Bantuan")
    assert harness.emulator.answered_callbacks[query_id] == (
        "Tombol ini sudah tidak aktif.",
        False,
    )
    assert await applications_of(harness, 200777) == []


@pytest.mark.parametrize("data", ["reg:nik:3275011708850001", "reg:nik:"])
async def test_forged_button_for_a_typed_step_is_refused_without_an_error(
    harness: Harness, data: str
) -> None:
    """The NIK step has no buttons: a press claiming one is answered and changes nothing."""
    user = harness.user(200778)
    await reach_nik(user)
    query_id = await user.press_data(data)
    await user.send("/status")
    await user.expect(r"Status")
    assert harness.emulator.answered_callbacks[query_id] == (
        "Tombol ini sudah tidak aktif.",
        False,
    )
    assert not [e for e in user.transcript() if e.from_bot and "gangguan" in e.message.text]
    [draft] = await applications_of(harness, 200778)
    assert (draft.step, draft.nik) == ("nik", None)


async def test_direction_override_and_invisible_letters_never_reach_the_record(
    harness: Harness,
) -> None:
    """A name with U+202E or a Hangul filler is asked again; an address keeps only its
    visible text, so the staff card reads as typed."""
    person = make_person(64)
    await seed(harness, person)
    user = harness.user(200063)
    await reach_nik(user)
    await user.send(spaced(person.nik))
    await user.expect(r"\(2/9\)")
    for typed in (f"{person.name}\u202e", f"{person.name}\u3164"):
        await user.send(typed)
        reply = await user.expect(r"\(2/9\)")
        assert reply.text.startswith("⚠️")
    await user.send(person.name)
    await user.expect(r"\(3/9\)")
    await user.send(in_words(person.birth_date))
    await reach_address(user, person)
    await user.send("Jl. Melati\u202e No. 5\u2066 RT 01\u200f")
    await reach_heir(user)
    await user.send("\u3164\u3164")
    await user.expect(r"\(8/9\)")
    [stored] = await applications_of(harness, 200063)
    assert (stored.nama, stored.alamat) == (person.name, "Jl. Melati No. 5 RT 01")
