"""A worker withdraws consent: their data is erased, and staff hear of any place it freed."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

from config.settings import Settings
from storage.applications import ApplicationRepository
from storage.engine import Database
from storage.retention import erase_user
from storage.staff import StaffRepository
from storage.waitlist import Places
from usecases.decisions import FreedPlaceOffer, freed_place_offer


@dataclass(frozen=True)
class Erased:
    """What the erasure removed and kept, and whom to tell."""

    kept_for_deregistration: bool
    # Applications that held a place: staff must deregister these workers with BPJS.
    withdrawn_codes: tuple[str, ...]
    # Who hears of each withdrawn code (the staff named in settings).
    staff_to_tell: tuple[int, ...]
    offer: FreedPlaceOffer | None


async def erase(
    database: Database,
    applications: ApplicationRepository,
    staff: StaffRepository,
    settings: Settings,
    *,
    user_id: int,
    languages: MutableMapping[int, str | None],
) -> Erased:
    """Erase every application and preference of `user_id` (UU PDP Art. 8-9).

    The process's caches of the account (its draft, its language) are dropped too, so nothing
    erased is served from memory afterwards.
    """
    erasure = await erase_user(
        database,
        user_id=user_id,
        places=Places(
            promotion=settings.program_waitlist_promotion,
            budget=settings.budget,
            reserve_renewals=settings.program_renewal_first,
        ),
    )
    applications.forget(user_id=user_id)
    languages.pop(user_id, None)
    offer = await freed_place_offer(
        staff,
        settings,
        erasure.filled,
        freed_code=erasure.withdrawn_codes[0] if erasure.withdrawn_codes else None,
        by_worker=True,
    )
    return Erased(
        kept_for_deregistration=erasure.kept_for_deregistration,
        withdrawn_codes=erasure.withdrawn_codes,
        staff_to_tell=tuple(sorted(settings.staff_ids)),
        offer=offer,
    )
