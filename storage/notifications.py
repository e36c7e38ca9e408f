"""The outbox of messages to workers: written with each decision, delivered after it."""

from __future__ import annotations

from sqlalchemy import or_, update
from sqlmodel import col, select

from storage.engine import Database
from storage.models import Application, Notification, utcnow

# After this many failed attempts a message is given up (and stays recorded as failed).
MAX_ATTEMPTS = 5
# last_error of a claimed notification until its send is answered: a process killed in between
# may have delivered it, so such a row is not picked up again (see deliver_notifications).
IN_FLIGHT = "in flight"


class NotificationRepository:
    """Pending notifications, claimed one at a time so no two senders deliver the same one."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def pending(self, *, limit: int = 50) -> list[tuple[Notification, Application | None]]:
        """Undelivered notifications with their applications (None for a message to staff that
        concerns no application), oldest first."""
        async with self._db.read() as session:
            query = (
                select(Notification, Application)
                .outerjoin(Application, col(Application.id) == col(Notification.application_id))
                .where(
                    col(Notification.sent_at).is_(None),
                    col(Notification.attempts) < MAX_ATTEMPTS,
                    or_(
                        col(Notification.last_error).is_(None),
                        col(Notification.last_error) != IN_FLIGHT,
                    ),
                )
                .order_by(col(Notification.id))
                .limit(limit)
            )
            return [(row[0], row[1]) for row in (await session.execute(query)).all()]

    async def claim(self, *, notification: Notification) -> bool:
        """Take a notification for sending; False when another sender took it first."""
        async with self._db.write() as session, session.begin():
            result = await session.execute(
                update(Notification)
                .where(
                    col(Notification.id) == notification.id,
                    col(Notification.attempts) == notification.attempts,
                    col(Notification.sent_at).is_(None),
                )
                .values(attempts=notification.attempts + 1, last_error=IN_FLIGHT)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_sent(self, *, notification_id: int) -> None:
        """Record a delivery."""
        async with self._db.write() as session, session.begin():
            await session.execute(
                update(Notification)
                .where(col(Notification.id) == notification_id)
                .values(sent_at=utcnow(), last_error=None)
            )

    async def mark_unconfirmed(self, *, notification_id: int, error: str) -> None:
        """Record a send that got no answer: it may have been delivered, so it is never repeated
        (sent_at is when it was handed to Telegram; last_error says it was unconfirmed)."""
        async with self._db.write() as session, session.begin():
            await session.execute(
                update(Notification)
                .where(col(Notification.id) == notification_id)
                .values(sent_at=utcnow(), last_error=f"unconfirmed: {error}"[:300])
            )

    async def mark_failed(self, *, notification_id: int, error: str, final: bool) -> None:
        """Record a failed delivery; a final failure is never retried."""
        values: dict[str, object] = {"last_error": error[:300]}
        if final:
            values["attempts"] = MAX_ATTEMPTS
        async with self._db.write() as session, session.begin():
            await session.execute(
                update(Notification)
                .where(col(Notification.id) == notification_id)
                .values(**values)
            )
