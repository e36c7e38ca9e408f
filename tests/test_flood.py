"""Flood throttling: one account's excess is dropped cheaply, everyone else is served."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from emulator import BotApiEmulator, EmulatedUser
from handlers.flood import FloodGate, Verdict
from testkit.factories import make_person
from testkit.harness import Harness
from tests.test_registration import give_identity, reach_nik, seed

LIMIT = 10
SLOW_DOWN = r"Pelan-pelan"


@pytest.fixture
async def harness(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> AsyncIterator[Harness]:
    """The bot with a small flood limit and a window longer than any test."""
    h = Harness(
        emulator,
        tmp_path,
        database_url=database_url,
        flood_max_updates=LIMIT,
        flood_window_seconds=3600,
    )
    app = await h.start()
    # The outbox and housekeeping jobs query the database on their own schedule; without
    # them every statement counted below comes from handling updates.
    assert app.job_queue is not None
    for job in app.job_queue.jobs():
        job.schedule_removal()
    try:
        yield h
    finally:
        await h.stop()


def _bot_messages(user: EmulatedUser) -> list[str]:
    """New messages from the bot (edits of earlier ones are not counted)."""
    return [e.message.text or "" for e in user.transcript() if e.from_bot and e.kind == "message"]


async def _flood(user: EmulatedUser, count: int) -> None:
    for index in range(count):
        await user.send(f"spam {index}")


def _count_statements(harness: Harness) -> list[int]:
    """A counter of SQL statements the bot's engine runs from now on."""
    counter = [0]

    def _count(*_args: Any) -> None:
        counter[0] += 1

    event.listen(harness.services.database.engine.sync_engine, "before_cursor_execute", _count)
    return counter


async def test_flooding_account_gets_one_slow_down_message_and_costs_no_database_work(
    harness: Harness,
) -> None:
    """Past the limit, updates are dropped before any handler touches the database, and the
    account reads one short message for the whole window."""
    user = harness.user(880001)
    await reach_nik(user)  # two updates of the ten
    await _flood(user, 300)
    # The chat's updates run in order: once the slow-down message is out, every admitted one
    # (each looked up in the update log) is done, and the rest touch no database.
    await user.expect(SLOW_DOWN, timeout=30)
    await harness.emulator.wait_idle(timeout=30)
    messages = _bot_messages(user)
    assert sum(1 for m in messages if "Pelan-pelan" in m) == 1
    # The welcome (which became the NIK question), one answer to each of the 8 admitted, one
    # slow-down message.
    assert len(messages) == 1 + (LIMIT - 2) + 1

    statements = _count_statements(harness)
    await _flood(user, 300)
    await harness.emulator.wait_idle(timeout=30)
    assert statements[0] == 0
    assert len(_bot_messages(user)) == len(messages)


async def test_another_worker_registers_normally_while_one_account_floods(
    harness: Harness,
) -> None:
    """A flood from one account neither stops nor throttles a worker registering beside it."""
    person = make_person(8802)
    await seed(harness, person)
    flooder = harness.user(880002)
    worker = harness.user(880003)

    async def register() -> None:
        await reach_nik(worker)
        await give_identity(worker, person)
        await worker.expect(r"\(4/9\) Kirim nomor HP")

    await asyncio.gather(_flood(flooder, 500), register())
    await harness.emulator.wait_idle(timeout=30)
    assert not any("Pelan-pelan" in m for m in _bot_messages(worker))
    assert sum(1 for m in _bot_messages(flooder) if "Pelan-pelan" in m) == 1


async def test_staff_from_the_settings_are_not_throttled(harness: Harness) -> None:
    """A reviewer working fast is never cut off."""
    reviewer = harness.user(900002)
    for _ in range(LIMIT + 5):
        await reviewer.send("/antrian")
        await reviewer.expect(r"menunggu verifikasi")
    assert not any("Pelan-pelan" in m for m in _bot_messages(reviewer))


def test_flood_gate_admits_the_limit_per_window_and_warns_once() -> None:
    """The counter: `limit` admitted, one warning, silence, and a fresh window later."""
    gate = FloodGate(limit=3, window=10)
    verdicts = [gate.check(1, now=0.5 * i) for i in range(6)]
    assert verdicts == [Verdict.ADMIT] * 3 + [Verdict.DROP_AND_WARN, Verdict.DROP, Verdict.DROP]
    assert gate.check(2, now=3.0) is Verdict.ADMIT
    assert gate.check(1, now=10.0) is Verdict.ADMIT


def test_flood_gate_forgets_accounts_whose_window_ended() -> None:
    """Memory stays bounded: stale accounts are pruned when the table is full."""
    gate = FloodGate(limit=3, window=10, prune_at=100)
    for account in range(100):
        gate.check(account, now=0.0)
    gate.check(1000, now=20.0)
    assert len(gate) == 1
