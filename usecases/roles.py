"""Who a caller is: their staff membership, from settings and the staff table."""

from __future__ import annotations

from config.settings import Settings
from domain.roles import StaffMember, resolve_role
from storage.staff import StaffRepository


async def staff_member(
    user_id: int, *, settings: Settings, staff: StaffRepository
) -> StaffMember | None:
    """The membership of a numeric Telegram id, looked up afresh (roles change at any time)."""
    # Admins from settings need no table read: settings always win for them.
    stored = None if user_id in settings.admin_ids else await staff.get(user_id=user_id)
    return resolve_role(
        user_id,
        admin_ids=settings.admin_ids,
        reviewer_ids=settings.reviewer_ids,
        stored_role=stored.role if stored else None,
        stored_scope=stored.kecamatan_scope if stored else None,
    )


async def every_staff_member(*, settings: Settings, staff: StaffRepository) -> list[StaffMember]:
    """Everyone who is staff now, from settings and the staff table, by id."""
    ids = set(settings.staff_ids) | {row.telegram_user_id for row in await staff.all()}
    members = [await staff_member(uid, settings=settings, staff=staff) for uid in sorted(ids)]
    return [member for member in members if member is not None]
