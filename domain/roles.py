"""Who may do what: staff roles from settings and from the staff table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """A staff role; admins can do everything reviewers can, plus exports and staff changes.
    Operators only register workers on their behalf, within their area (no review at all)."""

    REVIEWER = "reviewer"
    ADMIN = "admin"
    OPERATOR = "operator"


@dataclass(frozen=True)
class StaffMember:
    """A caller's role and, for a scoped reviewer, the kecamatan they review (for an operator:
    the kecamatan and kelurahan codes they may register workers of)."""

    user_id: int
    role: Role
    kecamatan: tuple[str, ...] = ()

    def can(self, needed: Role) -> bool:
        """Whether this member's role covers `needed` (an operator's covers only itself, and
        only an operator's does: no staff command opens to them, and /daftarkan to no one else)."""
        if self.role is Role.OPERATOR or needed is Role.OPERATOR:
            return self.role is needed
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
    if stored_role == Role.OPERATOR:
        return StaffMember(user_id, Role.OPERATOR, scope)
    return None


def covers(
    scope: tuple[str, ...], *, kecamatan_code: str | None, kelurahan_code: str | None
) -> bool:
    """Whether an operator's area (kecamatan and kelurahan codes) holds this place: a kelurahan
    inside it, or (before the kelurahan is chosen) a kecamatan that is or holds part of it."""
    if kelurahan_code:
        return kelurahan_code in scope or kelurahan_code[:6] in scope
    if kecamatan_code:
        return any(code[:6] == kecamatan_code for code in scope)
    return True
