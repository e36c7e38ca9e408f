"""The duplicate guard and the staff-input check: what a polling process keeps in memory and
what a webhook process (one of several) asks the database every time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from telegram import Update
from telegram.ext import ApplicationHandlerStop

from handlers.common import DuplicateGuard
from storage.engine import Database
from storage.staff import StaffRepository
from storage.updates import UpdateLog, record_update

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


class CountingLog(UpdateLog):
    """The real update log, counting the per-update look-ups."""

    lookups = 0

    async def was_processed(self, *, update_id: int) -> bool:
        self.lookups += 1
        return await super().was_processed(update_id=update_id)


@dataclass
class Services:
    """The two services the guard uses."""

    updates: CountingLog
    clock: object = field(default=lambda: NOW)


@dataclass
class Context:
    services: Services


async def passes(guard: DuplicateGuard, context: Context, update_id: int) -> bool:
    """Whether the guard lets this update through."""
    try:
        await guard(Update(update_id=update_id), context)  # type: ignore[arg-type]
    except ApplicationHandlerStop:
        return False
    return True


async def test_polling_guard_drops_what_was_handled_before_a_restart_without_a_read_per_update(
    database: Database,
) -> None:
    """A polling process is the token's only consumer: the ids handled before it started are
    read once, a redelivered one is dropped, and new updates cost no database read."""
    await record_update(database, 7)
    context = Context(Services(CountingLog(database)))
    guard = DuplicateGuard(shared=False)
    await guard.preload(context.services)  # type: ignore[arg-type]
    assert not await passes(guard, context, 7)
    assert await passes(guard, context, 8)
    assert await passes(guard, context, 3)  # ids are not ordered (a quiet week restarts them)
    assert not await passes(guard, context, 8)
    assert context.services.updates.lookups == 0


async def test_webhook_guard_drops_an_update_another_process_handled(database: Database) -> None:
    """Webhook processes share the updates: an id this process never saw is looked up."""
    context = Context(Services(CountingLog(database)))
    guard = DuplicateGuard(shared=True)
    await guard.preload(context.services)  # type: ignore[arg-type]
    assert await passes(guard, context, 11)
    await record_update(database, 12)  # handled by another process
    assert not await passes(guard, context, 12)
    assert context.services.updates.lookups == 2


@pytest.mark.parametrize("shared", [False, True])
async def test_pending_staff_input_is_found_after_a_restart_and_when_started_here(
    database: Database, *, shared: bool
) -> None:
    """A wait started before the process started and one started by it are both found; a
    member with none has none (polling: without a read per update)."""
    before = StaffRepository(database, shared=shared)
    await before.await_reason(user_id=1, application_id=10, status_read="pending", now=NOW)
    staff = StaffRepository(database, shared=shared)
    assert (await staff.pending_input(user_id=1, now=NOW)) is not None
    assert (await staff.pending_input(user_id=2, now=NOW)) is None
    await staff.await_reason(user_id=2, application_id=11, status_read="pending", now=NOW)
    assert (await staff.pending_input(user_id=2, now=NOW)) is not None
    assert await staff.end_input(user_id=2)
    assert (await staff.pending_input(user_id=2, now=NOW)) is None


async def test_webhook_process_sees_a_wait_another_process_started(database: Database) -> None:
    """With several processes, a wait started elsewhere after this one first looked is seen."""
    here = StaffRepository(database, shared=True)
    assert (await here.pending_input(user_id=3, now=NOW)) is None
    elsewhere = StaffRepository(database, shared=True)
    await elsewhere.await_reason(user_id=3, application_id=12, status_read="pending", now=NOW)
    assert (await here.pending_input(user_id=3, now=NOW)) is not None
