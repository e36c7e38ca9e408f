"""Who may join the programme: a worker's claim checked against their DTSEN row and the rules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from domain.i18n import N_
from domain.names import name_similarity, normalize_name
from domain.nik import Gender, Nik
from domain.regions import normalize_code

# Rp16.800 a month (JKK Rp10.000 on the minimum declared income + JKM Rp6.800) x 12.
ANNUAL_PREMIUM_IDR = 201_600


class ReasonCode(StrEnum):
    """One finding about a claim; all but GENDER_MISMATCH make it ineligible."""

    NOT_IN_DTSEN = "not_in_dtsen"
    NAME_MISMATCH = "name_mismatch"
    BIRTH_DATE_MISMATCH = "birth_date_mismatch"  # the date typed vs the DTSEN row
    NIK_DATE_MISMATCH = "nik_date_mismatch"  # the date typed vs the date inside the NIK
    OUTSIDE_REGION = "outside_region"
    DESIL_TOO_HIGH = "desil_too_high"
    TOO_YOUNG = "too_young"
    TOO_OLD = "too_old"
    GENDER_MISMATCH = "gender_mismatch"


# A gender mismatch alone points at a data-entry slip in DTSEN more often than at a stranger
# using someone's NIK (that needs the name and date to match too), so it is a flag for staff
# review rather than a refusal.
FLAGS = frozenset({ReasonCode.GENDER_MISMATCH})

_STAFF_TEMPLATES: dict[ReasonCode, str] = {
    ReasonCode.NOT_IN_DTSEN: N_("NIK not found in the DTSEN extract"),
    ReasonCode.NAME_MISMATCH: N_(
        "Name similarity with DTSEN is {score}%, below the threshold of {threshold}%"
    ),
    ReasonCode.BIRTH_DATE_MISMATCH: N_(
        "Birth date given ({claimed}) differs from DTSEN ({dtsen})"
    ),
    ReasonCode.NIK_DATE_MISMATCH: N_(
        "Birth date given ({claimed}) differs from the date in the NIK ({nik_date})"
    ),
    ReasonCode.OUTSIDE_REGION: N_(
        "DTSEN domicile {region} is outside the programme area {programme_region}"
    ),
    ReasonCode.DESIL_TOO_HIGH: N_("Desil {desil} is above the programme maximum {max_desil}"),
    ReasonCode.TOO_YOUNG: N_("Age {age} is below the programme minimum {min_age}"),
    ReasonCode.TOO_OLD: N_("Age {age} is above the programme maximum {max_age}"),
    ReasonCode.GENDER_MISMATCH: N_(
        "Gender in the NIK ({nik_gender}) differs from DTSEN ({dtsen_gender}); "
        "check before approving"
    ),
}


@dataclass(frozen=True)
class Reason:
    """A finding for staff: translate `staff_template`, then `.format(**params)`."""

    code: ReasonCode
    params: Mapping[str, str | int] = field(default_factory=dict)

    @property
    def staff_template(self) -> str:
        """The N_() template for this code, with named placeholders filled from `params`."""
        return _STAFF_TEMPLATES[self.code]

    @property
    def staff_message(self) -> str:
        """The untranslated English message, for logs and tests."""
        return self.staff_template.format(**self.params)

    @property
    def blocking(self) -> bool:
        """Whether this finding on its own makes the claim ineligible."""
        return self.code not in FLAGS


@dataclass(frozen=True, slots=True)
class Claim:
    """What the worker told the bot."""

    nik: Nik
    name: str
    birth_date: date


def claim_key(claim: Claim) -> str:
    """The claim in a canonical ASCII form, to key it by an HMAC: claims that only differ in
    ways the check ignores (case, accents, titles, "Moch." for "Muhammad") share a key."""
    text = f"{claim.nik.digits}|{claim.birth_date.isoformat()}|{normalize_name(claim.name)}"
    # Names in other scripts stay distinct; a backslash cannot occur in a normalised name.
    return text.encode("ascii", "backslashreplace").decode("ascii")


@dataclass(frozen=True, slots=True)
class DtsenPerson:
    """The parts of a DTSEN row the decision needs (the storage layer converts its row)."""

    nama: str
    tanggal_lahir: date
    jenis_kelamin: str
    kode_wilayah: str
    desil: int  # national scale
    # DTSEN V3 only (None from a one-file extract): the family's other two rankings, the KTP
    # regency code and the work variables (decoded text when the import had a codebook).
    desil_provinsi: int | None = None
    desil_kabupaten_kota: int | None = None
    kode_kabupaten_kota_ktp: str | None = None
    status_bekerja: str | None = None
    status_dalam_pekerjaan: str | None = None
    lapangan_usaha: str | None = None


class DesilScale(StrEnum):
    """Which of DTSEN's three family rankings the desil rule reads (PROGRAM_DESIL_SCALE)."""

    NASIONAL = "nasional"
    PROVINSI = "provinsi"
    KABUPATEN_KOTA = "kabupaten_kota"


# How a reviewer's card names each scale ("desil nasional 4 (provinsi 6, kab/kota 8)").
DESIL_SCALE_LABELS: Mapping[DesilScale, str] = {
    DesilScale.NASIONAL: N_("national"),
    DesilScale.PROVINSI: N_("provincial"),
    DesilScale.KABUPATEN_KOTA: N_("regency/city"),
}


def desil_on_scale(record: DtsenPerson, scale: DesilScale) -> tuple[DesilScale, int]:
    """The scale actually used and the person's desil on it.

    A one-file extract carries only the national ranking (the other two are None): the rule
    then falls back to the national desil and says so, rather than treating a missing ranking
    as "not poor enough" and refusing everyone from an older extract.
    """
    value = {
        DesilScale.NASIONAL: record.desil,
        DesilScale.PROVINSI: record.desil_provinsi,
        DesilScale.KABUPATEN_KOTA: record.desil_kabupaten_kota,
    }[scale]
    if value is None:
        return DesilScale.NASIONAL, record.desil
    return scale, value


def work_summary(record: DtsenPerson, limit: int = 300) -> str | None:
    """The person's work variables as one short line for staff (None when DTSEN has none)."""
    parts = [
        value.strip()
        for value in (record.status_bekerja, record.status_dalam_pekerjaan, record.lapangan_usaha)
        if value and value.strip()
    ]
    return " · ".join(parts)[:limit] or None


@dataclass(frozen=True, slots=True)
class Rules:
    """The programme's criteria, from settings."""

    region_code: str
    max_desil: int
    min_age: int
    max_age: int
    name_threshold: float = 0.85
    desil_scale: DesilScale = DesilScale.NASIONAL

    def __post_init__(self) -> None:
        # Configuration errors, for the operator: fail at start-up, not on the first worker.
        code = normalize_code(self.region_code)
        if not code.isdigit() or len(code) not in (2, 4, 6, 10):
            raise ValueError(f"region_code must be a 2/4/6/10-digit region code: {code!r}")
        if not 1 <= self.max_desil <= 10:
            raise ValueError(f"max_desil must be between 1 and 10: {self.max_desil}")
        if not 0 <= self.min_age <= self.max_age:
            raise ValueError(f"need 0 <= min_age <= max_age: {self.min_age}, {self.max_age}")
        if not 0 < self.name_threshold <= 1:
            raise ValueError(f"name_threshold must be in (0, 1]: {self.name_threshold}")


@dataclass(frozen=True)
class Decision:
    """The outcome: eligible when no finding is blocking; `name_score` when a row was found."""

    eligible: bool
    reasons: tuple[Reason, ...]
    name_score: float | None
    # The scale the desil rule read and the value it compared (None when no row was found).
    desil_scale: DesilScale | None = None
    desil: int | None = None

    @property
    def codes(self) -> tuple[ReasonCode, ...]:
        """The reason codes, in the order they were found."""
        return tuple(reason.code for reason in self.reasons)


def age_on(birth: date, today: date) -> int:
    """Completed years on `today`; someone born on 29 February turns a year older on 1 March."""
    before_birthday = (today.month, today.day) < (birth.month, birth.day)
    return today.year - birth.year - before_birthday


# Spellings of DTSEN's gender field, as compared (after strip().casefold()): BPS codes 1 = male,
# 2 = female; extracts also spell it out.
GENDER_SPELLINGS: Mapping[str, Gender] = {
    "l": "L", "lk": "L", "laki-laki": "L", "laki laki": "L", "lakilaki": "L", "laki": "L",
    "pria": "L", "1": "L", "m": "L", "male": "L",
    "p": "P", "pr": "P", "perempuan": "P", "wanita": "P", "2": "P", "f": "P", "female": "P",
}  # fmt: skip


def normalize_gender(value: str) -> Gender | None:
    """DTSEN's gender field as "L"/"P"; None when the value is not one we know."""
    return GENDER_SPELLINGS.get(value.strip().casefold())


def age_reason(birth: date, rules: Rules, today: date) -> Reason | None:
    """TOO_YOUNG or TOO_OLD for this date of birth, or None; handlers can ask before a lookup."""
    age = age_on(birth, today)
    if age < rules.min_age:
        return Reason(ReasonCode.TOO_YOUNG, {"age": age, "min_age": rules.min_age})
    if age > rules.max_age:
        return Reason(ReasonCode.TOO_OLD, {"age": age, "max_age": rules.max_age})
    return None


def assess(claim: Claim, record: DtsenPerson | None, rules: Rules, today: date) -> Decision:
    """Check a claim against its DTSEN row (None when the NIK is not there) and the rules."""
    if record is None:
        return Decision(False, (Reason(ReasonCode.NOT_IN_DTSEN),), None)
    reasons: list[Reason] = []
    score = name_similarity(claim.name, record.nama)
    if score < rules.name_threshold:
        percent = {"score": round(score * 100), "threshold": round(rules.name_threshold * 100)}
        reasons.append(Reason(ReasonCode.NAME_MISMATCH, percent))
    claimed = claim.birth_date.isoformat()
    if claim.birth_date != record.tanggal_lahir:
        dtsen_date = record.tanggal_lahir.isoformat()
        reasons.append(
            Reason(ReasonCode.BIRTH_DATE_MISMATCH, {"claimed": claimed, "dtsen": dtsen_date})
        )
    if claim.birth_date != claim.nik.birth_date:
        nik_date = claim.nik.birth_date.isoformat()
        reasons.append(
            Reason(ReasonCode.NIK_DATE_MISMATCH, {"claimed": claimed, "nik_date": nik_date})
        )
    # Domicile comes from DTSEN, never from the NIK prefix (the place of first registration).
    region = normalize_code(record.kode_wilayah)
    area = normalize_code(rules.region_code)
    if not region.startswith(area):
        reasons.append(
            Reason(ReasonCode.OUTSIDE_REGION, {"region": region, "programme_region": area})
        )
    scale, desil_value = desil_on_scale(record, rules.desil_scale)
    if desil_value > rules.max_desil:
        desil: dict[str, str | int] = {
            "desil": desil_value,
            "max_desil": rules.max_desil,
            "scale": str(scale),
        }
        reasons.append(Reason(ReasonCode.DESIL_TOO_HIGH, desil))
    # Age from the date the worker typed: it is their own information, so telling them about it
    # reveals nothing from DTSEN (see worker_message).
    age = age_reason(claim.birth_date, rules, today)
    if age is not None:
        reasons.append(age)
    dtsen_gender = normalize_gender(record.jenis_kelamin)
    # An unrecognised DTSEN value is not evidence of a mismatch, so it raises no flag.
    if dtsen_gender is not None and dtsen_gender != claim.nik.gender:
        genders = {"nik_gender": claim.nik.gender, "dtsen_gender": dtsen_gender}
        reasons.append(Reason(ReasonCode.GENDER_MISMATCH, genders))
    eligible = not any(reason.blocking for reason in reasons)
    return Decision(eligible, tuple(reasons), score, scale, desil_value)


ELIGIBLE_MESSAGE = N_(
    "Your data matches the programme's list. The city's staff will now review your application "
    "and let you know the result."
)
# One headline for every refusal that involves DTSEN (see worker_message).
NO_MATCH_MESSAGE = N_("Sorry, we could not match your data to the programme's list.")
AGE_MESSAGE = N_(
    "Sorry, this programme is only for the age range {min_age} to {max_age}, and by the date "
    "of birth you typed you are outside it."
)
# The one next step, after the headline.
RETRY_NO_MATCH = N_(
    "Copy your NIK and name exactly as on your KTP, check your date of birth, and try again."
)
RETRY_AGE = N_("If the date you typed is wrong, try again.")
# What else there is (PP 50/2025, DTSEN's update routes): lines after the next step.
DTSEN_UPDATE_ROUTE = N_(
    "Not in DTSEN yet? Ask at the kelurahan's monthly meeting (musyawarah kelurahan) or in the "
    "Cek Bansos app."
)
SELF_PAY_ROUTE = N_(
    "You can also join BPJS Ketenagakerjaan yourself: JKK+JKM {premium} a month (until "
    "{until}), in the JMO app or through a Perisai agent."
)
HELP_LINE = N_("Questions? Call {phone}.")
_AGE_CODES = frozenset({ReasonCode.TOO_YOUNG, ReasonCode.TOO_OLD})


def _age_only(decision: Decision) -> bool:
    blocking = {reason.code for reason in decision.reasons if reason.blocking}
    return bool(blocking) and blocking <= _AGE_CODES


def worker_message(decision: Decision) -> str:
    """The headline a worker sees about a decision (an N_() string for `_()`; the age message
    takes `min_age` and `max_age`)."""
    if decision.eligible:
        return ELIGIBLE_MESSAGE
    # Every refusal that involves DTSEN gets the same words, so trying NIKs teaches a stranger
    # nothing about who is listed, where they live or their desil. The age message is shown
    # only when age is the sole obstacle: the worker can work that out from their own date of
    # birth, and it tells no more than "eligible" would have told a worker of the right age.
    if _age_only(decision):
        return AGE_MESSAGE
    return NO_MATCH_MESSAGE


def refusal_lines(decision: Decision) -> tuple[str, ...]:
    """A refused worker's message, line by line (N_() strings, formatted with `min_age`,
    `max_age`, `premium`, `until` and `phone`): the headline, one next step, what else there
    is, and whom to call. The same lines for every DTSEN finding, so they reveal nothing."""
    if decision.eligible:
        return (ELIGIBLE_MESSAGE,)
    if not _age_only(decision):
        return (NO_MATCH_MESSAGE, RETRY_NO_MATCH, DTSEN_UPDATE_ROUTE, SELF_PAY_ROUTE, HELP_LINE)
    # BPU members must be under 65 when they join: self-pay is no route for the too old.
    too_young = ReasonCode.TOO_YOUNG in decision.codes
    routes = (SELF_PAY_ROUTE,) if too_young else ()
    return (AGE_MESSAGE, RETRY_AGE, *routes, HELP_LINE)


def encode_reasons(reasons: Iterable[Reason]) -> str:
    """The findings as compact JSON, the way an application keeps them for staff."""
    return json.dumps(
        [{"code": str(reason.code), "params": dict(reason.params)} for reason in reasons],
        separators=(",", ":"),
    )


def decode_reasons(text: str | None) -> tuple[Reason, ...]:
    """Findings kept by `encode_reasons`; a code this version does not know is left out."""
    known = {str(code) for code in ReasonCode}
    return tuple(
        Reason(ReasonCode(item["code"]), item.get("params") or {})
        for item in json.loads(text or "[]")
        if item.get("code") in known
    )
