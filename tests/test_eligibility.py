"""Eligibility: every rule on its own, what staff see, and what the worker is (not) told."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.settings import load_settings
from domain.eligibility import (
    AGE_MESSAGE,
    ELIGIBLE_MESSAGE,
    NO_MATCH_MESSAGE,
    SELF_PAY_ROUTE,
    Decision,
    DesilScale,
    Reason,
    ReasonCode,
    Rules,
    age_on,
    assess,
    claim_key,
    desil_on_scale,
    normalize_gender,
    refusal_lines,
    worker_message,
)
from domain.parsing import ParseError
from testkit.factories import TODAY, make_people, make_person

RULES = Rules(region_code="3275", max_desil=5, min_age=18, max_age=64)
PERSON = make_person(7, name="Budi Santoso", birth_date=date(1985, 8, 17), gender="L", desil=3)


def test_a_person_matching_everything_is_eligible() -> None:
    """Same name, same dates, Kota Bekasi, desil 3, aged 41: eligible with a perfect score."""
    decision = assess(PERSON.claim(), PERSON.dtsen(), RULES, TODAY)
    assert Decision(True, (), 1.0, DesilScale.NASIONAL, 3) == decision
    assert worker_message(decision) == ELIGIBLE_MESSAGE


def test_synthetic_people_are_eligible_against_their_own_rows() -> None:
    """Every factory person (aged 20-60, desil 1-5, Kota Bekasi) passes against their own row."""
    for person in make_people(50, seed=3):
        assert assess(person.claim(), person.dtsen(), RULES, TODAY).eligible


def test_nik_not_in_dtsen_has_that_single_reason() -> None:
    """Without a row nothing else can be checked: NOT_IN_DTSEN only, and no name score."""
    decision = assess(PERSON.claim(), None, RULES, TODAY)
    assert (
        decision.eligible,
        decision.codes,
        decision.name_score,
    ) == (False, (ReasonCode.NOT_IN_DTSEN,), None)


def test_different_name_is_a_name_mismatch_with_its_score() -> None:
    """Agus Salim claiming Budi Santoso's row is refused; the score is kept for staff."""
    decision = assess(PERSON.claim(name="Agus Salim"), PERSON.dtsen(), RULES, TODAY)
    assert decision.codes == (ReasonCode.NAME_MISMATCH,)
    assert decision.name_score is not None
    assert decision.name_score < 0.6
    assert {"score", "threshold"} == set(decision.reasons[0].params)


def test_titles_typos_and_word_order_in_the_name_still_match() -> None:
    """Bpk. Santosa Budi, S.E. is close enough to BUDI SANTOSO."""
    decision = assess(PERSON.claim(name="Bpk. Santoso Budi, S.E."), PERSON.dtsen(), RULES, TODAY)
    assert decision.eligible
    decision = assess(PERSON.claim(name="Budi Santosa"), PERSON.dtsen(), RULES, TODAY)
    assert decision.eligible
    assert decision.name_score is not None
    assert 0.85 <= decision.name_score < 1.0


def test_stricter_name_threshold_refuses_a_typo() -> None:
    """The threshold comes from the rules."""
    strict = replace(RULES, name_threshold=0.99)
    decision = assess(PERSON.claim(name="Budi Santosa"), PERSON.dtsen(), strict, TODAY)
    assert decision.codes == (ReasonCode.NAME_MISMATCH,)


def test_birth_date_differing_from_dtsen_is_a_birth_date_mismatch() -> None:
    """NIK and claim agree but DTSEN holds another date."""
    record = PERSON.dtsen(tanggal_lahir=date(1985, 8, 18))
    decision = assess(PERSON.claim(), record, RULES, TODAY)
    assert decision.codes == (ReasonCode.BIRTH_DATE_MISMATCH,)
    assert decision.reasons[0].params == {"claimed": "1985-08-17", "dtsen": "1985-08-18"}


def test_birth_date_differing_from_the_nik_is_a_nik_date_mismatch() -> None:
    """DTSEN and claim agree but the NIK encodes another date."""
    other = make_person(7, birth_date=date(1985, 8, 18), gender="L")
    claim = replace(PERSON.claim(), nik=other.claim().nik)
    decision = assess(claim, PERSON.dtsen(), RULES, TODAY)
    assert decision.codes == (ReasonCode.NIK_DATE_MISMATCH,)


def test_claimed_date_differing_from_both_gives_both_mismatches() -> None:
    """A wrong typed date disagrees with DTSEN and with the NIK."""
    decision = assess(PERSON.claim(birth_date=date(1986, 8, 17)), PERSON.dtsen(), RULES, TODAY)
    assert decision.codes == (ReasonCode.BIRTH_DATE_MISMATCH, ReasonCode.NIK_DATE_MISMATCH)


def test_domicile_outside_the_programme_area_is_refused() -> None:
    """A Kabupaten Bekasi (32.16) resident is outside Kota Bekasi (32.75)."""
    decision = assess(PERSON.claim(), PERSON.dtsen(kode_wilayah="3216011001"), RULES, TODAY)
    assert decision.codes == (ReasonCode.OUTSIDE_REGION,)
    assert decision.reasons[0].params == {"region": "3216011001", "programme_region": "3275"}


def test_domicile_is_read_from_dtsen_not_from_the_nik_prefix() -> None:
    """A NIK first issued in Bandung (3273) belongs to a Bekasi resident now: eligible."""
    moved = make_person(7, district="327301", name="Budi Santoso", birth_date=date(1985, 8, 17))
    decision = assess(moved.claim(), moved.dtsen(kode_wilayah="3275011001"), RULES, TODAY)
    assert decision.eligible


def test_dotted_domicile_code_is_accepted() -> None:
    """DTSEN extracts may carry Kemendagri's dots."""
    decision = assess(PERSON.claim(), PERSON.dtsen(kode_wilayah="32.75.01.1001"), RULES, TODAY)
    assert decision.eligible


def test_desil_above_the_maximum_is_refused() -> None:
    """Desil 6 with a maximum of 5 is DESIL_TOO_HIGH."""
    decision = assess(PERSON.claim(), PERSON.dtsen(desil=6), RULES, TODAY)
    assert decision.codes == (ReasonCode.DESIL_TOO_HIGH,)
    assert decision.reasons[0].staff_message == "Desil 6 is above the programme maximum 5"


def test_desil_equal_to_the_maximum_is_eligible() -> None:
    """The maximum itself is allowed."""
    assert assess(PERSON.claim(), PERSON.dtsen(desil=5), RULES, TODAY).eligible


def _born(birth: date) -> tuple[Decision, str]:
    person = make_person(7, name="Budi Santoso", birth_date=birth)
    decision = assess(person.claim(), person.dtsen(), RULES, TODAY)
    return decision, worker_message(decision)


def test_worker_under_the_minimum_age_is_too_young() -> None:
    """Turning 18 tomorrow is still 17 today."""
    decision, message = _born(date(2008, 11, 26))
    assert decision.codes == (ReasonCode.TOO_YOUNG,)
    assert message == AGE_MESSAGE


def test_worker_turning_18_today_is_eligible() -> None:
    """The 18th birthday counts."""
    assert _born(date(2008, 11, 25))[0].eligible


def test_worker_aged_64_is_eligible_and_65_too_old() -> None:
    """max_age is inclusive: 64 is in, 65 is out."""
    assert _born(date(1962, 11, 26))[0].eligible  # 64, turning 65 tomorrow
    decision, message = _born(date(1961, 11, 25))  # 65 today
    assert decision.codes == (ReasonCode.TOO_OLD,)
    assert message == AGE_MESSAGE


def test_gender_mismatch_is_a_flag_not_a_refusal() -> None:
    """A man's NIK against a DTSEN row saying P: still eligible, flagged for staff review."""
    decision = assess(PERSON.claim(), PERSON.dtsen(jenis_kelamin="Perempuan"), RULES, TODAY)
    assert decision.eligible
    assert decision.codes == (ReasonCode.GENDER_MISMATCH,)
    assert not decision.reasons[0].blocking
    assert worker_message(decision) == ELIGIBLE_MESSAGE


def test_unknown_dtsen_gender_value_raises_no_flag() -> None:
    """A value we cannot read is not evidence of a mismatch."""
    decision = assess(PERSON.claim(), PERSON.dtsen(jenis_kelamin="?"), RULES, TODAY)
    assert Decision(True, (), 1.0, DesilScale.NASIONAL, 3) == decision


@pytest.mark.parametrize(
    ("value", "gender"),
    [
        ("L", "L"),
        ("laki-laki", "L"),
        ("LAKI-LAKI", "L"),
        ("1", "L"),
        ("P", "P"),
        (" Perempuan ", "P"),
        ("2", "P"),
        ("", None),
        ("X", None),
    ],
)
def test_dtsen_gender_spellings_are_understood(value: str, gender: str | None) -> None:
    """Letters, words and BPS codes 1/2."""
    assert gender == normalize_gender(value)


def test_all_failures_are_reported_together() -> None:
    """Every broken rule is listed, in a fixed order, so staff see the whole picture."""
    record = PERSON.dtsen(
        nama="AGUS SALIM",
        tanggal_lahir=date(1990, 1, 1),
        jenis_kelamin="P",
        kode_wilayah="3216011001",
        desil=9,
    )
    claim = PERSON.claim(birth_date=date(2015, 1, 1))
    decision = assess(claim, record, RULES, TODAY)
    assert decision.codes == (
        ReasonCode.NAME_MISMATCH,
        ReasonCode.BIRTH_DATE_MISMATCH,
        ReasonCode.NIK_DATE_MISMATCH,
        ReasonCode.OUTSIDE_REGION,
        ReasonCode.DESIL_TOO_HIGH,
        ReasonCode.TOO_YOUNG,
        ReasonCode.GENDER_MISMATCH,
    )
    assert not decision.eligible


# --- the default rules (no PROGRAM_* set), at their edges --------------------------------------


@pytest.fixture
def default_rules() -> Rules:
    """The rules the registration applies when no PROGRAM_* variable is set."""
    return load_settings(env_file=None).eligibility_rules


def _assess_with(rules: Rules, *, birth: date = date(1985, 8, 17), desil: int = 3) -> Decision:
    person = make_person(7, name="Budi Santoso", birth_date=birth, desil=desil)
    return assess(person.claim(), person.dtsen(), rules, TODAY)


def test_default_rules_take_a_worker_of_65_until_the_day_they_turn_66(
    default_rules: Rules,
) -> None:
    """PROGRAM_MAX_AGE defaults to 65 and is inclusive: 65 on the day is in, 66 is out."""
    assert _assess_with(default_rules, birth=date(1961, 11, 25)).eligible  # 65 today
    assert _assess_with(default_rules, birth=date(1960, 11, 26)).eligible  # 65, 66 tomorrow
    decision = _assess_with(default_rules, birth=date(1960, 11, 25))  # 66 today
    assert decision.codes == (ReasonCode.TOO_OLD,)
    assert decision.reasons[0].params == {"age": 66, "max_age": 65}


def test_default_rules_take_a_worker_from_their_18th_birthday(default_rules: Rules) -> None:
    """PROGRAM_MIN_AGE defaults to 18: the birthday counts, the day before does not."""
    assert _assess_with(default_rules, birth=date(2008, 11, 25)).eligible  # 18 today
    decision = _assess_with(default_rules, birth=date(2008, 11, 26))  # 18 tomorrow
    assert decision.codes == (ReasonCode.TOO_YOUNG,)
    assert decision.reasons[0].params == {"age": 17, "min_age": 18}


def test_default_rules_take_desil_5_and_refuse_desil_6(default_rules: Rules) -> None:
    """PROGRAM_MAX_DESIL defaults to 5, itself allowed."""
    assert _assess_with(default_rules, desil=5).eligible
    assert _assess_with(default_rules, desil=6).codes == (ReasonCode.DESIL_TOO_HIGH,)


# --- what the worker is told -------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"record": None},
        {"nama": "AGUS SALIM"},
        {"tanggal_lahir": date(1985, 8, 18)},
        {"kode_wilayah": "3216011001"},
        {"desil": 10},
    ],
    ids=["not-found", "name", "birth-date", "region", "desil"],
)
def test_every_dtsen_refusal_gives_the_worker_the_same_message(change: dict[str, object]) -> None:
    """Not found, name, date, region and desil look alike, so trying NIKs reveals nothing."""
    record = None if "record" in change else PERSON.dtsen(**change)
    decision = assess(PERSON.claim(), record, RULES, TODAY)
    assert not decision.eligible
    assert worker_message(decision) == NO_MATCH_MESSAGE


def test_age_refusal_combined_with_a_dtsen_refusal_gives_the_neutral_message() -> None:
    """The age message appears only when age is the sole obstacle."""
    person = make_person(7, name="Budi Santoso", birth_date=date(2010, 1, 1))
    decision = assess(person.claim(), person.dtsen(desil=9), RULES, TODAY)
    assert worker_message(decision) == NO_MATCH_MESSAGE


def test_every_dtsen_refusal_names_the_next_step_the_update_and_self_pay_routes() -> None:
    """Not found, mismatch, desil and domicile: one next step, DTSEN's update routes, paying
    for oneself and the phone, in the same lines for each (they must not differ)."""
    changes: list[dict[str, object]] = [
        {"nama": "Agus Salim Wibowo"},
        {"kode_wilayah": "3216011001"},
        {"desil": 9},
    ]
    lines = {refusal_lines(assess(PERSON.claim(), None, RULES, TODAY))}
    lines |= {
        refusal_lines(assess(PERSON.claim(), PERSON.dtsen(**change), RULES, TODAY))
        for change in changes
    }
    [only] = lines
    text = " ".join(only)
    for words in ("try again", "Cek Bansos", "musyawarah kelurahan", "JMO", "Perisai"):
        assert words in text
    assert {"{premium}", "{until}", "{phone}"} <= set(re.findall(r"\{[a-z_]+\}", text))


def test_age_refusal_names_the_range_and_self_pay_only_for_the_too_young() -> None:
    """BPU members must join before 65: the too old are not sent to pay for themselves."""
    young = refusal_lines(_born(date(2008, 11, 26))[0])
    old = refusal_lines(_born(date(1950, 1, 1))[0])
    assert young[0] == old[0] == AGE_MESSAGE
    assert "{min_age}" in AGE_MESSAGE
    assert "{max_age}" in AGE_MESSAGE
    assert SELF_PAY_ROUTE in young
    assert SELF_PAY_ROUTE not in old


# --- staff messages ----------------------------------------------------------------------------


def test_every_reason_template_fills_from_its_params() -> None:
    """Each staff template names exactly the placeholders its params provide."""
    record = PERSON.dtsen(
        nama="AGUS SALIM",
        tanggal_lahir=date(1990, 1, 1),
        jenis_kelamin="P",
        kode_wilayah="3216011001",
        desil=9,
    )
    reasons = list(assess(PERSON.claim(birth_date=date(2015, 1, 1)), record, RULES, TODAY).reasons)
    reasons += assess(PERSON.claim(), None, RULES, TODAY).reasons
    reasons += _born(date(1950, 1, 1))[0].reasons
    assert {reason.code for reason in reasons} == set(ReasonCode)
    for reason in reasons:
        assert reason.staff_template.format(**reason.params) == reason.staff_message
        assert "{" not in reason.staff_message


def test_staff_template_is_a_plain_catalog_string() -> None:
    """The handler translates the template, then formats it; params are str or int."""
    reason = Reason(ReasonCode.DESIL_TOO_HIGH, {"desil": 7, "max_desil": 5})
    assert reason.staff_template == "Desil {desil} is above the programme maximum {max_desil}"
    assert all(isinstance(value, str | int) for value in reason.params.values())


# --- rules, ages and quota ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"region_code": ""},
        {"region_code": "32-75"},
        {"region_code": "327"},
        {"max_desil": 0},
        {"max_desil": 11},
        {"min_age": 65, "max_age": 64},
        {"min_age": -1},
        {"name_threshold": 0.0},
        {"name_threshold": 1.5},
    ],
)
def test_impossible_rules_are_refused_at_construction(bad: dict[str, Any]) -> None:
    """A misconfiguration fails at start-up, not on the first worker."""
    with pytest.raises(ValueError, match=next(iter(bad))):
        replace(RULES, **bad)


def test_dotted_programme_region_is_accepted() -> None:
    """Rules may be written with Kemendagri's dots."""
    assert assess(
        PERSON.claim(), PERSON.dtsen(), replace(RULES, region_code="32.75"), TODAY
    ).eligible


@pytest.mark.parametrize(
    ("birth", "today", "age"),
    [
        (date(1985, 8, 17), date(2026, 8, 16), 40),
        (date(1985, 8, 17), date(2026, 8, 17), 41),
        (date(2000, 2, 29), date(2026, 2, 28), 25),
        (date(2000, 2, 29), date(2026, 3, 1), 26),
        (date(2000, 2, 29), date(2028, 2, 29), 28),
        (date(2026, 11, 25), date(2026, 11, 25), 0),
    ],
)
def test_age_counts_completed_years(birth: date, today: date, age: int) -> None:
    """Birthdays are honoured; a 29 February birthday comes on 1 March in other years."""
    assert age == age_on(birth, today)


@given(st.lists(st.dates(), min_size=3, max_size=3).map(sorted))
def test_age_never_decreases_with_time(dates: list[date]) -> None:
    """A later `today` never gives a smaller age, and the age is never negative."""
    birth, earlier, later = dates
    assert 0 <= age_on(birth, earlier) <= age_on(birth, later)


def test_parse_errors_are_value_errors() -> None:
    """Handlers can catch ParseError or ValueError for any of the four parsers."""
    assert issubclass(ParseError, ValueError)


def test_claims_the_check_cannot_tell_apart_share_one_key() -> None:
    """Case, titles and abbreviations the name match ignores give the same claim key (one
    attempt); another name, date or NIK gives another; names in any script are keyed."""
    claim = PERSON.claim()
    same = {
        claim_key(replace(claim, name=name))
        for name in ("Budi Santoso", "BUDI SANTOSO", "H. Budi Santoso, S.Pd.")
    }
    other = make_person(8, birth_date=date(1985, 8, 17), gender="L").claim()
    different = {
        claim_key(replace(claim, name="Budi Santosa")),
        claim_key(replace(claim, birth_date=date(1985, 8, 18))),
        claim_key(replace(other, name="Budi Santoso")),
        claim_key(replace(claim, name="بودي سانتوسو")),
    }
    assert same == {claim_key(claim)}
    assert len(different) == 4
    assert claim_key(claim) not in different
    assert all(key.isascii() for key in different)


# --- the desil scale (PROGRAM_DESIL_SCALE) -----------------------------------------------------

V3_ROW = PERSON.dtsen(desil=4, desil_provinsi=6, desil_kabupaten_kota=8)


@pytest.mark.parametrize(
    ("scale", "desil", "eligible"),
    [
        (DesilScale.NASIONAL, 4, True),
        (DesilScale.PROVINSI, 6, False),
        (DesilScale.KABUPATEN_KOTA, 8, False),
    ],
)
def test_desil_rule_reads_the_configured_scale(
    scale: DesilScale, desil: int, eligible: bool
) -> None:
    """National 4, provincial 6, regency 8 against a maximum of 5: only the scale chosen counts,
    and the decision says which scale and value it compared."""
    decision = assess(PERSON.claim(), V3_ROW, replace(RULES, desil_scale=scale), TODAY)
    assert (eligible, scale, desil) == (decision.eligible, decision.desil_scale, decision.desil)
    if not eligible:
        assert decision.codes == (ReasonCode.DESIL_TOO_HIGH,)
        assert decision.reasons[0].params["desil"] == desil


@pytest.mark.parametrize("scale", [DesilScale.PROVINSI, DesilScale.KABUPATEN_KOTA])
def test_one_file_extract_falls_back_to_the_national_desil_and_says_so(
    scale: DesilScale,
) -> None:
    """A row without the provincial and regency rankings is judged on the national one, and the
    decision records "nasional" as the scale it used."""
    row = PERSON.dtsen(desil=3)
    assert desil_on_scale(row, scale) == (DesilScale.NASIONAL, 3)
    decision = assess(PERSON.claim(), row, replace(RULES, desil_scale=scale), TODAY)
    assert (
        decision.eligible,
        decision.desil_scale,
        decision.desil,
    ) == (True, DesilScale.NASIONAL, 3)


def test_regency_scale_can_admit_someone_the_national_scale_refuses() -> None:
    """National 7 but regency 2 (a poor family in a richer city): refused on the national
    scale, admitted on the regency one."""
    row = PERSON.dtsen(desil=7, desil_provinsi=6, desil_kabupaten_kota=2)
    assert not assess(PERSON.claim(), row, RULES, TODAY).eligible
    rules = replace(RULES, desil_scale=DesilScale.KABUPATEN_KOTA)
    assert assess(PERSON.claim(), row, rules, TODAY).eligible
