"""Logs never carry a full NIK or phone number, and user input cannot forge log lines."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bot.logs import RedactingFilter, RedactingFormatter, configure_logging
from bot.pii import mask_nik, mask_phone


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
