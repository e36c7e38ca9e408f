"""Typed callback context: `context.settings`, `context.services`, `context._` for this user."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from telegram.ext import Application, CallbackContext, ExtBot

from config.catalogs import Catalogs, Translator
from config.settings import Settings
from domain.regions import Regions
from storage.appeals import AppealRepository
from storage.applications import ApplicationRepository
from storage.card_leases import CardLeaseRepository
from storage.deregistration import DeregistrationRepository
from storage.dtsen.records import DtsenRepository
from storage.engine import Database
from storage.exports import ExportRepository
from storage.jobs import JobClaims
from storage.models import utcnow
from storage.notifications import NotificationRepository
from storage.operators import OperatorRepository
from storage.preferences import PreferenceRepository
from storage.reports import ReportRepository
from storage.review import ReviewRepository
from storage.staff import StaffRepository
from storage.updates import UpdateLog


@dataclass
class Services:
    """Everything handlers reach through the context, built once by `build_application`."""

    settings: Settings
    database: Database
    catalogs: Catalogs
    regions: Regions
    secret: bytes
    preferences: PreferenceRepository
    applications: ApplicationRepository
    dtsen: DtsenRepository
    updates: UpdateLog
    review: ReviewRepository
    staff: StaffRepository
    notifications: NotificationRepository
    reports: ReportRepository
    exports: ExportRepository
    deregistrations: DeregistrationRepository
    operators: OperatorRepository
    appeals: AppealRepository
    # Cards open per reviewer, so "next" hands different reviewers different applications.
    card_leases: CardLeaseRepository
    # Scheduled jobs claimed by this process, so each run is done by one process.
    jobs: JobClaims
    # Tests move time forward (reminders, expiry, ages) by swapping the clock.
    clock: Callable[[], datetime] = utcnow
    # One outbox sender at a time in this process (rows are also claimed in the database).
    delivery_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Language per user, filled on first contact; the database keeps the truth (and is read
    # every time when `shared`, see handlers.language).
    languages: dict[int, str | None] = field(default_factory=dict)

    @property
    def shared(self) -> bool:
        """Whether several processes may serve this bot on one database (webhook mode): then
        nothing that decides behaviour is kept in this process's memory alone."""
        return bool(self.settings.webhook_url)


class BotData:
    """`application.bot_data`: holds the services (PTB instantiates it with no arguments)."""

    __slots__ = ("services",)

    def __init__(self) -> None:
        self.services: Services | None = None


class Context(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]):
    """The context every handler receives."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        super().__init__(application=application, chat_id=chat_id, user_id=user_id)
        self.translator: Translator | None = None

    @property
    def services(self) -> Services:
        """The application's services."""
        services = self.bot_data.services
        if services is None:
            raise RuntimeError("services are not wired; build the app with build_application")
        return services

    @property
    def settings(self) -> Settings:
        """The one settings object."""
        return self.services.settings

    def _(self, message: str) -> str:
        """Translate a message into this update's language."""
        return self.tr._(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """Translate a counted message into this update's language."""
        return self.tr.ngettext(singular, plural, n)

    @property
    def tr(self) -> Translator:
        """This update's translator (set by the language pre-handler, else the default)."""
        if self.translator is None:
            self.translator = self.services.catalogs.get(None)
        return self.translator
