"""Per-user preferences that outlive applications (the chat language)."""

from __future__ import annotations

from sqlmodel import col, select

from storage.engine import Database
from storage.models import UserPreference, utcnow


class PreferenceRepository:
    """Reads and writes a worker's chosen language."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def language_of(self, *, user_id: int) -> str | None:
        """The stored language code, or None when the user never chose one."""
        async with self._db.read() as session:
            result = await session.execute(
                select(col(UserPreference.language)).where(
                    UserPreference.telegram_user_id == user_id
                )
            )
            return result.scalar_one_or_none()

    async def set_language(self, *, user_id: int, language: str) -> None:
        """Remember a user's language."""
        async with self._db.write() as session, session.begin():
            preference = await session.get(UserPreference, user_id)
            if preference is None:
                session.add(UserPreference(telegram_user_id=user_id, language=language))
            else:
                preference.language = language
                preference.updated_at = utcnow()
