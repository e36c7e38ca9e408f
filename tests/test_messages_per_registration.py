"""What a registration costs in Telegram's send cap: every message and edit the bot puts into
the chat, counted per answer, end to end through the emulator (issue 18, item 5).

The worker here answers whatever the bot asks, in whatever order the form asks it: buttons where
there are buttons, typed answers elsewhere, the phone shared by the contact button."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from domain.regions import load_regions
from emulator import EmulatedUser
from testkit.factories import Person, make_person
from testkit.harness import Harness
from tests.test_operators import OPERATOR, add_operator
from tests.test_registration import in_words, seed, spaced

# A whole registration is 13 answers, /start (or /daftarkan) included: at most one message or
# edit into the chat for each of them.
MOST_PER_REGISTRATION = 13

# The question a bot message ends with, by the Indonesian prompt (the default language).
PROMPTS = {
    "welcome": r"Anda setuju\?|Bacakan teks ini",
    "nik": r"Kirim NIK",
    "name": r"Kirim nama lengkap sesuai KTP",
    "birth_date": r"Kirim tanggal lahir",
    "phone": r"Kirim nomor HP",
    "occupation": r"Apa pekerjaan Anda",
    "kecamatan": r"Pilih kecamatan",
    "kelurahan": r"Pilih kelurahan",
    "address": r"Kirim alamat",
    "heir_name": r"Siapa ahli waris",
    "heir_relation": r"Apa hubungan ahli waris",
    "summary": r"Periksa kembali data",
    "sent": r"sudah dikirim",
}
ANY_PROMPT = re.compile("|".join(PROMPTS.values()))


def question_of(text: str) -> str:
    """The step whose prompt comes last in a message (an edited message may still show the
    answered question above the next one)."""
    found = [(m.start(), step) for step, p in PROMPTS.items() for m in re.finditer(p, text)]
    assert found, f"no question in {text!r}"
    return max(found)[1]


class Tally:
    """Bot messages and edits into one chat, counted per answer."""

    def __init__(self, user: EmulatedUser) -> None:
        self.user = user
        self.steps: list[tuple[str, int]] = []

    def bot_events(self) -> int:
        """Messages and edits the bot has put into this chat so far."""
        return sum(
            1 for e in self.user.transcript() if e.from_bot and e.kind in ("message", "edit")
        )

    async def answer(self, name: str, action: Awaitable[object], expected: str) -> str:
        """Do `action`, wait for the bot's reply matching `expected` and for quiet, count
        what the bot sent or edited meanwhile; the step the bot asks now."""
        before = self.bot_events()
        await action
        await self.user.expect(expected)
        await self.user.expect_no_reply(0.3)
        self.steps.append((name, self.bot_events() - before))
        last = self.user.last_bot_message()
        assert last is not None
        return question_of(last.text)

    @property
    def total(self) -> int:
        """Messages and edits over every counted answer."""
        return sum(count for _name, count in self.steps)

    def report(self) -> str:
        """`14 in all: start=1, consent=1, ...`, for the assertion message."""
        return f"{self.total} in all: " + ", ".join(f"{n}={c}" for n, c in self.steps)


async def answer_every_question(
    tally: Tally, person: Person, step: str, phone: Callable[[], Awaitable[object]]
) -> None:
    """From the first question to the application number, answering what is asked."""
    user = tally.user
    regions = load_regions()
    kecamatan = regions.district(person.kode_wilayah[:6])
    kelurahan = regions.village(person.kode_wilayah)
    assert kecamatan is not None
    assert kelurahan is not None
    answers: dict[str, Callable[[], Awaitable[object]]] = {
        "nik": lambda: user.send(spaced(person.nik)),
        "name": lambda: user.send(person.name),
        "birth_date": lambda: user.send(in_words(person.birth_date)),
        "phone": phone,
        "occupation": lambda: user.press("Sopir"),
        "kecamatan": lambda: user.press(kecamatan.name),
        "kelurahan": lambda: user.press(kelurahan.name),
        "address": lambda: user.send("Jl. Melati No. 5 RT 01/RW 02"),
        "heir_name": lambda: user.send("Siti Aminah"),
        "heir_relation": lambda: user.press("Suami/Istri"),
        "summary": lambda: user.press("✅ Kirim"),
    }
    asked: list[str] = []
    while step != "sent":
        assert step not in asked, f"{step} asked twice: {tally.report()}"
        asked.append(step)
        step = await tally.answer(step, answers[step](), ANY_PROMPT.pattern)
    assert sorted(asked) == sorted(answers), tally.report()


async def test_a_worker_registration_costs_at_most_one_message_or_edit_per_answer(
    harness: Harness,
) -> None:
    """/start to the application number: 13 answers, at most 13 messages and edits."""
    person = make_person(1801)
    await seed(harness, person)
    user = harness.user(201801)
    tally = Tally(user)
    await tally.answer("start", user.send("/start"), r"Selamat datang")
    step = await tally.answer("consent", user.press("✅ Setuju"), ANY_PROMPT.pattern)
    await answer_every_question(tally, person, step, lambda: user.share_contact(person.phone))
    await user.expect_no_reply(0.3)

    assert tally.bot_events() == tally.total, tally.report()
    assert tally.total <= MOST_PER_REGISTRATION, tally.report()


async def test_an_operator_registration_for_a_worker_costs_at_most_one_message_per_answer(
    harness: Harness,
) -> None:
    """/daftarkan to the application number (the phone typed): at most 13 messages and edits
    into the operator's chat."""
    person = make_person(1802)
    await seed(harness, person)
    await add_operator(harness, OPERATOR, person.kode_wilayah[:6])
    operator = harness.user(OPERATOR)
    operator.skip_to_end()
    tally = Tally(operator)
    before = tally.bot_events()
    await tally.answer("daftarkan", operator.send("/daftarkan"), r"Bacakan teks ini")
    step = await tally.answer(
        "consent", operator.press("✅ Pekerja sudah mendengar dan setuju"), ANY_PROMPT.pattern
    )
    await answer_every_question(tally, person, step, lambda: operator.send(person.phone))
    await operator.expect_no_reply(0.3)

    assert tally.bot_events() - before == tally.total, tally.report()
    assert tally.total <= MOST_PER_REGISTRATION, tally.report()
