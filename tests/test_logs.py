"""Logs never carry a full NIK or phone number, and user input cannot forge log lines."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.logs import RedactingFilter, RedactingFormatter, configure_logging
from domain.pii import mask_nik, mask_phone, redact_text
from testkit.factories import MOBILE_PREFIXES, valid_niks


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test.redaction")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_nik_is_masked_like_the_brief_says() -> None:
    """Region prefix and serial stay; the birth date in the middle goes."""
    assert mask_nik("3275011708850001") == "3275********0001"


def test_phone_is_masked() -> None:
    """Only the operator prefix and the last digits stay."""
    assert mask_phone("+6281234567890") == "+62812*****890"


def test_nik_and_phone_in_a_log_message_are_masked() -> None:
    """Whatever a developer logs, digits that look like a NIK or phone are masked."""
    logger, stream = _capture()
    logger.info("worker %s sent %s", "3275011708850001", "0812-3456-7890")
    output = stream.getvalue()
    assert "3275011708850001" not in output
    assert "3456-7890" not in output
    assert "3275********0001" in output


def test_exception_text_is_masked_too() -> None:
    """A traceback that quotes a NIK does not leak it."""
    logger, stream = _capture()
    try:
        raise ValueError("duplicate 3275011708850001")
    except ValueError:
        logger.exception("failed")
    assert "3275011708850001" not in stream.getvalue()


def test_newlines_in_user_input_cannot_forge_a_log_line() -> None:
    """A name with a line break stays on one log line."""
    logger, stream = _capture()
    logger.warning("name %s", "Budi\nCRITICAL admin granted")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("WARNING")


_TOKEN_SECRET = "AAHsyntheticTokenForTheLogTest_0123456789"
_TOKEN = "7654321098:" + _TOKEN_SECRET


@pytest.fixture
def production_logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """The root handler `configure_logging` installs (writing to a buffer), plus a plain
    handler after it, standing for any other handler a record reaches."""
    configure_logging("INFO")
    root = logging.getLogger()
    [configured] = root.handlers
    assert isinstance(configured, logging.StreamHandler)
    stream = io.StringIO()
    configured.setStream(stream)
    plain_stream = io.StringIO()
    plain = logging.StreamHandler(plain_stream)
    plain.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(plain)
    try:
        yield stream, plain_stream
    finally:
        for existing in list(root.handlers):
            root.removeHandler(existing)
        root.setLevel(logging.WARNING)


def test_bot_token_is_masked_in_message_arguments_and_traceback(
    production_logs: tuple[io.StringIO, io.StringIO],
) -> None:
    """A token in the message, in an argument or in an exception's text never reaches the
    log, whichever handler writes the record."""
    log = logging.getLogger("test.token")
    log.warning(f"GET https://api.telegram.org/bot{_TOKEN}/getMe failed")
    log.warning("calling %s", f"https://api.telegram.org/bot{_TOKEN}/sendMessage")
    try:
        raise ConnectionError(f"Connection timeout to host /bot{_TOKEN}/sendMessage")
    except ConnectionError:
        log.exception("send failed")
    output, other = (stream.getvalue() for stream in production_logs)
    assert "Traceback" in output
    assert "Traceback" in other
    assert output.count("7654321098:***") == 3
    assert _TOKEN_SECRET not in output
    assert _TOKEN_SECRET not in other


# What people put between groups of digits: spaces, dots, dashes, slashes, brackets.
_SEPARATORS = st.text(alphabet=" .-/()[]_|\\", min_size=1, max_size=3)


@st.composite
def _grouped(draw: st.DrawFn, digits: str) -> str:
    """`digits` cut into groups joined by separators (a cut after any digit, or none)."""
    pieces = [digits[0]]
    for digit in digits[1:]:
        if draw(st.booleans()):
            pieces.append(draw(_SEPARATORS))
        pieces.append(digit)
    return "".join(pieces)


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@given(data=st.data(), nik=valid_niks())
def test_a_nik_is_masked_however_its_digits_are_grouped(data: st.DataObject, nik: str) -> None:
    """`3275/0117/0885/0001`, `3275.0117 0885-0001`, `(3275) 0117...`: never the 16 digits."""
    written = data.draw(_grouped(nik))
    redacted = redact_text(f"NIK saya {written} ya")
    assert nik[:4] + nik[-4:] == _digits(redacted)  # the eight birth-date digits are gone


@given(
    data=st.data(),
    prefix=st.sampled_from(["+62", "62", "0", "(0", "(+62)", "+62 (", "+62-", "(62)"]),
    operator=st.sampled_from(MOBILE_PREFIXES),
    subscriber=st.integers(10**6, 10**9 - 1).map(str),
)
def test_a_phone_number_is_masked_however_it_is_written(
    data: st.DataObject, prefix: str, operator: str, subscriber: str
) -> None:
    """`+62 812-3456-7890`, `(0812) 3456 7890`, `0812.3456.7890`: the subscriber digits go."""
    number = operator + subscriber
    written = prefix + data.draw(_grouped(number))
    redacted = redact_text(f"hubungi {written} ya")
    # At most the prefix, the operator, two more digits and the last three stay (mask_phone).
    assert len(_digits(redacted)) <= len(_digits(prefix)) + len(operator) + 2 + 3
    assert number not in _digits(redacted)


def test_grouped_nik_and_phone_written_as_in_the_issue_are_masked() -> None:
    """The forms reported in issue 13."""
    for written, kept in (
        ("+62 812-3456-7890", "3456"),
        ("(0812) 3456 7890", "3456"),
        ("0812.3456.7890", "3456"),
        ("3275/0117/0885/0001", "0117"),
    ):
        assert kept not in redact_text(f"x {written} y")
