"""Logging set-up that masks personal data and keeps user input from forging log lines."""

from __future__ import annotations

import logging
import re

from domain.pii import redact_text

# A bot token, `<bot id>:<secret>`: it shows up in Bot API URLs, so in HTTP libraries' errors.
_BOT_TOKEN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{30,}")
_TRACEBACKS = logging.Formatter()


def mask_tokens(text: str) -> str:
    """Replace anything shaped like a bot token, keeping the bot id (not a secret)."""
    return _BOT_TOKEN.sub(lambda m: m.group(0).split(":", 1)[0] + ":***", text)


def redact_log_text(text: str) -> str:
    """Mask bot tokens, NIKs and phone numbers."""
    return redact_text(mask_tokens(text))


class RedactingFilter(logging.Filter):
    """Mask bot tokens, NIK- and phone-like digits in every record (message, arguments,
    traceback) and escape line breaks in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops a record."""
        message = record.getMessage()
        cleaned = redact_log_text(message).replace("\r", "\\r").replace("\n", "\\n")
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        # The traceback is rendered here, masked, and kept in exc_text, which every formatter
        # (this handler's and any other's the record reaches) prints instead of exc_info.
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_log_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_log_text(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """Mask personal data and bot tokens in the whole formatted record, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, then redact."""
        return redact_log_text(super().format(record))


def configure_logging(level: str) -> None:
    """Log to stderr through the redacting filter; keep httpx quiet (its URLs hold the token)."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # PTB's DEBUG records carry whole updates and API payloads (names, desil, addresses):
    # never let them through, even when the operator asks for DEBUG.
    logging.getLogger("telegram").setLevel(max(logging.INFO, root.level))
    # aiosqlite's DEBUG records repeat every statement with its parameters (names, addresses,
    # a refused worker's desil in the eligibility reasons): the same rule applies.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
