"""The registration flow table, read directly: every step complete, the order, the branches."""

from __future__ import annotations

from datetime import date

import pytest

from domain.flow import (
    CHOICES,
    CONTACT,
    FIELD_LABELS,
    FLOW,
    READERS,
    ROWS,
    STEPS,
    Facts,
    InvalidAnswer,
    Keyboard,
    Navigation,
    Picked,
    Step,
    keyboard_for,
    next_step,
    progress_of,
    typed_choice,
)
from domain.nik import Nik
from domain.program import HEIR_RELATIONS, OCCUPATIONS, OTHER_OCCUPATION
from domain.regions import load_regions

REGENCY = "3275"


@pytest.fixture(scope="module")
def facts() -> Facts:
    return Facts(today=date(2025, 6, 1), regions=load_regions(), regency=REGENCY)


def test_every_step_has_a_prompt_and_reader() -> None:
    """Each step is one row: a prompt, and exactly one way to answer it (typed or pressed)."""
    assert [row.step for row in ROWS] == list(Step)
    for row in ROWS:
        assert row.prompt, row.step
        assert (row.read is None) != (row.choose is None), row.step
        assert (row.step in READERS) == (row.read is not None)
        assert (row.step in CHOICES) == (row.choose is not None)


def test_every_pressed_step_has_a_keyboard_and_no_typed_step_has_choices(facts: Facts) -> None:
    kecamatan = facts.regions.kecamatan_of(REGENCY)[0].code
    chosen = Facts(facts.today, facts.regions, REGENCY, kecamatan)
    for step in Step:
        keyboard = keyboard_for(step, chosen)
        if step in CHOICES:
            assert isinstance(keyboard, Keyboard), step
            assert keyboard.buttons, step
        else:
            assert keyboard in (None, CONTACT), step
    assert keyboard_for(Step.PHONE, chosen) == CONTACT


def test_the_questions_come_in_the_form_order() -> None:
    """Answering each main question in turn walks the whole form to the summary."""
    step, seen = Step.NIK, []
    while step is not Step.SUMMARY:
        seen.append(step)
        step = next_step(step, {"occupation": "ojol"}, return_to_summary=False)
    assert seen == [*FLOW[:6], Step.KELURAHAN, *FLOW[6:]]


def test_the_question_after_the_phone_can_take_the_contact_button_away() -> None:
    """A message carries one keyboard: the question after the phone has no buttons of its own,
    so it also removes the contact button (no separate "number saved" message)."""
    after = next_step(Step.PHONE, {}, return_to_summary=False)
    assert after is Step.ADDRESS
    assert STEPS[after].keyboard is None
    assert STEPS[after].read is not None


def test_other_occupation_is_asked_only_after_choosing_other() -> None:
    other = {"occupation": OTHER_OCCUPATION}
    listed = {"occupation": next(code for code in OCCUPATIONS if code != OTHER_OCCUPATION)}
    assert next_step(Step.OCCUPATION, other, return_to_summary=False) is Step.OCCUPATION_OTHER
    assert next_step(Step.OCCUPATION, listed, return_to_summary=False) is Step.HEIR_NAME
    # Even when changing the occupation from the summary, "other" still asks what it is.
    assert next_step(Step.OCCUPATION, other, return_to_summary=True) is Step.OCCUPATION_OTHER
    assert next_step(Step.OCCUPATION, listed, return_to_summary=True) is Step.SUMMARY
    assert next_step(Step.OCCUPATION_OTHER, {}, return_to_summary=False) is Step.HEIR_NAME


def test_kelurahan_always_follows_the_kecamatan() -> None:
    for back in (False, True):
        assert next_step(Step.KECAMATAN, {}, return_to_summary=back) is Step.KELURAHAN
    assert next_step(Step.KELURAHAN, {}, return_to_summary=True) is Step.SUMMARY
    assert next_step(Step.KELURAHAN, {}, return_to_summary=False) is Step.OCCUPATION


def test_sub_questions_count_as_their_parent_in_the_progress() -> None:
    total = len(FLOW)
    assert progress_of(Step.NIK) == (1, total)
    assert progress_of(Step.OCCUPATION_OTHER) == progress_of(Step.OCCUPATION)
    assert progress_of(Step.KELURAHAN) == progress_of(Step.KECAMATAN)
    assert progress_of(Step.SUMMARY) is None
    assert progress_of(Step.EDIT) is None


def test_field_labels_are_the_editable_main_questions_in_order() -> None:
    assert list(FIELD_LABELS) == list(FLOW)
    assert all(STEPS[step].label == label for step, label in FIELD_LABELS.items())


def test_the_nik_reader_returns_the_parsed_nik(facts: Facts) -> None:
    """The NIK is parsed once; the value that travels on is the `Nik` itself."""
    values = READERS[Step.NIK]("3275 0117 0885 0001", facts)
    assert isinstance(values["nik"], Nik)
    assert values["nik"].digits == "3275011708850001"


def test_every_listed_button_is_accepted_and_a_forged_one_is_not(facts: Facts) -> None:
    for step, chooser in CHOICES.items():
        facts_here = facts
        if step is Step.KELURAHAN:
            kecamatan = facts.regions.kecamatan_of(REGENCY)[0].code
            facts_here = Facts(facts.today, facts.regions, REGENCY, kecamatan)
        keyboard = keyboard_for(step, facts_here)
        assert isinstance(keyboard, Keyboard)
        for button in (*keyboard.buttons, *((keyboard.last,) if keyboard.last else ())):
            assert isinstance(chooser(button.value, facts_here), Picked | Navigation)
        with pytest.raises(InvalidAnswer):
            chooser("forged", facts_here)


def test_choices_carry_their_labels(facts: Facts) -> None:
    relation = next(iter(HEIR_RELATIONS))
    picked = CHOICES[Step.HEIR_RELATION](relation, facts)
    assert picked == Picked(HEIR_RELATIONS[relation], {"heir_relation": relation})
    kecamatan = facts.regions.kecamatan_of(REGENCY)[0]
    picked = CHOICES[Step.KECAMATAN](kecamatan.code, facts)
    assert isinstance(picked, Picked)
    assert not picked.translate
    assert picked.label == kecamatan.name


def test_a_typed_button_label_is_read_as_the_press_in_either_language(facts: Facts) -> None:
    """ "ojol", " SOPIR ", the English label, a kecamatan's name: the button's value; other
    words: None (the buttons are asked for again)."""
    from config.catalogs import Catalogs

    every = Catalogs().every
    assert typed_choice(Step.OCCUPATION, "ojol", facts, every) == "ojol"
    assert typed_choice(Step.OCCUPATION, "  SOPIR ", facts, every) == "sopir"
    assert typed_choice(Step.OCCUPATION, "Driver", facts, every) == "sopir"
    assert typed_choice(Step.OCCUPATION, "kuli bangunan", facts, every) == "kuli_bangunan"
    assert typed_choice(Step.OCCUPATION, "astronaut", facts, every) is None
    assert typed_choice(Step.NIK, "ojol", facts, every) is None
    [district, *_rest] = load_regions().kecamatan_of(REGENCY)
    assert typed_choice(Step.KECAMATAN, district.name.lower(), facts, every) == district.code
