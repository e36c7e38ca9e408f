"""A property test of the whole bot: random workers and staff drive the real application.

A Hypothesis state machine runs the bot polling the emulator over HTTP on a fresh database per
example (a SQLite file, or a PostgreSQL database: only there do concurrent decisions really
overlap), with a small quota and a few applications already in the queue. Workers give valid
answers of synthetic people (several may claim the same person, some are not eligible), junk,
very long text, HTML/Markdown, media and contacts, forged buttons, edits and commands at any
step, /start and /batal mid-flow, /hapusdata; staff open cards and press their buttons, type
decisions, and all three decide at the same moment; the bot restarts (also with another quota)
and gets the last updates again after a simulated crash.

Invariants, checked after every step:
- approved + enrolled never exceed the effective quota (after the quota was lowered below what
  was taken: never more than was taken then, and freed places are not given out again);
- at most one live application per NIK and one open application per Telegram account;
- every application number acknowledged to a worker is stored for that worker (unless they
  erased their data afterwards);
- every application's newest audit event leads to its status, and each state change starts
  from the status the one before it left (two decisions from the same status would not);
  every decision is by staff;
- the logs hold no NIK, phone number or desil of any synthetic person, and no ERROR (a handler
  that raised);
- every update is answered or deliberately ignored. Answered: each message, command, media,
  contact or edit gets at least one bot message or edit in its chat before the bot is idle
  again, and each button press (real, stale or forged, by anyone) gets answerCallbackQuery.
  Deliberately ignored: only an update delivered again after a crash, which may get no answer
  (or the same read-only answer again) but must change no application and write no audit
  event (a refused staff attempt may be audited again).

`HYPOTHESIS_PROFILE=soak` (`make soak`) runs many more and longer examples.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import random
import re
import shutil
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import col

from bot.logs import RedactingFilter, RedactingFormatter, configure_logging
from bot.processor import PerChatUpdateProcessor
from domain.flow import FIELD_LABELS, Step
from domain.lifecycle import LIVE_STATUSES, Status
from domain.program import HEIR_RELATIONS, OCCUPATIONS
from emulator import BotApiEmulator, EmulatedUser
from handlers.staff_card import REJECT_REASONS
from storage.models import Application, AuditEvent
from testkit.factories import Person, make_people
from testkit.fakes import make_application, row_of, seed_dtsen
from testkit.harness import Harness
from testkit.postgres import PostgresServer

T = TypeVar("T")

ADMIN = 900001
REVIEWERS = (900002, 900003)
STAFF = (ADMIN, *REVIEWERS)
WORKERS = (100001, 100002, 100003, 100004)
# Accounts whose applications were submitted before the run (written to the database).
EARLIER = (100101, 100102, 100103)
# Eligible people, one whose DTSEN desil is too high, one DTSEN does not know.
ELIGIBLE, TOO_RICH, UNKNOWN = 4, 4, 5
CODE = re.compile(r"BKS-[0-9A-HJKMNP-TV-Z]{6}")
ACK = re.compile(r"Pendaftaran Anda sudah dikirim|Your application has been sent")
ERASED = re.compile(r"data Anda sudah dihapus|your data has been deleted")
PREMIUM = 201_600
# Choices that depend on the bot's state (which step, which applications exist) come from a
# random.Random seeded by Hypothesis: the bot is concurrent, so the state after the same
# steps can differ, and draws shaped by it would make Hypothesis' data generation
# inconsistent.
SEEDS = st.integers(0, 2**32 - 1)
# How long the bot may stay busy after the emulator went quiet before that counts as a hang.
SETTLE_BOUND = 30.0
FORGED_DATA = (
    "reg:nik:3275011708850001",
    "reg:occupation:ojol",
    "reg:occupation:astronaut",
    "reg:kecamatan:317101",
    "reg:kelurahan:back",
    "reg:summary:send",
    "reg:edit:nik",
    "reg:heir_relation:",
    "reg::",
    "consent:yes",
    "consent:no",
    "consent:maybe",
    "erase:no",
    "lang:en",
    "lang:xx",
    "sq:3",
    "sq:-1",
    "sv:ap:1",
    "sv:ap:999999",
    "sv:rj:1",
    "sv:rr:1:documents",
    "sv:rr:2:nonsense",
    "sv:ff:1:nik",
    "sv:fs:1:nik",
    "sv:cx:1",
    "sv:fx:abc",
    "sv:nx:1",
    "sv:sk:1",
    "sv",
    "x",
    "🎉",
)
MARKUP_TEXT = (
    "<b>tebal</b> & <i>miring",
    "*bintang* _garis_ `kode` [tautan](http://127.0.0.1/)",
    "</code><script>alert(1)</script>",
    "&amp; &lt; &#0; &",
    "\\*escaped\\* ~coret~ ||spoiler|| > kutip",
    'Jl. Melati <No. 5> RT 01/RW 02 & "gang"',
)


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged during a run, through the production handler set-up, at DEBUG."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    quiet = ("telegram", "aiosqlite", "httpx", "httpcore", "apscheduler", "alembic")
    saved_levels = {name: logging.getLogger(name).level for name in quiet}
    configure_logging("DEBUG")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    # Only our handler: the production one would write every record to stderr.
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for existing in saved_handlers:
            root.addHandler(existing)
        root.setLevel(saved_level)
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


@dataclass
class Expectations:
    """What the bot owes for the updates of one step."""

    replies: list[tuple[int, int]] = field(default_factory=list)  # (chat id, event index)
    answers: list[str] = field(default_factory=list)  # callback query ids


class BotMachine(RuleBasedStateMachine):
    """The real bot, four workers, an admin and two reviewers, on one emulator and database."""

    def __init__(
        self, root: Path, counter: Iterator[int], postgres: PostgresServer | None = None
    ) -> None:
        super().__init__()
        self.directory = root / f"run-{next(counter)}"
        self.directory.mkdir()
        # A database of its own on this cluster per example; None: a SQLite file in directory.
        self.postgres = postgres
        self.database_name: str | None = None
        self.loop = asyncio.new_event_loop()
        self.logs_cm = captured_logs()
        self.logs = self.logs_cm.__enter__()
        self.logs_checked = 0
        self.emulator = BotApiEmulator()
        self.harness: Harness | None = None
        self.quota = 3
        self.allowed_taken = self.quota
        self.people: list[Person] = []
        self.expect = Expectations()
        self.last_batch: tuple[int, int] | None = None  # update ids of the previous step
        self.batch_start = 0
        self.chosen: dict[int, Person] = {}
        self.restarted_at = 0  # the newest update id when the bot last restarted

    # -- plumbing -----------------------------------------------------------------------------

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run one coroutine of the bot's world on this machine's event loop."""
        return self.loop.run_until_complete(awaitable)

    @property
    def bot(self) -> Harness:
        """The running bot."""
        assert self.harness is not None
        return self.harness

    def user(self, user_id: int) -> EmulatedUser:
        """A worker or staff member (created on first use)."""
        return self.emulator.user(user_id, first_name=f"U{user_id}", language_code="id")

    async def _start(self, submitted: int) -> None:
        if self.postgres is not None:
            self.database_name = await self.postgres.create_database(self.postgres.template)
        await self.emulator.start()
        self.harness = self._new_harness()
        await self.harness.start()
        everyone = make_people(ELIGIBLE + 2 + len(EARLIER), seed=4242)
        self.people = everyone[: ELIGIBLE + 2]
        seeded = [row_of(p) for p in self.people[:ELIGIBLE]] + [
            row_of(self.people[TOO_RICH], desil=8)
        ]
        services = self.harness.services
        await seed_dtsen(services.database, services.secret, seeded)
        # Workers who registered before this run: staff have a queue from the first step.
        earlier = list(zip(EARLIER, everyone[ELIGIBLE + 2 :], strict=True))[:submitted]
        for index, (user_id, person) in enumerate(earlier):
            self.user(user_id)
            self.people.append(person)  # their data must not reach the logs either
            application = make_application(
                person, secret=services.secret, user_id=user_id, code=f"BKS-EARL{index:02d}"
            )
            async with services.database.write() as session, session.begin():
                session.add(application)
                await session.flush()
                session.add(
                    AuditEvent(
                        actor_id=user_id,
                        action="submit",
                        application_id=application.id,
                        from_status=Status.DRAFT,
                        to_status=Status.PENDING,
                    )
                )

    def _new_harness(self, *, by_budget: bool = False) -> Harness:
        # The quota is the headcount, or what the budget pays for (with some rupiah left over).
        limit = (
            {"program_budget_idr": self.quota * PREMIUM + PREMIUM // 2}
            if by_budget
            else {"program_quota": self.quota}
        )
        harness = Harness(
            self.emulator,
            self.directory,
            database_url=(
                self.postgres.url(self.database_name)
                if self.postgres is not None and self.database_name is not None
                else None
            ),
            admin_ids=str(ADMIN),
            reviewer_ids=",".join(map(str, REVIEWERS)),
            # The flood throttle counts updates per wall-clock window, so whether a worker's
            # burst of answers trips it depends on the machine's speed; its drops are tested
            # in test_flood.py, and here every update must reach the conversation.
            flood_max_updates=1_000_000,
            **limit,
        )
        assert harness.settings.effective_quota == self.quota
        return harness

    def _bot_idle(self) -> bool:
        app = self.bot.app
        assert app is not None
        processor = app.update_processor
        waiting = processor.waiting_chats if isinstance(processor, PerChatUpdateProcessor) else 0
        return waiting == 0 and app.update_queue.empty()

    async def settle(self) -> None:
        """Wait until every update was fetched and handled and the bot makes no more calls."""
        deadline = self.loop.time() + SETTLE_BOUND
        while True:
            await self.emulator.wait_idle(timeout=SETTLE_BOUND, quiet=0.02)
            if self._bot_idle():
                await asyncio.sleep(0.01)
                if self._bot_idle() and self.emulator.pending_updates == 0:
                    return
            if self.loop.time() > deadline:
                raise AssertionError(f"the bot was still busy after {SETTLE_BOUND}s")
            await asyncio.sleep(0.02)

    async def say(self, user_id: int, text: str) -> int:
        """A text message the bot must answer; returns its message id."""
        return await self._expect_reply(user_id, lambda u: u.send(text))

    async def _expect_reply(self, user_id: int, send: Callable[[EmulatedUser], Any]) -> int:
        user = self.user(user_id)
        index = len(user.transcript())
        sent = await send(user)
        self.expect.replies.append((user_id, index))
        return int(sent["message_id"])

    async def press(self, user_id: int, data: str) -> None:
        """A button press (real or forged) that the bot must answer with answerCallbackQuery."""
        user = self.user(user_id)
        message_id = None
        for message in reversed(user.messages()):
            if message.from_bot and any(d == data for row in message.buttons for _, d in row):
                message_id = message.message_id
                break
        has_bot_message = any(m.from_bot and not m.deleted for m in user.messages())
        if message_id is None and not has_bot_message:
            # A forged press needs some bot message to hang on; talk first.
            await self.say(user_id, "/bantuan")
            await self.settle()
        self.expect.answers.append(await user.press_data(data, message_id=message_id))

    def has_button(self, user_id: int, data: str) -> bool:
        """Whether some bot message in the chat still shows a button with this data."""
        return any(
            data == button_data
            for message in self.user(user_id).messages()
            if message.from_bot and not message.deleted
            for row in message.buttons
            for _, button_data in row
        )

    async def open_application(self, user_id: int) -> Application | None:
        """The worker's draft or live application, read from the database."""
        async with self.bot.services.database.read() as session:
            result = await session.execute(
                sa.select(Application).where(
                    Application.telegram_user_id == user_id,
                    col(Application.status).in_([Status.DRAFT, *LIVE_STATUSES]),
                )
            )
            return result.scalars().first()

    async def applications(self, *statuses: str) -> list[Application]:
        """Submitted applications, optionally of some statuses, oldest first."""
        async with self.bot.services.database.read() as session:
            query = sa.select(Application).where(col(Application.code).is_not(None))
            if statuses:
                query = query.where(col(Application.status).in_(statuses))
            result = await session.execute(query.order_by(Application.id))
            return list(result.scalars())

    def person_of(self, application: Application) -> Person:
        """The synthetic person a worker claims to be."""
        for person in self.people:
            if person.nik == application.nik:
                return person
        return self.chosen.get(application.telegram_user_id, self.people[0])

    def step(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run one rule: act, settle, then check the bot answered what it owes."""
        self.expect = Expectations()
        self.batch_start = self.emulator.last_update_id + 1
        self.run(action())
        self.run(self.settle())
        self.run(self._check_answered())
        last = self.emulator.last_update_id
        self.last_batch = (self.batch_start, last) if last >= self.batch_start else None

    async def _check_answered(self) -> None:
        for user_id, index in self.expect.replies:
            user = self.user(user_id)
            later = [
                e for e in user.transcript()[index + 1 :] if e.from_bot and e.kind != "delete"
            ]
            assert later, (
                f"no reply to update #{index} in chat {user_id}:\n{user.format_transcript()}"
            )
        unanswered = [q for q in self.expect.answers if q not in self.emulator.answered_callbacks]
        assert not unanswered, f"callback queries never answered: {unanswered}"

    # -- set-up and tear-down -----------------------------------------------------------------

    @initialize(quota=st.integers(0, 4), submitted=st.integers(0, len(EARLIER)))
    def start_bot(self, quota: int, submitted: int) -> None:
        """The emulator, a fresh database with the DTSEN rows and some submitted applications,
        and the bot polling with a small quota."""
        self.quota = self.allowed_taken = quota
        self.run(self._start(submitted))

    def teardown(self) -> None:
        """Stop the bot and the emulator, close the loop, drop the database."""
        try:
            if self.harness is not None:
                self.run(self.harness.stop())
            self.run(self.emulator.stop())
            if self.postgres is not None and self.database_name is not None:
                self.run(self.postgres.drop_database(self.database_name))
            self.run(self.loop.shutdown_asyncgens())
            self.run(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            self.logs_cm.__exit__(None, None, None)
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- workers ------------------------------------------------------------------------------

    @rule(
        worker=st.sampled_from(WORKERS),
        answers=st.integers(1, 14),
        seed=SEEDS,
    )
    def worker_answers(self, worker: int, answers: int, seed: int) -> None:
        """The worker gives valid answers of a synthetic person, whatever step they are at."""
        rng = random.Random(seed)
        for _ in range(answers):
            self.step(lambda: self._answer(worker, rng))

    async def _answer(self, worker: int, rng: random.Random) -> None:
        await (await self._plan_answer(worker, rng))()

    async def _plan_answer(self, worker: int, rng: random.Random) -> Callable[[], Awaitable[Any]]:
        """Read where the worker is and draw their next valid answer; send it later."""
        application = await self.open_application(worker)
        if application is None:
            if self.has_button(worker, "consent:yes"):
                return lambda: self.press(worker, "consent:yes")
            return lambda: self.say(worker, "/start")
        if application.status not in (Status.DRAFT, Status.NEEDS_FIX):
            command = rng.choice(["/status", "/datasaya"])
            return lambda: self.say(worker, command)
        person = self.person_of(application)
        step = application.step
        if step == "nik":
            # Mostly someone eligible; several workers may claim the same person.
            person = rng.choice([*self.people[:ELIGIBLE] * 3, *self.people[ELIGIBLE:]])
            self.chosen[worker] = person
            nik = person.nik
            spaced = " ".join(nik[i : i + 4] for i in range(0, 16, 4))
            typed = rng.choice([nik, spaced])
            return lambda: self.say(worker, typed)
        elif step == "name":
            name = rng.choice([person.name, person.name.upper()])
            return lambda: self.say(worker, name)
        elif step == "birth_date":
            return lambda: self.say(worker, person.birth_date.strftime("%d-%m-%Y"))
        elif step == "phone":
            if rng.random() < 0.5:  # share the contact rather than type the number
                phone = person.phone
                return lambda: self._expect_reply(worker, lambda u: u.share_contact(phone))
            return lambda: self.say(worker, "0" + person.phone.removeprefix("+62"))
        elif step == "occupation":
            code = rng.choice(sorted(OCCUPATIONS))
            return lambda: self.press(worker, f"reg:occupation:{code}")
        elif step == "occupation_other":
            return lambda: self.say(worker, "tukang cukur")
        elif step == "kecamatan":
            return lambda: self.press(worker, f"reg:kecamatan:{person.kode_wilayah[:6]}")
        elif step == "kelurahan":
            return lambda: self.press(worker, f"reg:kelurahan:{person.kode_wilayah}")
        elif step == "address":
            return lambda: self.say(worker, "Jl. Melati No. 5 RT 01/RW 02")
        elif step == "heir_name":
            return lambda: self.say(worker, "Siti Aminah")
        elif step == "heir_relation":
            code = rng.choice(sorted(HEIR_RELATIONS))
            return lambda: self.press(worker, f"reg:heir_relation:{code}")
        elif step == "summary":
            action = rng.choice(["send", "send", "send", "edit", "cancel"])
            return lambda: self.press(worker, f"reg:summary:{action}")
        elif step == "edit":
            target = rng.choice([*sorted(FIELD_LABELS), "back"])
            return lambda: self.press(worker, f"reg:edit:{target}")
        raise AssertionError(f"unknown step {step!r}")

    @rule(seed=SEEDS)
    def workers_answer_at_once(self, seed: int) -> None:
        """Every worker sends their next valid answer at the same moment."""
        rng = random.Random(seed)

        async def together() -> None:
            # Draw every answer first: draws must not depend on how the sends interleave.
            plans = [await self._plan_answer(worker, rng) for worker in WORKERS]
            await asyncio.gather(*(plan() for plan in plans))

        self.step(together)

    @rule(
        worker=st.sampled_from(WORKERS),
        text=st.one_of(
            st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=80),
            st.sampled_from(MARKUP_TEXT),
            st.integers(4097, 12000).map(lambda n: ("Panjang sekali " * n)[:n]),
            st.sampled_from(["3275", "1234567890123456", "32750117088500019", "17-13-1985"]),
        ).filter(lambda text: text.strip() != ""),
    )
    def worker_sends_junk(self, worker: int, text: str) -> None:
        """Anything a worker can type, at any step: the bot always answers."""
        self.step(lambda: self._junk(worker, text))

    async def _junk(self, worker: int, text: str) -> None:
        await self.say(worker, text)

    @rule(
        worker=st.sampled_from(WORKERS),
        kind=st.sampled_from(
            ["photo", "sticker", "voice", "location", "document", "contact", "other_contact"]
        ),
    )
    def worker_sends_media(self, worker: int, kind: str) -> None:
        """Photos, stickers, voice notes, locations, files and contacts at any step."""

        async def send(user: EmulatedUser) -> Any:
            if kind == "photo":
                return await user.send_photo()
            if kind == "sticker":
                return await user.send_sticker()
            if kind == "voice":
                return await user.send_voice()
            if kind == "location":
                return await user.send_location(-6.2383, 106.9756)
            if kind == "document":
                return await user.send_document(b"nik,nama\n", "data.csv")
            if kind == "contact":
                return await user.share_contact(self.people[worker % len(self.people)].phone)
            return await user.share_contact("+6281234567890", user_id=555)

        self.step(lambda: self._expect_media(worker, send))

    async def _expect_media(self, worker: int, send: Callable[[EmulatedUser], Any]) -> None:
        await self._expect_reply(worker, send)

    @rule(
        worker=st.sampled_from(WORKERS),
        command=st.sampled_from(
            [
                "/start",
                "/daftar",
                "/batal",
                "/status",
                "/datasaya",
                "/bantuan",
                "/help",
                "/tidakada",
            ]
        ),
    )
    def worker_command(self, worker: int, command: str) -> None:
        """Commands at any step, /start and /batal mid-flow included."""
        self.step(lambda: self._command(worker, command))

    async def _command(self, worker: int, command: str) -> None:
        await self.say(worker, command)

    @rule(worker=st.sampled_from(WORKERS), language=st.sampled_from(["id", "en"]))
    def worker_changes_language(self, worker: int, language: str) -> None:
        """/bahasa and a language button."""
        self.step(lambda: self.say(worker, "/bahasa"))
        self.step(lambda: self.press(worker, f"lang:{language}"))

    @rule(worker=st.sampled_from(WORKERS), confirm=st.booleans())
    def worker_erases_data(self, worker: int, confirm: bool) -> None:
        """/hapusdata, then yes or no."""
        self.step(lambda: self.say(worker, "/hapusdata"))
        self.step(lambda: self.press(worker, "erase:yes" if confirm else "erase:no"))

    @rule(worker=st.sampled_from(WORKERS), data=st.data())
    def worker_presses_forged_button(self, worker: int, data: st.DataObject) -> None:
        """Callback data a modified client can send: stale, foreign, staff-only or nonsense."""
        forged = data.draw(
            st.one_of(
                st.sampled_from(FORGED_DATA),
                # A step's own prefix with a value it never offered (or a step without buttons).
                st.builds(
                    "reg:{}:{}".format,
                    st.sampled_from(sorted(Step)),
                    st.sampled_from(["", "x", "back", "send", "edit", "nik", "3275011001"]),
                ),
                st.text(min_size=1, max_size=64).filter(lambda s: len(s.encode()) <= 64),
            )
        )
        self.step(lambda: self.press(worker, forged))

    @rule(worker=st.sampled_from(WORKERS), which=st.integers(0, 10), text=st.text(min_size=1))
    def worker_edits_a_message(self, worker: int, which: int, text: str) -> None:
        """An edit of an earlier text message is never read as an answer, but is answered."""
        user = self.user(worker)
        texts = [
            e.message_id
            for e in user.transcript()
            if not e.from_bot and e.kind == "message" and "text" in e.message.raw
        ]
        if not texts or not text.strip():
            return
        message_id = texts[-1 - which % len(texts)]
        self.step(lambda: self._expect_edit(worker, message_id, text))

    async def _expect_edit(self, worker: int, message_id: int, text: str) -> None:
        await self._expect_reply(worker, lambda u: u.edit(message_id, text))

    @rule(
        worker=st.sampled_from(WORKERS), command=st.sampled_from(["/setujui", "/tarik", "/cari"])
    )
    def worker_tries_a_staff_command(self, worker: int, command: str) -> None:
        """A worker typing staff commands gets the unknown-command answer."""
        self.step(lambda: self._staff_command_by_worker(worker, command))

    async def _staff_command_by_worker(self, worker: int, command: str) -> None:
        codes = [a.code for a in await self.applications() if a.code]
        await self.say(worker, f"{command} {codes[0] if codes else 'BKS-000000'} alasan")

    # -- staff --------------------------------------------------------------------------------

    @rule(
        reviewer=st.sampled_from(STAFF),
        seed=SEEDS,
    )
    def staff_reviews_a_card(self, reviewer: int, seed: int) -> None:
        """/tinjau (the next, or a named one), then a card button."""
        rng = random.Random(seed)
        self.step(lambda: self._open_card(reviewer, rng))
        action = rng.choice(["ap", "ap", "rj", "fx", "sk", "none"])
        if action == "none":
            return
        card_id = self._card_id(reviewer)
        if card_id is None:
            return
        self.step(lambda: self.press(reviewer, f"sv:{action}:{card_id}"))
        if action == "rj":
            reason = rng.choice([*sorted(REJECT_REASONS), "typed"])
            if reason == "typed":
                # The reason itself comes with staff_types, maybe after other things happened.
                self.step(lambda: self.press(reviewer, f"sv:rt:{card_id}"))
            else:
                self.step(lambda: self.press(reviewer, f"sv:rr:{card_id}:{reason}"))
        elif action == "fx":
            field_name = rng.choice(sorted(FIELD_LABELS))
            self.step(lambda: self.press(reviewer, f"sv:ff:{card_id}:{field_name}"))
            # Then a typed note (staff_types) or, here, the request without one.
            if rng.random() < 0.5:
                self.step(lambda: self.press(reviewer, f"sv:fs:{card_id}:{field_name}"))

    @rule(reviewer=st.sampled_from(STAFF), text=st.sampled_from(MARKUP_TEXT))
    def staff_types(self, reviewer: int, text: str) -> None:
        """Free text from staff: a rejection reason when one was asked for, else just text."""
        self.step(lambda: self.say(reviewer, text))

    async def _open_card(self, reviewer: int, rng: random.Random) -> None:
        codes = [a.code for a in await self.applications() if a.code]
        named = rng.choice([None, *codes])
        await self.say(reviewer, "/tinjau" if named is None else f"/tinjau {named}")

    def _card_id(self, reviewer: int) -> int | None:
        message = self.user(reviewer).last_bot_message()
        if message is None:
            return None
        for row in message.buttons:
            for _, data in row:
                if data.startswith("sv:ap:"):
                    return int(data.removeprefix("sv:ap:"))
        return None

    @rule(seed=SEEDS)
    def staff_decide_at_once(self, seed: int) -> None:
        """Every staff member sends a decision at the same moment (often on the same one)."""
        rng = random.Random(seed)
        self.step(lambda: self._decide_at_once(rng))

    async def _decide_at_once(self, rng: random.Random) -> None:
        candidates = await self.applications(
            Status.PENDING, Status.WAITLISTED, Status.NEEDS_FIX, Status.APPROVED
        )
        codes = [a.code for a in candidates if a.code] or ["BKS-000000"]
        commands = []
        for member in STAFF:
            code = rng.choice(codes)
            command = rng.choice(
                [
                    f"/setujui {code}",
                    f"/setujui {code}",
                    f"/tolak {code} Data tidak cocok",
                    f"/perbaiki {code} address",
                    f"/tarik {code} Mengundurkan diri",
                ]
            )
            commands.append((member, command))
        await asyncio.gather(*(self.say(member, command) for member, command in commands))

    @rule(seed=SEEDS)
    def staff_press_approve_at_once(self, seed: int) -> None:
        """Every staff member opens the same card, then all press Setujui together."""
        rng = random.Random(seed)
        codes = self.run(self.applications(Status.PENDING, Status.WAITLISTED))
        if not codes:
            return
        target = rng.choice(codes).code
        for member in STAFF:
            self.step(lambda member=member: self.say(member, f"/tinjau {target}"))
        cards = {member: self._card_id(member) for member in STAFF}

        async def press_all() -> None:
            await asyncio.gather(
                *(self.press(m, f"sv:ap:{card}") for m, card in cards.items() if card is not None)
            )

        self.step(press_all)

    @rule(
        reviewer=st.sampled_from(STAFF),
        command=st.sampled_from(
            ["/antrian", "/statistik", "/riwayat {code}", "/cari {code}", "/cari {nik}", "/staf"]
        ),
        seed=SEEDS,
    )
    def staff_looks(self, reviewer: int, command: str, seed: int) -> None:
        """Read-only staff commands (a reviewer's /staf is refused like an unknown one)."""
        rng = random.Random(seed)
        codes = [a.code for a in self.run(self.applications()) if a.code] or ["BKS-000000"]
        code = rng.choice(codes)
        nik = rng.choice(self.people).nik
        self.step(lambda: self.say(reviewer, command.format(code=code, nik=nik)))
        if command == "/antrian" and self.has_button(reviewer, "sq:1"):
            self.step(lambda: self.press(reviewer, "sq:1"))

    # -- the process ---------------------------------------------------------------------------

    def _talked_since_restart(self) -> bool:
        return self.emulator.last_update_id > self.restarted_at

    # No preconditions: the bot's state may differ between runs of the same steps, and rules
    # offered by state would make Hypothesis' choices inconsistent. Inapplicable rules pass.
    @rule()
    def restart(self) -> None:
        """Stop the application and start a new one on the same database (once it talked)."""
        if not self._talked_since_restart():
            return
        self.run(self.bot.restart())
        self.last_batch = None
        self.restarted_at = self.emulator.last_update_id

    @rule(quota=st.integers(0, 4), by_budget=st.booleans())
    def restart_with_another_quota(self, quota: int, by_budget: bool) -> None:
        """The operator changes PROGRAM_QUOTA (or PROGRAM_BUDGET_IDR) and restarts."""
        if not self._talked_since_restart():
            return
        self.run(self.bot.stop())
        self.quota = quota
        self.harness = self._new_harness(by_budget=by_budget)
        self.run(self.harness.start())
        self.last_batch = None
        self.restarted_at = self.emulator.last_update_id
        taken = self.run(self._places_taken())
        self.allowed_taken = max(quota, taken)

    @rule()
    def crash_and_redeliver(self) -> None:
        """The process dies before confirming the last updates; Telegram sends them again."""
        if self.last_batch is None:
            return
        first, last = self.last_batch
        before = self.run(self._state_snapshot())
        self.run(self.bot.stop())
        self.emulator.redeliver(*range(first, last + 1))
        self.run(self.bot.start())
        self.run(self.settle())
        after = self.run(self._state_snapshot())
        assert after == before, "a redelivered update changed the state again"
        self.last_batch = None
        self.restarted_at = self.emulator.last_update_id

    async def _state_snapshot(self) -> tuple[Any, ...]:
        async with self.bot.services.database.read() as session:
            applications = (
                await session.execute(
                    sa.select(
                        Application.id, Application.status, Application.step, Application.code
                    ).order_by(Application.id)
                )
            ).all()
            audits = (
                await session.execute(
                    sa.select(sa.func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action != "denied")
                )
            ).scalar_one()
        return tuple(applications), audits

    # -- invariants ----------------------------------------------------------------------------

    async def _places_taken(self) -> int:
        async with self.bot.services.database.read() as session:
            return int(
                (
                    await session.execute(
                        sa.select(sa.func.count())
                        .where(col(Application.status).in_([Status.APPROVED, Status.ENROLLED]))
                        .select_from(Application)
                    )
                ).scalar_one()
            )

    @invariant()
    def places_within_quota(self) -> None:
        """Approved + enrolled never exceed the quota (or what was taken when it was lowered)."""
        if self.harness is None:
            return
        taken = self.run(self._places_taken())
        assert taken <= self.allowed_taken, (
            f"{taken} places taken, quota {self.quota} (allowed {self.allowed_taken})"
        )
        # Places freed under a lowered quota are not given out again.
        self.allowed_taken = max(self.quota, taken)

    @invariant()
    def one_live_application_per_nik_and_account(self) -> None:
        """No NIK is held twice; no account has two open applications."""
        if self.harness is None:
            return

        async def check() -> None:
            async with self.bot.services.database.read() as session:
                nik_dupes = (
                    await session.execute(
                        sa.text(
                            "SELECT nik_hash, count(*) FROM application WHERE status IN "
                            "('pending','needs_fix','approved','waitlisted','enrolled') "
                            "GROUP BY nik_hash HAVING count(*) > 1"
                        )
                    )
                ).all()
                account_dupes = (
                    await session.execute(
                        sa.text(
                            "SELECT telegram_user_id, count(*) FROM application WHERE status IN "
                            "('draft','pending','needs_fix','approved','waitlisted','enrolled') "
                            "GROUP BY telegram_user_id HAVING count(*) > 1"
                        )
                    )
                ).all()
            assert not nik_dupes, f"a NIK is held by several live applications: {nik_dupes}"
            assert not account_dupes, f"accounts with several open applications: {account_dupes}"

        self.run(check())

    @invariant()
    def acknowledged_submissions_exist(self) -> None:
        """Every application number the bot gave a worker is stored (unless they erased it)."""
        if self.harness is None:
            return
        owed: dict[str, int] = {}
        for worker in WORKERS:
            acknowledged: set[str] = set()
            for event in self.user(worker).transcript():
                if not event.from_bot:
                    continue
                if ACK.search(event.message.text):
                    match = CODE.search(event.message.text)
                    assert match is not None, event.message.text
                    acknowledged.add(match.group(0))
                elif ERASED.search(event.message.text):
                    acknowledged.clear()
            owed.update(dict.fromkeys(acknowledged, worker))
        stored = {a.code: a.telegram_user_id for a in self.run(self.applications())}
        for code, worker in owed.items():
            assert stored.get(code) == worker, f"{code} acknowledged to {worker} is not stored"

    @invariant()
    def audit_trail_explains_every_status(self) -> None:
        """The newest audit event of each application leads to its current status."""
        if self.harness is None:
            return

        async def check() -> None:
            async with self.bot.services.database.read() as session:
                applications = (await session.execute(sa.select(Application))).scalars().all()
                for application in applications:
                    events = (
                        (
                            await session.execute(
                                sa.select(AuditEvent)
                                .where(AuditEvent.application_id == application.id)
                                .order_by(AuditEvent.at, AuditEvent.id)
                            )
                        )
                        .scalars()
                        .all()
                    )
                    changes = [e for e in events if e.to_status is not None]
                    assert changes, f"application {application.id} has no audit trail"
                    for earlier, later in pairwise(changes):
                        assert later.from_status == earlier.to_status, (
                            f"application {application.id}: {later.action} from "
                            f"{later.from_status} after {earlier.action} to {earlier.to_status}"
                            f" ({[(e.action, e.from_status, e.to_status) for e in changes]})"
                        )
                    assert changes[-1].to_status == application.status, (
                        f"application {application.id} is {application.status} but its trail "
                        f"ends {[(e.action, e.from_status, e.to_status) for e in changes]}"
                    )
                decisions = (
                    await session.execute(
                        sa.select(AuditEvent).where(
                            col(AuditEvent.action).in_(["approve", "reject", "fix", "withdraw"])
                        )
                    )
                ).scalars()
                for event in decisions:
                    by_worker = event.action == "withdraw" and event.reason == "consent withdrawn"
                    assert by_worker or event.actor_id in STAFF, (
                        f"decision {event.action} by non-staff {event.actor_id}"
                    )

        self.run(check())

    @invariant()
    def logs_hold_no_personal_data_and_no_errors(self) -> None:
        """No NIK, phone number or desil of any synthetic person reaches the log output, and
        no handler failed."""
        output = self.logs.getvalue()
        fresh, self.logs_checked = output[self.logs_checked :], len(output)
        for person in self.people:
            national = "0" + person.phone.removeprefix("+62")
            for secret in (person.nik, person.phone, national, person.phone[1:]):
                assert secret not in fresh, f"personal data in the logs:\n{fresh[-3000:]}"
        assert not re.search(r"desil\W+\d", fresh, re.IGNORECASE), fresh[-3000:]
        # A handler that raised logs an ERROR and apologises to the user: no input may do that.
        errors = [line for line in fresh.splitlines() if line.startswith(("ERROR", "CRITICAL"))]
        assert not errors, "\n".join(errors)


def machine_settings() -> settings:
    """Short for `make test`, long for `make soak` (HYPOTHESIS_PROFILE=soak)."""
    soak = os.environ.get("HYPOTHESIS_PROFILE") == "soak"
    return settings.get_profile("bot-machine-soak" if soak else "bot-machine")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_bot_keeps_its_invariants_under_random_workers_and_staff(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Random workers and staff, restarts and redeliveries never break the invariants."""
    postgres: PostgresServer | None = None
    if backend == "postgres":
        postgres = request.getfixturevalue("postgres_server")
        if postgres is None:
            pytest.skip("PostgreSQL is not installed here (CI sets RENTAN_REQUIRE_POSTGRES=1)")
    counter = iter(range(1_000_000))
    run_state_machine_as_test(
        lambda: BotMachine(tmp_path, counter, postgres), settings=machine_settings()
    )
