"""The composition root: builds the PTB Application with every service and handler."""

from __future__ import annotations

import asyncio
import datetime
import gc
import logging
import os
from typing import Any, Literal

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ContextTypes,
    TypeHandler,
    filters,
)
from telegram.ext import MessageHandler as _MessageHandler
from telegram.request import BaseRequest

from bot.http import AiohttpRequest
from bot.logs import configure_logging
from bot.processor import PerChatUpdateProcessor
from bot.send_limiter import CHAT_INTERVAL, RATE_HEADROOM, SendLimiter, mark_update
from config.catalogs import Catalogs
from config.settings import Settings
from domain.regions import load_regions
from handlers import (
    account,
    appeals,
    common,
    deregistration,
    errors,
    housekeeping,
    notifications,
    operators,
    privacy,
    recheck,
    registration,
    renewal,
    staff,
    staff_menu,
    staff_reports,
)
from handlers.context import BotData, Context, Services
from handlers.flood import per_process_limit
from handlers.scheduling import JobCallback, once_across_processes
from storage.appeals import AppealRepository
from storage.applications import ApplicationRepository
from storage.card_leases import CardLeaseRepository
from storage.deregistration import DeregistrationRepository
from storage.dtsen.records import DtsenRepository
from storage.engine import Database
from storage.exports import ExportRepository
from storage.jobs import JobClaims
from storage.notifications import NotificationRepository
from storage.opening import open_database
from storage.operators import OperatorRepository
from storage.preferences import PreferenceRepository
from storage.reports import ReportRepository
from storage.review import ReviewRepository
from storage.send_budget import MemoryBudget, PostgresBudget, SendBudget
from storage.staff import StaffRepository
from storage.updates import UpdateLog
from usecases.roles import every_staff_member

log = logging.getLogger(__name__)

RentanApp = Application[Any, Context, Any, Any, BotData, Any]

# Handler groups: lower runs first. Each update's sends learn their priority first. Floods
# are dropped, then redeliveries, then the language is
# picked.
GROUP_SEND_PRIORITY = -50
GROUP_FLOOD = -40
GROUP_DUPLICATES = -30
GROUP_LANGUAGE = -20
GROUP_PRIVATE_ONLY = -10
GROUP_STAFF_INPUT = -5
APPEAL_ESCALATION_TIME = datetime.time(1, 0, tzinfo=datetime.UTC)


def build_services(settings: Settings, database: Database | None = None) -> Services:
    """Create the database handle, catalogs and repositories from settings.

    The database lives as long as the Application, which closes it at post_shutdown
    (on_shutdown): run_polling owns the event loop, so no `async with` can span it.
    """
    database = database or Database.from_url(
        settings.database_url, synchronous=settings.sqlite_synchronous
    )
    secret = settings.require_pii_secret()
    return Services(
        settings=settings,
        database=database,
        catalogs=Catalogs(settings.default_language),
        regions=load_regions(),
        secret=secret,
        preferences=PreferenceRepository(database),
        # The draft cache answers from this process's memory: webhook processes share the
        # updates, so another may have moved the draft on (issue 18's proof); they read it.
        applications=ApplicationRepository(
            database, cache_size=0 if settings.webhook_url else 2_000
        ),
        dtsen=DtsenRepository(database, secret),
        updates=UpdateLog(database),
        review=ReviewRepository(database),
        # One polling process is the only writer of staff inputs; webhooks may be several.
        staff=StaffRepository(database, shared=bool(settings.webhook_url)),
        notifications=NotificationRepository(database),
        reports=ReportRepository(database),
        exports=ExportRepository(database),
        deregistrations=DeregistrationRepository(database),
        operators=OperatorRepository(database),
        appeals=AppealRepository(database),
        card_leases=CardLeaseRepository(database),
        jobs=JobClaims(database),
    )


def build_application(
    settings: Settings,
    *,
    request: BaseRequest | None = None,
    get_updates_request: BaseRequest | None = None,
    services: Services | None = None,
    rate_limit: float | Literal["settings"] | None = "settings",
) -> RentanApp:
    """The bot as production runs it; tests pass their own request or services, and a
    `rate_limit` (messages a second) or None for no outgoing limiter."""
    services = services or build_services(settings)
    api = settings.telegram_api_url
    builder = (
        ApplicationBuilder()
        .token(settings.require_token())
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .context_types(ContextTypes(context=Context, bot_data=BotData))
        .concurrent_updates(PerChatUpdateProcessor(settings.concurrent_updates))
        .post_shutdown(on_shutdown)
    )
    rate = settings.telegram_max_messages_per_s if rate_limit == "settings" else rate_limit
    if rate:
        limiter = SendLimiter(send_budget(settings, services, rate), max_retries=3)
        # ApplicationBuilder's generics tie the limiter to its per-call argument type.
        builder = builder.rate_limiter(limiter)  # type: ignore[arg-type]
    # One connection per concurrent update: PTB's default pool of one would serialise sends.
    builder = builder.request(
        request
        or AiohttpRequest(
            connection_pool_size=settings.concurrent_updates + 4, trim_keyboards=True
        )
    )
    builder = builder.get_updates_request(
        get_updates_request
        or AiohttpRequest(connection_pool_size=2, read_timeout=30, trim_keyboards=True)
    )
    # Webhook deliveries may be spread over several processes: their guard asks the database.
    guard = common.DuplicateGuard(shared=bool(settings.webhook_url))

    async def startup(application: RentanApp) -> None:
        await guard.preload(services)
        await on_startup(application)

    builder = builder.post_init(startup)
    application: RentanApp = builder.build()
    application.bot_data.services = services
    register_handlers(application, settings, guard)
    schedule_jobs(application, settings)
    return application


def send_budget(settings: Settings, services: Services, rate: float) -> SendBudget:
    """Webhook processes on PostgreSQL share one budget in the database (several may serve one
    bot); otherwise the one process keeps it in memory, without a round trip per message."""
    interval = 1.0 / (rate * RATE_HEADROOM)
    if settings.webhook_url and services.database.dialect == "postgresql":
        return PostgresBudget(services.database, interval=interval, chat_interval=CHAT_INTERVAL)
    return MemoryBudget(interval=interval, chat_interval=CHAT_INTERVAL)


def schedule_jobs(application: RentanApp, settings: Settings) -> None:
    """Reminders, retention and deliveries run on PTB's JobQueue (started with the
    application), each tick by one process only when several share the database."""
    job_queue = application.job_queue
    if job_queue is None:
        raise RuntimeError("python-telegram-bot[job-queue] is required")

    def repeat(job: JobCallback, name: str, interval: int, first: int) -> None:
        callback = once_across_processes(job, name=name, interval=interval)
        job_queue.run_repeating(callback, interval=interval, first=first, name=name)

    housekeeping_every = settings.housekeeping_interval_seconds
    repeat(housekeeping.tidy_drafts, "tidy-drafts", housekeeping_every, housekeeping_every)
    # Cheap (one indexed query) and idempotent, so it runs with housekeeping, not once a day.
    repeat(housekeeping.check_cover, "check-cover", housekeeping_every, housekeeping_every)
    repeat(
        notifications.deliver_notifications,
        "deliver-notifications",
        settings.notification_interval_seconds,
        1,
    )
    # Overdue appeals go to the admins once a day, at 08:00 WIB (each appeal only once).
    # Daily, claimed like the others (the escalation itself is also compare-and-set per appeal).
    escalate = once_across_processes(appeals.escalate_appeals, name="appeals", interval=24 * 3600)
    job_queue.run_daily(escalate, time=APPEAL_ESCALATION_TIME, name="appeals")


def register_handlers(
    application: RentanApp, settings: Settings, guard: common.DuplicateGuard
) -> None:
    """Every handler, in the order a worker meets them."""
    flood = common.FloodGuard(
        limit=per_process_limit(settings.flood_max_updates, settings.bot_processes),
        window=settings.flood_window_seconds,
        exempt=settings.staff_ids,
    )
    application.add_handler(TypeHandler(Update, _mark_send_priority), group=GROUP_SEND_PRIORITY)
    application.add_handler(TypeHandler(Update, flood), group=GROUP_FLOOD)
    application.add_handler(TypeHandler(Update, guard), group=GROUP_DUPLICATES)
    application.add_handler(TypeHandler(Update, common.set_language), group=GROUP_LANGUAGE)
    application.add_handler(
        _MessageHandler(~filters.ChatType.PRIVATE, common.refuse_non_private),
        group=GROUP_PRIVATE_ONLY,
    )
    application.add_handler(TypeHandler(Update, _drop_non_private_other), group=GROUP_PRIVATE_ONLY)
    application.add_handlers(staff.build_reason_input(), group=GROUP_STAFF_INPUT)
    application.add_handlers(staff_reports.build_documents(), group=GROUP_STAFF_INPUT)
    application.add_handlers(staff.build())
    application.add_handlers(staff_reports.build())
    application.add_handlers(operators.build())
    application.add_handlers(appeals.build())
    application.add_handlers(deregistration.build())
    application.add_handlers(renewal.build())
    application.add_handlers(registration.build())
    application.add_handlers(recheck.build())
    application.add_handlers(account.build())
    application.add_handlers(privacy.build())
    application.add_handlers(account.build_unknown())
    application.add_handlers(registration.build_fallbacks())
    application.add_error_handler(errors.on_error)


async def _mark_send_priority(update: Update, _context: Context) -> None:
    """The sends of this update learn whose they are (bot.send_limiter's priorities)."""
    mark_update(update)


async def _drop_non_private_other(update: Update, context: Context) -> None:
    """Callback queries, edits and channel posts from outside private chats are ignored."""
    chat = update.effective_chat
    if chat is not None and chat.type != "private":
        await common.refuse_non_private(update, context)


def bot_commands(context_catalogs: Catalogs, language: str) -> list[BotCommand]:
    """The command menu in one language."""
    _ = context_catalogs.get(language)._
    return [
        BotCommand("start", _("Start or continue registration")),
        BotCommand("status", _("See where your application stands")),
        BotCommand("datasaya", _("See the data stored about you")),
        BotCommand("batal", _("Cancel the registration in progress")),
        BotCommand("sanggah", _("Appeal a decision on your application")),
        BotCommand("bahasa", _("Change the language")),
        BotCommand("hapusdata", _("Withdraw consent and delete my data")),
        BotCommand("bantuan", _("Help and contact")),
    ]


async def on_startup(application: RentanApp) -> None:
    """Publish the command menu in every language (post_init: run_polling, bot.running)."""
    services = application.bot_data.services
    assert services is not None
    for language in ("id", "en"):
        await application.bot.set_my_commands(
            bot_commands(services.catalogs, language),
            language_code=None if language == services.catalogs.default else language,
        )
    # Staff get their own menu in their own chat (a person who never started the bot is
    # skipped: Telegram knows no such chat; /staf or the next start-up sets it).
    for member in await every_staff_member(settings=services.settings, staff=services.staff):
        await staff_menu.publish_staff_menu(
            application.bot, services.catalogs, member.user_id, member
        )


async def on_shutdown(application: RentanApp) -> None:
    """Close database connections."""
    services = application.bot_data.services
    if services is not None:
        await services.database.dispose()


async def migrate_database(settings: Settings) -> None:
    """Apply migrations with a short-lived engine, before the bot's own engine opens."""
    async with open_database(settings.database_url, synchronous=settings.sqlite_synchronous):
        pass


def apply_cpu_affinity(settings: Settings) -> None:
    """Keep this process on the CPUs of CPU_AFFINITY, when set."""
    if settings.cpu_affinity:
        os.sched_setaffinity(0, settings.cpu_affinity)
        log.info("running on CPUs %s", ",".join(map(str, sorted(settings.cpu_affinity))))


def settle_startup_heap() -> None:
    """Exempt everything built at startup from garbage collection (`gc.freeze`).

    Modules, catalogs, region data and the application live as long as the process; without
    this every full collection walks them again: ~200 ms pauses measured under load, 64 ms after.
    """
    gc.collect()
    gc.freeze()


# Production runs PTB's own run_polling/run_webhook rather than bot.running.running: they own
# the event loop and the SIGINT/SIGTERM handling, and start and stop in the same order.


def run_polling(settings: Settings) -> None:
    """Production entry point: migrate, then long-poll until SIGINT/SIGTERM."""
    configure_logging(settings.log_level)
    apply_cpu_affinity(settings)
    asyncio.run(migrate_database(settings))
    application = build_application(settings)
    settle_startup_heap()
    log.info("rentan-bot polling %s", settings.telegram_api_url)
    application.run_polling(allowed_updates=Update.ALL_TYPES, drop_pending_updates=False)


def run_webhook(settings: Settings) -> None:
    """Production entry point behind a reverse proxy: migrate, then serve webhooks."""
    configure_logging(settings.log_level)
    apply_cpu_affinity(settings)
    asyncio.run(migrate_database(settings))
    application = build_application(settings)
    settle_startup_heap()
    log.info(
        "rentan-bot webhook on %s:%d%s for %s",
        settings.webhook_listen,
        settings.webhook_port,
        settings.webhook_path,
        settings.webhook_url,
    )
    # PTB's server answers 403 to a request without this secret, so only Telegram can inject
    # updates; TLS is the proxy's job, hence no cert/key here.
    application.run_webhook(
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        url_path=settings.webhook_path,
        secret_token=settings.require_webhook_secret(),
        webhook_url=settings.webhook_url,
        allowed_updates=Update.ALL_TYPES,
        drop_pending_updates=False,
    )
