"""Several webhook processes on one PostgreSQL: nothing that decides behaviour lives in one
process's memory, and each scheduled run is done by one process (issue 18, items 1 and 2)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from telegram.ext import Job

from bot.app import RentanApp
from config.settings import SettingsError
from emulator import BotApiEmulator, EmulatedUser
from handlers.context import Context
from handlers.flood import per_process_limit
from handlers.housekeeping import tidy_drafts
from handlers.scheduling import once_across_processes
from storage.card_leases import CardLeaseRepository
from storage.engine import Database
from storage.jobs import JobClaims
from testkit.cluster import WEBHOOK_SECRET, Cluster, webhook_cluster
from testkit.factories import make_person
from testkit.fakes import add_application, row_of, seed_dtsen
from testkit.harness import make_settings

ADMIN = 900001
REVIEWER = 900002
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
REMINDER = r"belum selesai"
SLOW_DOWN = r"Pelan-pelan|pelan"

# The multi-process cases run where several processes can share a database: PostgreSQL.
on_postgres = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
async def cluster(emulator: BotApiEmulator, database_url: str) -> AsyncIterator[Cluster]:
    """Two webhook processes on one PostgreSQL behind a round-robin proxy."""
    emulator.webhook_retry_initial = 0.05
    async with webhook_cluster(
        emulator, database_url, draft_reminder_minutes=1, housekeeping_interval_seconds=600
    ) as running:
        yield running


def job_context(app: RentanApp, name: str) -> tuple[Job[Any], Context]:
    """One of the application's scheduled jobs and the context the JobQueue would give it."""
    assert app.job_queue is not None
    (job,) = app.job_queue.get_jobs_by_name(name)
    return job, Context.from_job(job, app)


async def run_job(app: RentanApp, name: str) -> None:
    """Run a scheduled job of one process now, as its JobQueue would (claim included)."""
    job, context = job_context(app, name)
    await job.callback(context)


async def start_a_draft(user: EmulatedUser) -> None:
    """/start and consent: the worker has a draft at its first question."""
    await user.send("/start")
    await user.expect(r"Selamat datang")
    await user.press("✅ Setuju")
    await user.expect(r"\(1/9\)")


def later(cluster: Cluster, minutes: float) -> None:
    """Move every process's clock `minutes` ahead of now."""
    moved = datetime.now(UTC) + timedelta(minutes=minutes)
    for index in range(len(cluster.apps)):
        cluster.services(index).clock = lambda moved=moved: moved


def replies(user: EmulatedUser, pattern: str) -> int:
    """How many of the bot's messages in this chat match `pattern`."""
    return sum(
        1 for m in user.transcript() if m.from_bot and re.search(pattern, m.message.text or "")
    )


# --- item 1: nothing that decides behaviour in one process's memory -----------------------------


@on_postgres
async def test_language_chosen_through_one_process_is_used_by_the_next_reply_of_another(
    cluster: Cluster, emulator: BotApiEmulator
) -> None:
    """/bahasa English handled by process A: process B, which had already answered the worker
    in Bahasa, answers the next message in English."""
    user = emulator.user(610001)
    cluster.route_to(1)
    await user.send("/bantuan")
    await user.expect(r"Bantuan|bantuan")
    cluster.route_to(0)
    await user.send("/bahasa")
    await user.expect(r"Pilih bahasa")
    await user.press("English")
    await user.expect(r"Language set")
    cluster.route_to(1)
    await user.send("/start")
    await user.expect(r"Welcome")


@on_postgres
async def test_card_opened_through_one_process_is_left_to_its_reviewer_in_another(
    cluster: Cluster, emulator: BotApiEmulator
) -> None:
    """A reviewer's /tinjau served by A leases the card; the admin's /tinjau served by B gets
    the next application, not the same one."""
    services = cluster.services(0)
    codes = [f"BKS-T{index:05d}" for index in range(2)]
    for index, code in enumerate(codes):
        await add_application(
            services.database,
            services.secret,
            make_person(6100 + index),
            user_id=611000 + index,
            code=code,
            submitted_at=NOW + timedelta(minutes=index),
        )
    reviewer, admin = emulator.user(REVIEWER), emulator.user(ADMIN)
    cluster.route_to(0)
    await reviewer.send("/tinjau")
    first = await reviewer.expect(r"BKS-T")
    cluster.route_to(1)
    await admin.send("/tinjau")
    second = await admin.expect(r"BKS-T")
    shown = [code for code in codes if code in first.text or code in second.text]
    assert shown == codes


async def test_card_leases_expire_and_follow_their_reviewer(database: Database) -> None:
    """A card is held by its reviewer until the lease runs out or they open another one; a
    card another reviewer holds cannot be taken."""
    leases = CardLeaseRepository(database, lease=timedelta(seconds=60))
    assert await leases.take(application_id=1, reviewer_id=10, now=NOW)
    assert await leases.held_by_others(reviewer_id=20, now=NOW) == [1]
    assert await leases.held_by_others(reviewer_id=10, now=NOW) == []
    assert not await leases.take(application_id=1, reviewer_id=20, now=NOW)
    # Moving to the next card frees the previous one.
    assert await leases.take(application_id=2, reviewer_id=10, now=NOW)
    assert await leases.held_by_others(reviewer_id=20, now=NOW) == [2]
    assert await leases.take(application_id=1, reviewer_id=20, now=NOW)
    expired = NOW + timedelta(seconds=61)
    assert await leases.held_by_others(reviewer_id=30, now=expired) == []
    assert await leases.take(application_id=2, reviewer_id=30, now=expired)


def test_each_process_admits_its_share_of_the_flood_limit() -> None:
    """FLOOD_MAX_UPDATES split over BOT_PROCESSES, rounded up, never below one."""
    assert per_process_limit(20, 1) == 20
    assert per_process_limit(20, 3) == 7
    assert per_process_limit(1, 4) == 1


def test_several_processes_need_a_webhook() -> None:
    """BOT_PROCESSES above 1 with polling is refused, naming the variable."""
    with pytest.raises(SettingsError, match="BOT_PROCESSES"):
        make_settings("http://127.0.0.1:1", "sqlite+aiosqlite:///x.db", bot_processes=2)


@on_postgres
async def test_flooding_account_is_held_to_the_limit_across_two_processes(
    emulator: BotApiEmulator, database_url: str
) -> None:
    """FLOOD_MAX_UPDATES=4 over two processes: of five quick /bantuan, four are answered and
    the fifth gets the one slow-down message, as a single process would do."""
    async with webhook_cluster(emulator, database_url, flood_max_updates=4):
        user = emulator.user(612001)
        for _ in range(5):
            await user.send("/bantuan")
        for _ in range(5):
            await user.expect(r".")  # five messages, in whatever order they were sent
        await user.expect_no_reply(0.5)
        assert replies(user, SLOW_DOWN) == 1
        assert replies(user, r"/bahasa") == 4


@on_postgres
async def test_update_handled_by_one_process_is_dropped_when_redelivered_to_another(
    cluster: Cluster, emulator: BotApiEmulator
) -> None:
    """Telegram redelivers the consent press A handled (its answer was lost) and the proxy
    hands it to B: B finds it in the shared log of handled updates and does nothing again."""
    user = emulator.user(613001)
    cluster.route_to(0)
    await user.send("/start")
    await user.expect(r"Selamat datang")
    await user.press("✅ Setuju")
    await user.expect(r"\(1/9\)")
    delivered = cluster.proxy.bodies[-1]
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            cluster.proxy.targets[1],
            content=delivered,
            headers={
                "Content-Type": "application/json",
                "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
            },
        )
    assert answer.status_code == 200
    await user.expect_no_reply(0.5)
    assert replies(user, r"\(1/9\)") == 1


@on_postgres
async def test_typed_reason_started_in_one_process_is_read_and_sent_by_another(
    cluster: Cluster, emulator: BotApiEmulator
) -> None:
    """The reviewer presses "type a reason" in A, types it in B and presses Kirim in A: the
    worker's application is rejected with that reason."""
    services = cluster.services(0)
    code = "BKS-T00100"
    await add_application(
        services.database,
        services.secret,
        make_person(6140),
        user_id=614000,
        code=code,
        submitted_at=NOW,
    )
    reviewer = emulator.user(REVIEWER)
    cluster.route_to(0)
    await reviewer.send(f"/tinjau {code}")
    await reviewer.expect(re.escape(code))
    await reviewer.press("❌ Tolak")
    await reviewer.expect(r"Mengapa")
    await reviewer.press("✍️ Ketik alasan")
    await reviewer.expect(r"Ketik alasan")
    cluster.route_to(1)
    await reviewer.send("KTP luar kota")
    preview = await reviewer.expect(r"KTP luar kota")
    assert preview.button_labels() == ["✅ Kirim", "✖️ Batal"]
    cluster.route_to(0)
    await reviewer.press("✅ Kirim")
    await reviewer.expect(r"ditolak")
    application = await services.review.find(code=code)
    assert application is not None
    assert (application.status, application.decision_reason) == ("rejected", "KTP luar kota")


# --- item 2: scheduled work runs once across processes ------------------------------------------


@on_postgres
async def test_reminder_is_sent_once_when_two_processes_run_the_job_at_the_same_moment(
    cluster: Cluster, emulator: BotApiEmulator
) -> None:
    """Both processes' housekeeping runs at once (no job claim in the way): the idle worker
    gets one reminder, claimed row by row."""
    user = emulator.user(615001)
    await start_a_draft(user)
    later(cluster, 2)
    await asyncio.gather(
        *(tidy_drafts(job_context(app, "tidy-drafts")[1]) for app in cluster.apps)
    )
    await user.expect(REMINDER)
    await user.expect_no_reply(0.3)
    assert replies(user, REMINDER) == 1


@on_postgres
async def test_scheduled_job_fired_in_both_processes_at_once_runs_in_one(cluster: Cluster) -> None:
    """The same tick of a job in both processes: one claims it and runs it, the other skips."""
    ran: list[str] = []

    async def probe(context: Context) -> None:
        ran.append(context.services.jobs.owner)

    job = once_across_processes(probe, name="probe", interval=300)
    await asyncio.gather(*(job(job_context(app, "tidy-drafts")[1]) for app in cluster.apps))
    assert len(ran) == 1


@on_postgres
async def test_claim_of_a_dead_process_runs_out_and_another_process_runs_the_job(
    cluster: Cluster, emulator: BotApiEmulator
) -> None:
    """Process A claims housekeeping and dies: B skips it while the claim holds (one interval,
    10 minutes here) and runs it, reminding the idle worker, once the claim ran out."""
    user = emulator.user(616001)
    await start_a_draft(user)
    await run_job(cluster.apps[0], "tidy-drafts")  # nothing idle yet; the claim is A's
    await cluster.apps[0].stop()  # A dies (its claim stays behind)
    later(cluster, 2)  # the draft is idle, A's claim still holds
    await run_job(cluster.apps[1], "tidy-drafts")
    await user.expect_no_reply(0.3)
    later(cluster, 11)  # the claim ran out
    await run_job(cluster.apps[1], "tidy-drafts")
    await user.expect(REMINDER)
    assert replies(user, REMINDER) == 1


async def test_job_claim_holds_for_its_interval_then_passes_to_another_process(
    database: Database,
) -> None:
    """A claim keeps other processes out for its time to live; its owner may claim again; once
    it ran out another process takes it."""
    first, second = JobClaims(database, owner="a"), JobClaims(database, owner="b")
    ttl = timedelta(minutes=5)
    assert await first.claim(name="tidy-drafts", now=NOW, ttl=ttl)
    assert not await second.claim(name="tidy-drafts", now=NOW + timedelta(minutes=4), ttl=ttl)
    assert await second.claim(name="other-job", now=NOW, ttl=ttl)
    assert await first.claim(name="tidy-drafts", now=NOW + timedelta(minutes=1), ttl=ttl)
    assert not await second.claim(name="tidy-drafts", now=NOW + timedelta(minutes=5), ttl=ttl)
    assert await second.claim(name="tidy-drafts", now=NOW + timedelta(minutes=6), ttl=ttl)
    assert not await first.claim(name="tidy-drafts", now=NOW + timedelta(minutes=7), ttl=ttl)


@on_postgres
async def test_answer_coming_back_to_a_process_is_read_against_the_step_another_stored(
    cluster: Cluster, emulator: BotApiEmulator
) -> None:
    """Round-robin sends a worker's answers to A, B, A: B stored the NIK, so A takes the next
    answer as the name (found by the issue-18 proof: A used to read the draft it had cached at
    the NIK question and answered "a NIK contains only digits")."""
    person = make_person(6140)
    services = cluster.services(0)
    await seed_dtsen(services.database, services.secret, [row_of(person)])
    user = emulator.user(614001)
    cluster.route_to(0)
    await start_a_draft(user)
    cluster.route_to(1)
    await user.send(person.nik)
    await user.expect(r"\(2/9\)")
    cluster.route_to(0)
    await user.send(person.name)
    await user.expect(r"\(3/9\)")
    cluster.route_to(1)
    await user.send(f"{person.birth_date:%d-%m-%Y}")
    await user.expect(r"\(4/9\)")
