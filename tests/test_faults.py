"""Telegram misbehaving: 429 answers are waited out and retried; nothing is sent twice."""

from __future__ import annotations

from tests.factories import make_person
from tests.harness import Harness
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
