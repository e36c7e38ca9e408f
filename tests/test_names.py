"""Names: the worker's own spelling is kept; matching ignores titles, case, accents and order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.names import (
    InvalidName,
    NameReason,
    name_similarity,
    names_match,
    normalize_name,
    parse_name,
)
from testkit.factories import FAMILY_NAMES, FEMALE_NAMES, MALE_NAMES


def reason_for(text: str) -> NameReason:
    with pytest.raises(InvalidName) as error:
        parse_name(text)
    return error.value.reason


# --- parse_name --------------------------------------------------------------------------------


def test_name_keeps_the_workers_spelling_with_whitespace_collapsed() -> None:
    """Case and punctuation are the worker's; only the spacing is tidied."""
    assert parse_name("  Hj.  Siti\tNurhaliza,  S.Pd. ") == "Hj. Siti Nurhaliza, S.Pd."


@pytest.mark.parametrize(
    "typed",
    [
        "Budi",
        "Ma'ruf Amin",
        "Ma’ruf Amin",  # the apostrophe phone keyboards substitute
        "Nur-Aini",
        "Nguyễn Văn Thành",
        "José Ramos-Horta",
        "محمد علي",
        "Ni Luh Putu Ayu",
    ],
)
def test_names_of_any_script_with_usual_punctuation_are_accepted(typed: str) -> None:
    """Letters of any script, accents, and . , ' - are allowed."""
    assert parse_name(typed) == typed


def test_decomposed_accent_is_composed() -> None:
    """ "e" + combining acute is stored as the single letter é."""
    assert parse_name("Jose\u0301") == "José"


def test_zero_width_characters_are_removed_from_a_name() -> None:
    """Invisible characters from a paste do not end up in the record."""
    assert parse_name("Si\u200bti Nur\u00a0haliza") == "Siti Nur haliza"


@pytest.mark.parametrize("typed", ["", "   ", "\u200b\n"])
def test_empty_name_is_rejected(typed: str) -> None:
    """Nothing typed is EMPTY."""
    assert reason_for(typed) == NameReason.EMPTY


def test_name_longer_than_100_characters_is_rejected() -> None:
    """101 characters is TOO_LONG; 100 is fine."""
    assert reason_for("A" * 101) == NameReason.TOO_LONG
    assert parse_name("A" * 100) == "A" * 100


def test_name_longer_than_100_only_because_of_spaces_is_accepted() -> None:
    """The length counts the collapsed name."""
    assert parse_name("Budi" + " " * 200 + "Santoso") == "Budi Santoso"


@pytest.mark.parametrize(
    "typed", ["Budi2", "3275011708850001", "Budi Santoso 17-08-1985", "Siti ٣"]
)
def test_name_containing_digits_is_rejected(typed: str) -> None:
    """Digits (of any script) mean something else was typed: HAS_DIGITS."""
    assert reason_for(typed) == NameReason.HAS_DIGITS


@pytest.mark.parametrize(
    "typed",
    [
        "Budi 😀",
        "Budi_Santoso",
        "Budi@Santoso",
        "Budi\x07Santoso",
        "Budi\u202eSantoso",
        "<b>Budi</b>",
    ],
)
def test_name_with_symbols_or_control_characters_is_rejected(typed: str) -> None:
    """Emoji, symbols, control and direction-override characters are BAD_CHARACTERS."""
    assert reason_for(typed) == NameReason.BAD_CHARACTERS


@pytest.mark.parametrize("typed", ["B", "B.", "-'-", "., ."])
def test_name_with_fewer_than_two_letters_is_rejected(typed: str) -> None:
    """At least two letters make a name: TOO_SHORT."""
    assert reason_for(typed) == NameReason.TOO_SHORT


def test_every_name_reason_has_its_own_message() -> None:
    """No two reasons share worker-facing text."""
    assert len(NameReason) == len({InvalidName(reason).message for reason in NameReason})


# --- normalize_name ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("Hj. Siti Nurhaliza, S.Pd.", "siti nurhaliza"),
        ("SITI NURHALIZA", "siti nurhaliza"),
        ("Drs. H. Ahmad Fauzi, M.M.", "ahmad fauzi"),
        ("Prof. Dr. Ir. Bambang Wibowo, M.Si.", "bambang wibowo"),
        ("Dra. Rina Susanti, S.Pd.I", "rina susanti"),
        ("KH. Abdullah Faqih", "abdullah faqih"),
        ("Ust. Yusuf Maulana", "yusuf maulana"),
        ("Ustadz Yusuf Maulana", "yusuf maulana"),
        ("Ny. Dewi Lestari", "dewi lestari"),
        ("Bpk. Joko Susanto, S.E.", "joko susanto"),
        ("Ibu Sri Rahayu, A.Md.", "sri rahayu"),
        ("Tn. Hadi Gunawan S.H.", "hadi gunawan"),
        ("Nn. Putri Handayani, S.Kom.", "putri handayani"),
        ("Haji Slamet", "slamet"),
        ("Hajjah Wati", "wati"),
        ("Eko Prasetyo, S.T., M.Pd.", "eko prasetyo"),
        ("Iwan Setiawan, S.Ag.", "iwan setiawan"),
        ("Rudi Hartono, S.Sos.", "rudi hartono"),
        ("Indah Permata S. Pd", "indah permata"),
        ("Dr. Wulan Sari", "wulan sari"),
    ],
)
def test_titles_and_degrees_are_removed(typed: str, normalized: str) -> None:
    """Honorifics before and degrees after a name do not take part in matching."""
    assert normalize_name(typed) == normalized


@pytest.mark.parametrize(
    "variant",
    [
        "M. Rizki",
        "Moh. Rizki",
        "Moch. Rizki",
        "Mochammad Rizki",
        "Mohammad Rizki",
        "Mohamad Rizki",
        "Muh. Rizki",
        "Muhamad Rizki",
        "Mhd. Rizki",
        "Md. Rizki",
        "MUHAMMAD RIZKI",
    ],
)
def test_spellings_of_muhammad_are_one_name(variant: str) -> None:
    """The many abbreviations of Muhammad all expand to it."""
    assert normalize_name(variant) == "muhammad rizki"


@pytest.mark.parametrize("variant", ["Abd. Rahman", "Abd Rahman", "Abdul Rahman"])
def test_abd_is_abdul(variant: str) -> None:
    """Abd. and Abd are written for Abdul."""
    assert normalize_name(variant) == "abdul rahman"


def test_accents_case_and_apostrophes_do_not_matter() -> None:
    """José = JOSE and Ma'ruf = Maruf; hyphens separate words."""
    assert normalize_name("José Ma’ruf") == normalize_name("JOSE MARUF") == "jose maruf"
    assert normalize_name("Nur-Aini") == "nur aini"


def test_a_name_that_is_only_a_title_is_kept() -> None:
    """A title is only removed when a name remains after it."""
    assert normalize_name("Ibu") == "ibu"


def test_ma_is_not_mistaken_for_a_degree() -> None:
    """Ma is a family name, so it is not in the degree list."""
    assert normalize_name("Jack Ma") == "jack ma"


@given(st.text(max_size=60))
def test_normalizing_twice_changes_nothing(text: str) -> None:
    """normalize_name is idempotent on any text."""
    once = normalize_name(text)
    assert once == normalize_name(once)


_TITLES = st.sampled_from(["", "H. ", "Hj. ", "Dr. ", "Drs. ", "Ir. ", "Bpk. ", "Ny. "])
_DEGREES = st.sampled_from(["", ", S.Pd.", ", S.E., M.M.", " S.H.", ", A.Md.", ", M.Si."])


@given(
    _TITLES,
    st.sampled_from(MALE_NAMES + FEMALE_NAMES),
    st.lists(st.sampled_from(FAMILY_NAMES), min_size=1, max_size=2),
    _DEGREES,
)
def test_titled_name_matches_the_plain_upper_case_name(
    title: str, given_name: str, family: list[str], degree: str
) -> None:
    """What a worker types with titles fully matches DTSEN's bare capitals."""
    plain = " ".join([given_name, *family])
    assert name_similarity(f"{title}{plain}{degree}", plain.upper()) == 1.0


# --- similarity --------------------------------------------------------------------------------


def test_titled_name_fully_matches_the_bare_name() -> None:
    """Hj. Siti Nurhaliza, S.Pd. is SITI NURHALIZA."""
    assert name_similarity("Hj. Siti Nurhaliza, S.Pd.", "SITI NURHALIZA") == 1.0


def test_word_order_does_not_matter() -> None:
    """Budi Santoso is Santoso Budi."""
    assert name_similarity("Budi Santoso", "Santoso Budi") == 1.0


def test_one_typo_still_matches() -> None:
    """Santosa for Santoso scores at least 0.85."""
    assert name_similarity("Budi Santosa", "Budi Santoso") >= 0.85


def test_a_typo_in_the_first_letter_still_matches() -> None:
    """Sudi for Budi would sort differently; the in-order comparison still catches it."""
    assert name_similarity("Sudi Santoso", "Budi Santoso") >= 0.85


def test_a_different_person_does_not_match() -> None:
    """Budi Santoso and Agus Salim score below 0.6."""
    assert name_similarity("Budi Santoso", "Agus Salim") < 0.6


def test_a_missing_family_name_does_not_match() -> None:
    """Budi alone is not enough to be Budi Santoso."""
    assert not names_match("Budi", "Budi Santoso", 0.85)


def test_a_name_of_only_titles_matches_nothing() -> None:
    """Two empty normalised names do not count as equal."""
    assert name_similarity("Ibu", "") == 0.0
    assert name_similarity("", "") == 0.0


def test_names_match_uses_the_threshold() -> None:
    """The same pair matches or not depending on the threshold."""
    assert names_match("Budi Santosa", "Budi Santoso", 0.85)
    assert not names_match("Budi Santosa", "Budi Santoso", 0.95)


@given(st.text(max_size=40), st.text(max_size=40))
def test_similarity_of_any_two_strings_is_between_0_and_1(a: str, b: str) -> None:
    """Any two strings score within [0, 1]."""
    assert 0.0 <= name_similarity(a, b) <= 1.0
