"""The daily cover check: warn admins before a member's cover lapses, lapse the members three
months unpaid, and hand their places to the waiting list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from config.settings import Settings
from domain.roles import Role
from storage.engine import Database
from storage.lapses import CoverCheck, check_cover
from storage.staff import StaffRepository
from storage.waitlist import Places
from usecases.decisions import FreedPlaceOffer, freed_place_offer


@dataclass(frozen=True)
class CoverReviewed:
    """What the check did, and what staff should hear of the places it freed."""

    check: CoverCheck
    offer: FreedPlaceOffer | None

    @property
    def notified(self) -> bool:
        """Whether notifications were queued (the outbox wants delivering)."""
        return bool(self.check.warned or self.check.lapsed or self.check.filled)


async def review_cover(
    database: Database, staff: StaffRepository, settings: Settings, *, today: date
) -> CoverReviewed:
    """Run the cover check for `today` (the city's calendar day)."""
    admins = set(settings.admin_ids) | {
        row.telegram_user_id for row in await staff.all() if row.role == Role.ADMIN
    }
    check = await check_cover(
        database,
        today=today,
        admin_ids=admins,
        places=Places(
            promotion=settings.program_waitlist_promotion,
            budget=settings.budget,
            today=today,
            reserve_renewals=settings.program_renewal_first,
        ),
    )
    return CoverReviewed(check, await freed_place_offer(staff, settings, check.filled))
