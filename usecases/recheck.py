"""After a DTSEN import: re-assess the applications the new table may change, and let a worker
who now qualifies carry on from where they stopped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from domain.eligibility import (
    Claim,
    Decision,
    DtsenPerson,
    ReasonCode,
    Rules,
    assess,
    decode_reasons,
    encode_reasons,
)
from domain.flow import IDENTITY_STEPS, Step, next_step
from domain.lifecycle import Status
from domain.nik import InvalidNik, parse_nik
from storage.applications import ApplicationRepository
from storage.drafts import Outcome
from storage.models import Application
from storage.recheck import Change, Judge, RecheckRepository
from usecases.registration import assessment_values

# The refusals a new extract can undo: the person was missing, ranked too high, or lived
# elsewhere. A name or birth date that did not match is the worker's own typing: not re-checked.
RECHECKABLE = frozenset(
    {ReasonCode.NOT_IN_DTSEN, ReasonCode.DESIL_TOO_HIGH, ReasonCode.OUTSIDE_REGION}
)
# Age was judged when the worker registered; a re-import does not change birth dates, so an
# application in review is not flagged for having had a birthday since.
_AGE = frozenset({ReasonCode.TOO_YOUNG, ReasonCode.TOO_OLD})
# Notification kinds: the worker's offer to carry on, and the admins' summary.
REQUALIFIED = "requalified"
SUMMARY = "dtsen_recheck"
RECHECKED_STATUSES = (Status.INELIGIBLE, Status.PENDING, Status.WAITLISTED)


class Result(StrEnum):
    """What the summary counts an application as."""

    ELIGIBLE = "eligible"  # an ineligible application that now qualifies (worker told once)
    FLAGGED = "flagged"  # in review, and its new assessment fails (staff told on the card)
    LIFTED = "lifted"  # in review, flagged by an earlier re-check, and passing again
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class RecheckSummary:
    """The figures of one re-check."""

    eligible: int
    flagged: int
    unchanged: int
    lifted: int = 0

    def describe(self) -> str:
        """The line the import prints."""
        line = (
            f"re-check against the new table: newly eligible {self.eligible}, "
            f"flagged {self.flagged}, unchanged {self.unchanged}"
        )
        return line + (f", flag lifted {self.lifted}" if self.lifted else "")


def _claim(application: Application, today: date) -> Claim | None:
    """The identity the worker gave, or None when it is no longer complete (erased)."""
    if not (application.nik and application.nama and application.tanggal_lahir):
        return None
    try:
        nik = parse_nik(application.nik, today=today)
    except InvalidNik:
        return None
    return Claim(nik=nik, name=application.nama, birth_date=application.tanggal_lahir)


def _differences(application: Application, values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if getattr(application, key) != value}


def _ineligible(
    application: Application, record: DtsenPerson | None, decision: Decision, now: datetime
) -> Change:
    stored = {reason.code for reason in decode_reasons(application.eligibility_reasons)}
    offered = application.requalified_at is not None
    blocking = stored - {ReasonCode.GENDER_MISMATCH}
    if not offered and not (blocking and blocking <= RECHECKABLE):
        return Change(Result.UNCHANGED)
    if decision.eligible:
        if offered:  # told at an earlier import: once is enough
            return Change(Result.UNCHANGED)
        values = {**assessment_values(decision, record), "requalified_at": now}
        return Change(Result.ELIGIBLE, values, REQUALIFIED, "eligible against the new DTSEN")
    if offered:
        # A later extract took it back before the worker carried on: the offer lapses quietly
        # (the button then says so), and the next extract that qualifies them tells them again.
        values = {**assessment_values(decision, record), "requalified_at": None}
        return Change(Result.UNCHANGED, values, audit="no longer eligible against the new DTSEN")
    return Change(Result.UNCHANGED)


def _in_review(application: Application, record: DtsenPerson | None, decision: Decision) -> Change:
    values = assessment_values(decision, record) if record is not None else {}
    failing = [r for r in decision.reasons if r.blocking and r.code not in _AGE]
    if not failing:
        changed = _differences(application, values)
        if application.recheck_flag is not None:
            changed["recheck_flag"] = None
            return Change(Result.LIFTED, changed, audit="passes the new DTSEN again")
        # The new desil is recorded: the queue and the waiting list order by it.
        return Change(Result.UNCHANGED, changed)
    # The first assessment's findings stay as they were; the new ones go in the flag.
    values.pop("eligibility_reasons", None)
    changed = _differences(application, values)
    findings = encode_reasons(failing)
    if application.recheck_flag == findings:
        return Change(Result.UNCHANGED, changed)
    changed["recheck_flag"] = findings
    return Change(Result.FLAGGED, changed, audit=findings)


def judge_for(rules: Rules, *, today: date, now: datetime) -> Judge:
    """The re-check's decision for one application against its row in the new table."""

    def judge(application: Application, record: DtsenPerson | None) -> Change:
        claim = _claim(application, today)
        if claim is None:
            return Change(Result.UNCHANGED)
        decision = assess(claim, record, rules, today)
        if application.status == Status.INELIGIBLE:
            return _ineligible(application, record, decision, now)
        return _in_review(application, record, decision)

    return judge


async def recheck_after_import(
    repository: RecheckRepository,
    *,
    rules: Rules,
    today: date,
    now: datetime,
    admin_ids: Iterable[int],
) -> RecheckSummary:
    """Re-assess ineligible, pending and waitlisted applications against the table now in
    service, in one transaction; workers who now qualify and every admin get one message
    through the outbox (the running bot sends it). Idempotent: the same table again changes
    and tells nobody anything."""
    counts = await repository.recheck(
        statuses=RECHECKED_STATUSES,
        judge=judge_for(rules, today=today, now=now),
        admin_ids=admin_ids,
        summary_kind=SUMMARY,
    )
    return RecheckSummary(
        eligible=counts[Result.ELIGIBLE],
        flagged=counts[Result.FLAGGED],
        unchanged=counts[Result.UNCHANGED],
        lifted=counts[Result.LIFTED],
    )


# --- the worker's button --------------------------------------------------------------------


@dataclass(frozen=True)
class Resumed:
    """The draft is open again at `step`."""

    step: Step
    draft: Application


class NotResumed(StrEnum):
    """Why the button did nothing."""

    GONE = "gone"  # not theirs, erased, already resumed, or no longer eligible
    BUSY = "busy"  # the account has another application open
    DUPLICATE = "duplicate"  # the same press delivered again


def resume_step(application: Application) -> Step:
    """Where a re-opened draft carries on: the question after the identity check, or the
    summary when the worker had come from it (the flow table decides, as for an answer)."""
    return next_step(IDENTITY_STEPS[-1], {}, return_to_summary=bool(application.return_to_summary))


async def resume_requalified(
    applications: ApplicationRepository, *, user_id: int, application_id: int, update_id: int
) -> Resumed | NotResumed:
    """The worker pressed "carry on": re-open their requalified application as a draft."""
    application = await applications.get(application_id=application_id)
    if (
        application is None
        or application.telegram_user_id != user_id
        or application.status != Status.INELIGIBLE
        or application.requalified_at is None
    ):
        return NotResumed.GONE
    step = resume_step(application)
    outcome = await applications.reopen_requalified(
        application_id=application_id, user_id=user_id, to_step=step, update_id=update_id
    )
    if outcome is Outcome.DONE:
        draft = application.model_copy(
            update={"status": Status.DRAFT, "step": step, "requalified_at": None}
        )
        return Resumed(step, draft)
    if outcome is Outcome.DUPLICATE:
        return NotResumed.DUPLICATE
    return NotResumed.BUSY if outcome is Outcome.BUSY else NotResumed.GONE
