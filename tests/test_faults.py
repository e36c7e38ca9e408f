"""Telegram misbehaving: 429 answers are waited out and retried; nothing is sent twice."""

from __future__ import annotations

import asyncio
import re

import pytest
import sqlalchemy as sa
from telegram.ext import Job

from domain.lifecycle import Status
from emulator import EmulatedUser
from handlers.context import Context
from handlers.notifications import deliver_notifications
from storage.models import Application, Notification
from storage.notifications import IN_FLIGHT
from testkit.factories import make_person
from testkit.fakes import add_application
from testkit.harness import Harness
from tests.test_registration import reach_nik, seed


async def test_429_on_a_reply_is_retried_and_the_worker_sees_it_once(harness: Harness) -> None:
    """With production's rate limiter, a 429 with retry_after is waited out, then sent once."""
    harness.rate_limit = 30.0
    await harness.restart()
    person = make_person(7701)
    await seed(harness, person)
    user = harness.user(770001)
    await reach_nik(user)
    harness.emulator.inject_fault("sendMessage", "429", times=1, retry_after=1)
    await user.send(person.nik)
    await user.expect(r"\(2/9\)", timeout=10)
    await user.expect_no_reply(within=0.5)
    prompts = [e for e in user.transcript() if e.from_bot and "(2/9)" in e.message.text]
    assert len(prompts) == 1


async def test_5xx_on_a_reply_keeps_the_answer_and_apologises(harness: Harness) -> None:
    """The answer is committed before the reply fails; the worker is told to try again."""
    person = make_person(7702)
    await seed(harness, person)
    user = harness.user(770002)
    await reach_nik(user)
    harness.emulator.inject_fault("sendMessage", "5xx", times=1)
    await user.send(person.nik)
    await user.expect(r"ada gangguan")
    await user.send("/status")
    await user.expect(r"\(2/9\)")


# -- worker notifications (the outbox) while Telegram misbehaves --------------------------------

REVIEWER = 900002
APPROVED_NOTICE = r"sudah disetujui"
REJECTED_NOTICE = r"tidak disetujui"


async def _pending_worker(harness: Harness, user_id: int) -> tuple[EmulatedUser, str]:
    """A worker with a submitted application (written directly) and a chat the emulator knows."""
    worker = harness.user(user_id)
    code = f"BKS-F{user_id % 100000:05d}"
    services = harness.services
    await add_application(
        services.database, services.secret, make_person(user_id), user_id=user_id, code=code
    )
    return worker, code


async def _decide(harness: Harness, command: str) -> None:
    """A reviewer's decision by command, answered to the reviewer."""
    reviewer = harness.user(REVIEWER)
    await reviewer.send(command)
    await reviewer.expect(r"disetujui|ditolak")


async def _deliver_now(harness: Harness) -> None:
    """Run the outbox job's callback now, as the JobQueue would."""
    assert harness.app is not None
    await deliver_notifications(Context.from_job(Job(deliver_notifications), harness.app))


async def _settled_notification(harness: Harness, code: str) -> Notification:
    """The worker's notification once its latest send was answered (or given up)."""
    for _ in range(200):
        async with harness.services.database.read() as session:
            note = (
                await session.execute(
                    sa.select(Notification)
                    .join(Application, Application.id == Notification.application_id)
                    .where(Application.code == code)
                )
            ).scalar_one_or_none()
        if note is not None and note.attempts > 0 and note.last_error != IN_FLIGHT:
            return note
        await asyncio.sleep(0.05)
    raise AssertionError(f"the notification of {code} was never attempted")


def _notices(worker: EmulatedUser, pattern: str) -> int:
    """How many bot messages in the worker's chat match."""
    return sum(
        1 for e in worker.transcript() if e.from_bot and re.search(pattern, e.message.text or "")
    )


async def _status(harness: Harness, code: str) -> str:
    async with harness.services.database.read() as session:
        query = sa.select(Application.status).where(Application.code == code)
        return str((await session.execute(query)).scalar_one())


async def test_worker_sees_the_approval_once_when_telegram_answers_429(harness: Harness) -> None:
    """A 429 on the notification is waited out by the rate limiter and sent exactly once."""
    harness.rate_limit = 30.0
    await harness.restart()
    worker, code = await _pending_worker(harness, 771001)
    harness.emulator.inject_fault("sendMessage", "429", retry_after=1, chat_id=worker.id)
    await _decide(harness, f"/setujui {code}")
    await worker.expect(APPROVED_NOTICE, timeout=10)
    note = await _settled_notification(harness, code)
    await _deliver_now(harness)
    await worker.expect_no_reply(within=0.3)
    assert _notices(worker, APPROVED_NOTICE) == 1
    assert (note.sent_at is not None, note.last_error) == (True, None)
    assert await _status(harness, code) == Status.APPROVED


@pytest.mark.parametrize(
    ("command", "notice", "status"),
    [
        ("/setujui {code}", APPROVED_NOTICE, Status.APPROVED),
        ("/tolak {code} Bukan pekerja informal", REJECTED_NOTICE, Status.REJECTED),
    ],
    ids=["approve", "reject"],
)
async def test_worker_sees_the_decision_once_when_telegram_answers_5xx(
    harness: Harness, command: str, notice: str, status: str
) -> None:
    """A 5xx means Telegram sent nothing: the decision stays, the next outbox run delivers it
    once, and later runs send nothing more."""
    worker, code = await _pending_worker(harness, 771002)
    harness.emulator.inject_fault("sendMessage", "5xx", chat_id=worker.id)
    await _decide(harness, command.format(code=code))
    failed = await _settled_notification(harness, code)
    assert failed.sent_at is None
    assert "Bad Gateway" in (failed.last_error or "")
    assert await _status(harness, code) == status
    assert _notices(worker, notice) == 0
    await _deliver_now(harness)
    await worker.expect(notice)
    await _deliver_now(harness)
    await worker.expect_no_reply(within=0.3)
    assert _notices(worker, notice) == 1


async def test_worker_sees_the_decision_once_when_telegram_answers_slowly(
    harness: Harness,
) -> None:
    """A slow answer (within the read timeout) is waited for; nothing is sent again."""
    worker, code = await _pending_worker(harness, 771003)
    harness.emulator.inject_fault("sendMessage", "slow", delay=1.0, chat_id=worker.id)
    await _decide(harness, f"/setujui {code}")
    await worker.expect(APPROVED_NOTICE)
    note = await _settled_notification(harness, code)
    await _deliver_now(harness)
    await worker.expect_no_reply(within=0.3)
    assert _notices(worker, APPROVED_NOTICE) == 1
    assert note.last_error is None


async def test_worker_sees_the_decision_once_when_the_answer_to_a_delivered_send_is_lost(
    harness: Harness,
) -> None:
    """Telegram delivered the message but its answer never arrived (read timeout): the send is
    recorded as unconfirmed and never repeated, so the worker does not read the decision twice."""
    harness.read_timeout = 0.3
    await harness.restart()
    worker, code = await _pending_worker(harness, 771004)
    harness.emulator.inject_fault("sendMessage", "slow", delay=2.0, chat_id=worker.id)
    await _decide(harness, f"/setujui {code}")
    await worker.expect(APPROVED_NOTICE)
    note = await _settled_notification(harness, code)
    assert (note.last_error or "").startswith("unconfirmed")
    await _deliver_now(harness)
    await worker.expect_no_reply(within=0.3)
    assert _notices(worker, APPROVED_NOTICE) == 1
    assert await _status(harness, code) == Status.APPROVED


async def test_dropped_notification_is_never_sent_twice_and_status_tells_the_decision(
    harness: Harness,
) -> None:
    """A dropped connection gives no answer, so the bot cannot know whether Telegram delivered.

    Design choice (handlers/notifications.py): such a send is never repeated, because a worker
    must not read one decision twice. When the drop happened before Telegram delivered (as the
    emulator's "drop" does) the worker gets no push; /status still shows the decision."""
    worker, code = await _pending_worker(harness, 771005)
    harness.emulator.inject_fault("sendMessage", "drop", chat_id=worker.id)
    await _decide(harness, f"/setujui {code}")
    note = await _settled_notification(harness, code)
    assert (note.last_error or "").startswith("unconfirmed")
    await _deliver_now(harness)
    await worker.expect_no_reply(within=0.3)
    # The price of never repeating: this drop came before delivery, so no push at all.
    assert _notices(worker, APPROVED_NOTICE) == 0
    assert await _status(harness, code) == Status.APPROVED
    await worker.send("/status")
    await worker.expect(r"Status: disetujui")


async def test_apology_comes_in_the_language_the_worker_chose(harness: Harness) -> None:
    """A worker who switched to English is apologised to in English."""
    user = harness.user(770003)
    await user.send("/bahasa")
    await user.expect(r"Pilih bahasa")
    await user.press("English")
    await user.expect(r"Language set to English")
    harness.emulator.inject_fault("sendMessage", "5xx", times=1)
    await user.send("/bantuan")
    await user.expect(r"Sorry, something went wrong")
