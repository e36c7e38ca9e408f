"""Who may do what: staff roles from settings and from the staff table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """A staff role; admins can do everything reviewers can, plus exports and staff changes."""

    REVIEWER = "reviewer"
    ADMIN = "admin"


@dataclass(frozen=True)
class StaffMember:
    """A caller's role and, for a scoped reviewer, the kecamatan they review."""

    user_id: int
    role: Role
    kecamatan: tuple[str, ...] = ()

    def can(self, needed: Role) -> bool:
        """Whether this member's role covers `needed`."""
        return self.role is Role.ADMIN or needed is Role.REVIEWER


def resolve_role(
    user_id: int,
    *,
    admin_ids: frozenset[int],
    reviewer_ids: frozenset[int],
    stored_role: str | None,
    stored_scope: str | None,
) -> StaffMember | None:
    """The caller's staff membership by numeric id: settings first, then the staff table."""
    if user_id in admin_ids:
        return StaffMember(user_id, Role.ADMIN)
    scope = tuple(code.strip() for code in (stored_scope or "").split(",") if code.strip())
    if stored_role == Role.ADMIN:
        return StaffMember(user_id, Role.ADMIN)
    if user_id in reviewer_ids:
        return StaffMember(user_id, Role.REVIEWER)
    if stored_role == Role.REVIEWER:
        return StaffMember(user_id, Role.REVIEWER, scope)
    return None
