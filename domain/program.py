"""What the programme asks of a worker: occupations, heir relations, the consent text."""

from __future__ import annotations

from domain.i18n import N_

# Bump when the consent text changes; each worker's stored consent names the version they saw.
CONSENT_VERSION = "2026-11-v1"

OCCUPATIONS: dict[str, str] = {
    "ojol": N_("Online motorcycle taxi (ojol)"),
    "sopir": N_("Driver"),
    "kuli_bangunan": N_("Construction labourer"),
    "pedagang_kecil": N_("Small trader"),
    "pemulung": N_("Waste picker"),
    "lainnya": N_("Other"),
}
OTHER_OCCUPATION = "lainnya"

HEIR_RELATIONS: dict[str, str] = {
    "pasangan": N_("Husband/Wife"),
    "anak": N_("Child"),
    "orang_tua": N_("Parent"),
    "saudara": N_("Sibling"),
    "lainnya": N_("Other"),
}

CONSENT_TEXT = N_(
    "<b>Your data and your consent</b> (UU PDP No. 27/2022)\n"
    "• <b>What we collect:</b> NIK, full name, date of birth, mobile number, occupation, "
    "domicile address and your heir's name.\n"
    "• <b>Why:</b> to check your eligibility against DTSEN and register you with BPJS "
    "Ketenagakerjaan (JKK and JKM).\n"
    "• <b>Who sees it:</b> verification staff of the city office and BPJS Ketenagakerjaan.\n"
    "• <b>How long:</b> unfinished registrations are deleted after {draft_hours} hours, "
    "ineligible checks after {ineligible_days} days; registered data while you are in the "
    "programme.\n"
    "You can see your data at any time with /datasaya and withdraw your consent with "
    "/hapusdata.\n\n"
    "Do you agree?"
)


def occupation_label(code: str | None) -> str:
    """The untranslated label of an occupation code (empty for unknown codes)."""
    return OCCUPATIONS.get(code or "", "")


def relation_label(code: str | None) -> str:
    """The untranslated label of a heir relation code (empty for unknown codes)."""
    return HEIR_RELATIONS.get(code or "", "")
