"""The registration use case: store an answer (checking the NIK and, once the identity is
complete, eligibility), move within the form, submit; each returns an outcome to render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from domain.eligibility import (
    Claim,
    Decision,
    DtsenPerson,
    Rules,
    assess,
    claim_key,
    encode_reasons,
    work_summary,
)
from domain.flow import IDENTITY_STEPS, Step, Values, next_step
from domain.lifecycle import Status
from domain.names import name_similarity
from domain.nik import Nik, parse_nik
from domain.pii import BlindIndex, hash_identifier
from domain.roles import covers
from storage.applications import ApplicationRepository
from storage.cohort import CohortRepository
from storage.drafts import ATTEMPT_WINDOW, Outcome
from storage.dtsen.records import DtsenRepository
from storage.models import Application, AttemptKind


@dataclass(frozen=True)
class Registration:
    """What the use case works with: the repositories, the key, the rules and the time."""

    applications: ApplicationRepository
    dtsen: DtsenRepository
    secret: bytes
    rules: Rules
    attempts_per_day: int
    now: datetime
    # Last year's imported participants, taken over by the member who types their identity.
    cohort: CohortRepository | None = None
    # The operator's area when an operator answers for a worker (None: the worker answers).
    scope: tuple[str, ...] | None = None

    @property
    def today(self) -> date:
        """The date the NIK, birth date and age checks are made on."""
        return self.now.date()


class Refusal(StrEnum):
    """Why an answer was not taken; the same step is asked again with a word on why."""

    NIK_LIMIT = "nik_limit"  # too many different NIKs from this account today
    NIK_TAKEN = "nik_taken"  # held by a live application (or a rejected one of another account)
    CLAIM_LIMIT = "claim_limit"  # too many different identities checked today
    CORRECTION_MISMATCH = "correction_mismatch"  # a correction that does not match DTSEN
    # At submission: another account's application took the NIK since it was checked.
    NIK_TAKEN_MEANWHILE = "nik_taken_meanwhile"
    # An operator chose a place outside their area.
    OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True)
class Moved:
    """The answer is stored: ask `step` next; `draft` is the draft as it now stands."""

    step: Step
    draft: Application


@dataclass(frozen=True)
class Refused:
    """The answer was not taken (see `Refusal`)."""

    refusal: Refusal


@dataclass(frozen=True)
class Ineligible:
    """The identity failed the check: the draft is closed with these findings."""

    decision: Decision


@dataclass(frozen=True)
class KeptInReview:
    """A correction's checks ran out for the day: the application went back to review."""

    code: str | None


@dataclass(frozen=True)
class CohortClaimed:
    """The identity is a member of last year's cohort: this account now holds their imported
    application (the draft is gone), instead of registering afresh."""

    application: Application


@dataclass(frozen=True)
class TakenOver:
    """The worker proved the identity of an application an operator registered for them: it
    is now theirs (their new draft is gone) and the operator is told."""

    code: str | None


@dataclass(frozen=True)
class Stale:
    """The draft changed elsewhere (another process, a staff decision, expiry)."""


@dataclass(frozen=True)
class Unchanged:
    """Nothing happened (the update was handled before): nothing to say."""


@dataclass(frozen=True)
class Cancelled:
    """The draft was deleted at the worker's request."""


@dataclass(frozen=True)
class Submitted:
    """The application is in the queue with this number."""

    code: str


AnswerOutcome = (
    Moved | Refused | Ineligible | KeptInReview | CohortClaimed | TakenOver | Stale | Unchanged
)
NavigationOutcome = Moved | Refused | Cancelled | Submitted | Stale | Unchanged


def _id(draft: Application) -> int:
    if draft.id is None:
        raise ValueError("draft without id")
    return draft.id


def _account(draft: Application) -> int:
    # A draft in the worker's own conversation belongs to their Telegram account; one an
    # operator fills in for a worker without Telegram counts against the operator's (so the
    # NIK probing limits apply to operators too).
    account = draft.telegram_user_id if draft.telegram_user_id is not None else draft.assisted_by
    if account is None:
        raise ValueError("draft without a Telegram account")
    return account


async def _within_daily_limit(
    registration: Registration, draft: Application, kind: AttemptKind, key_hash: str
) -> bool:
    """Count a NIK look-up or an eligibility check for the account; False once it has used
    today's NIK_ATTEMPTS_PER_DAY distinct ones (the same one again is free)."""
    return await registration.applications.record_attempt(
        user_id=_account(draft),
        kind=kind,
        key_hash=key_hash,
        since=registration.now - ATTEMPT_WINDOW,
        limit=registration.attempts_per_day,
    )


async def _check_nik(
    registration: Registration, draft: Application, index: BlindIndex
) -> Refusal | None:
    """A typed NIK: within the daily attempt limit, and not registered elsewhere."""
    # Counted before anything is looked up: "already registered" tells a stranger something
    # about the NIK too, so it costs an attempt like any other answer.
    if not await _within_daily_limit(registration, draft, AttemptKind.NIK, index.hex):
        return Refusal.NIK_LIMIT
    taken = await registration.applications.nik_is_taken(
        nik=index, except_application=draft.id, user_id=_account(draft)
    )
    if taken and registration.cohort is not None and draft.status == Status.DRAFT:
        # Held by last year's imported application nobody has taken over: its member may
        # continue, and the complete identity decides (see _claim_cohort).
        taken = await registration.cohort.unclaimed(nik=index) is None
    if taken and draft.telegram_user_id is not None:
        # Registered by an operator and not taken over yet: the birth date decides (below).
        taken = await registration.applications.unclaimed_holder(nik_hash=index.hex) is None
    # One refusal whatever the other application's status, so trying NIKs from a few
    # accounts does not tell who applied and how it went; staff see the second claim.
    return Refusal.NIK_TAKEN if taken else None


def assessment_values(decision: Decision, record: DtsenPerson | None) -> Values:
    """What staff need later: the matched DTSEN facts (the desil the rule used, its scale and
    all three rankings, the KTP regency, the work), the name score and any flags."""
    return {
        "name_score": decision.name_score,
        "dtsen_desil": decision.desil,
        "dtsen_desil_scale": str(decision.desil_scale) if decision.desil_scale else None,
        "dtsen_desil_nasional": record.desil if record else None,
        "dtsen_desil_provinsi": record.desil_provinsi if record else None,
        "dtsen_desil_kabupaten_kota": record.desil_kabupaten_kota if record else None,
        "dtsen_ktp_regency": record.kode_kabupaten_kota_ktp if record else None,
        "dtsen_work": work_summary(record) if record else None,
        "dtsen_kode_wilayah": record.kode_wilayah if record else None,
        "eligibility_reasons": encode_reasons(decision.reasons) if decision.reasons else None,
    }


async def register_answer(
    registration: Registration,
    *,
    draft: Application,
    step: Step,
    values: Values,
    update_id: int,
) -> AnswerOutcome:
    """Store a read answer, assessing eligibility once the identity is complete.

    `values` are what the step's reader returned; a NIK comes as the parsed `Nik`, whose blind
    index is computed here once and used for the attempt count, the uniqueness check, the
    DTSEN look-up and the stored row.
    """
    applications = registration.applications
    values = dict(values)
    nik = values.get("nik")
    index: BlindIndex | None = None
    if isinstance(nik, Nik):
        index = BlindIndex.of(nik.digits, registration.secret)
        refusal = await _check_nik(registration, draft, index)
        if refusal is not None:
            return Refused(refusal)
        values.update(nik=nik.digits, nik_hash=index.hex, jenis_kelamin=nik.gender)
    else:
        nik = None
    if registration.scope is not None and not covers(
        registration.scope,
        kecamatan_code=values.get("kecamatan_code"),
        kelurahan_code=values.get("kelurahan_code"),
    ):
        return Refused(Refusal.OUT_OF_SCOPE)
    merged = draft.model_copy(update=values)
    # A submitted application sent back for a fix: a correction that fails the check must
    # never cost the worker their place, so nothing below closes it.
    correcting = draft.status != Status.DRAFT
    if step in IDENTITY_STEPS and merged.nik and merged.nama and merged.tanggal_lahir:
        today = registration.today
        # The NIK typed in this update travels as it was parsed; one stored earlier is read
        # back from its digits (valid when typed, so this cannot fail).
        claim = Claim(
            nik=nik or parse_nik(merged.nik, today=today),
            name=merged.nama,
            birth_date=merged.tanggal_lahir,
        )
        # One NIK is enough to guess its owner's name and birth date check after check, so
        # the checks have a daily limit of their own. Past it, nothing is looked up or stored
        # and the same step is asked again.
        key = hash_identifier(claim_key(claim), registration.secret)
        if not await _within_daily_limit(registration, draft, AttemptKind.CLAIM, key):
            if correcting:
                return await _keep_in_review(registration, draft, step, update_id)
            return Refused(Refusal.CLAIM_LIMIT)
        if draft.telegram_user_id is not None and not correcting:
            taken_over = await _take_over(registration, draft, merged, update_id)
            if taken_over is not None:
                return taken_over
        if index is None:
            index = (
                BlindIndex.from_hex(merged.nik_hash)
                if merged.nik_hash
                else BlindIndex.of(merged.nik, registration.secret)
            )
        if not correcting and registration.cohort is not None:
            claimed = await _claim_cohort(
                registration, registration.cohort, draft, claim, index, update_id
            )
            if claimed is not None:
                return claimed
        record = await registration.dtsen.find_indexed(index)
        decision = assess(claim, record, registration.rules, today)
        values.update(assessment_values(decision, record))
        if correcting and not decision.eligible:
            # The previous answers stay; the guarded no-op write still notices an application
            # decided meanwhile (and records the update against redelivery).
            outcome = await applications.advance(
                application_id=_id(draft),
                from_step=step,
                to_step=step,
                values={},
                update_id=update_id,
            )
            if outcome is Outcome.STALE:
                return Stale()
            if outcome is Outcome.DONE:
                # The same neutral wording for every finding.
                return Refused(Refusal.CORRECTION_MISMATCH)
            return Unchanged()
        if correcting:
            values["identity_mismatch_at"] = None
        if not decision.eligible:
            outcome = await applications.mark_ineligible(
                application_id=_id(draft),
                user_id=_account(draft),
                from_status=draft.status,
                from_step=step,
                values=values,
                reasons=encode_reasons(decision.reasons),
                update_id=update_id,
            )
            if outcome is Outcome.DONE:
                return Ineligible(decision)
            return Stale() if outcome is Outcome.STALE else Unchanged()
    following = next_step(step, values, return_to_summary=draft.return_to_summary)
    outcome = await applications.advance(
        application_id=_id(draft),
        from_step=step,
        to_step=following,
        values=values,
        update_id=update_id,
        return_to_summary=False if following is Step.SUMMARY else None,
    )
    if outcome is Outcome.STALE:
        return Stale()
    if outcome is not Outcome.DONE:
        return Unchanged()
    return Moved(following, draft.model_copy(update={**values, "step": following}))


async def _claim_cohort(
    registration: Registration,
    cohort: CohortRepository,
    draft: Application,
    claim: Claim,
    index: BlindIndex,
    update_id: int,
) -> AnswerOutcome | None:
    """A cohort member's identity: take their imported application over when the name and
    birth date match it; None when the NIK is no unclaimed cohort member's."""
    holder = await cohort.unclaimed(nik=index)
    if holder is None or holder.id is None:
        return None
    matches = holder.tanggal_lahir == claim.birth_date and (
        name_similarity(claim.name, holder.nama or "") >= registration.rules.name_threshold
    )
    if not matches:
        # The answer the NIK step gives any NIK already held: nothing more about the member.
        return Refused(Refusal.NIK_TAKEN)
    user_id = _account(draft)
    registration.applications.forget(user_id=user_id)
    application = await cohort.take_over(
        application_id=holder.id,
        draft_id=_id(draft),
        user_id=user_id,
        chat_id=draft.chat_id or user_id,
        update_id=update_id,
    )
    return Stale() if application is None else CohortClaimed(application)


async def _take_over(
    registration: Registration, draft: Application, merged: Application, update_id: int
) -> AnswerOutcome | None:
    """An application an operator registered with this NIK: the worker takes it over when
    the birth date matches (else the NIK is refused as taken); None when there is none."""
    applications = registration.applications
    holder = await applications.unclaimed_holder(nik_hash=merged.nik_hash or "")
    if holder is None or holder.id is None:
        return None
    if holder.tanggal_lahir != merged.tanggal_lahir or draft.chat_id is None:
        return Refused(Refusal.NIK_TAKEN)
    outcome = await applications.take_over(
        application_id=holder.id,
        draft_id=_id(draft),
        user_id=_account(draft),
        chat_id=draft.chat_id,
        update_id=update_id,
    )
    if outcome is Outcome.DONE:
        return TakenOver(holder.code)
    return Stale() if outcome is Outcome.STALE else Unchanged()


async def _keep_in_review(
    registration: Registration, draft: Application, step: Step, update_id: int
) -> AnswerOutcome:
    """The daily checks ran out while correcting: back to review, flagged, answers kept."""
    outcome = await registration.applications.keep_in_review(
        application_id=_id(draft),
        user_id=_account(draft),
        from_step=step,
        update_id=update_id,
    )
    if outcome is Outcome.STALE:
        return Stale()
    if outcome is not Outcome.DONE:
        return Unchanged()
    return KeptInReview(draft.code)


async def navigate(
    applications: ApplicationRepository,
    *,
    draft: Application,
    step: Step,
    target: str,
    update_id: int,
    code_prefix: str,
) -> NavigationOutcome:
    """A button that moves without answering: back, change a field, send, cancel."""
    if target == "cancel":
        if draft.telegram_user_id is None:
            await applications.discard_assisted(application_id=_id(draft))
        else:
            await applications.discard_draft(user_id=_account(draft))
        return Cancelled()
    if target == "send":
        return await _submit(applications, draft, update_id, code_prefix)
    if target.startswith("fix:"):
        following, back = Step(target.removeprefix("fix:")), True
    else:
        following, back = Step(target), draft.return_to_summary
    outcome = await applications.advance(
        application_id=_id(draft),
        from_step=step,
        to_step=following,
        values={},
        update_id=update_id,
        return_to_summary=back or following is Step.EDIT,
    )
    if outcome is Outcome.DONE:
        return Moved(following, draft.model_copy(update={"step": following}))
    return Stale() if outcome is Outcome.STALE else Unchanged()


async def _submit(
    applications: ApplicationRepository, draft: Application, update_id: int, code_prefix: str
) -> NavigationOutcome:
    """Kirim: one transaction turns the draft into a pending application with a number."""
    result = await applications.submit(
        application_id=_id(draft),
        user_id=_account(draft),
        from_step=Step.SUMMARY,
        prefix=code_prefix,
        update_id=update_id,
    )
    if result.outcome is Outcome.NIK_TAKEN:
        return Refused(Refusal.NIK_TAKEN_MEANWHILE)
    if result.outcome is Outcome.STALE:
        # A staff decision (or another tap) changed the application meanwhile.
        return Stale()
    if result.outcome is not Outcome.DONE:
        return Unchanged()
    return Submitted(result.code or "")
