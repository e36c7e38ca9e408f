"""A whole run's log output holds no worker's NIK, phone number or DTSEN desil."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from bot.logs import RedactingFilter, RedactingFormatter, configure_logging
from testkit.factories import make_person
from testkit.harness import Harness
from tests.test_registration import finish, give_identity, reach_nik, seed


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything logged, through the production handler set-up, at DEBUG."""
    configure_logging("DEBUG")
    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    try:
        yield stream
    finally:
        for existing in list(root.handlers):
            root.removeHandler(existing)
        root.setLevel(logging.WARNING)


async def test_full_run_logs_no_nik_phone_or_desil(
    harness: Harness, captured_logs: io.StringIO
) -> None:
    """Register, fail a check, get approved, crash a handler: the logs stay clean."""
    person = make_person(9901, desil=3)
    stranger = make_person(9902)
    await seed(harness, person)
    worker = harness.user(990001)
    await reach_nik(worker)
    await give_identity(worker, person)
    code = await finish(worker, person)
    other = harness.user(990002)
    await reach_nik(other)
    await give_identity(other, stranger)
    await other.expect(r"belum dapat dicocokkan")
    reviewer = harness.user(900002)
    await reviewer.send(f"/tinjau {code}")
    await reviewer.expect(r"DTSEN")
    await reviewer.press("✅ Setujui")
    await worker.expect(r"sudah disetujui")
    # A failing send must not leak the text it tried to deliver into the error log.
    harness.emulator.inject_fault("sendMessage", "5xx", times=1)
    await worker.send("/datasaya")
    await worker.expect(r"ada gangguan")
    output = captured_logs.getvalue()
    assert output  # the run did log
    national = "0" + person.phone.removeprefix("+62")
    for secret in (person.nik, stranger.nik, person.phone, national, person.phone[1:]):
        assert secret not in output
    assert not re.search(r"desil\W+3", output, re.IGNORECASE)


async def test_debug_logs_hold_no_desil_of_a_worker_refused_for_it(
    harness: Harness, captured_logs: io.StringIO
) -> None:
    """A desil above the limit is stored in the refusal's reasons; DEBUG logs never show it."""
    person = make_person(9903, desil=8)
    await seed(harness, person)
    worker = harness.user(990003)
    await reach_nik(worker)
    await give_identity(worker, person)
    await worker.expect(r"belum dapat dicocokkan")
    await worker.send("/status")
    await worker.expect(r"Status")
    output = captured_logs.getvalue()
    assert not re.search(r"desil\W+8", output, re.IGNORECASE)
    assert person.name not in output
