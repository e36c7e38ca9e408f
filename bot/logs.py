"""Logging set-up that masks personal data and keeps user input from forging log lines."""

from __future__ import annotations

import logging

from bot.pii import redact_text


class RedactingFilter(logging.Filter):
    """Mask NIK- and phone-like digits and escape line breaks in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message in place; never drops a record."""
        message = record.getMessage()
        cleaned = redact_text(message).replace("\r", "\\r").replace("\n", "\\n")
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True


class RedactingFormatter(logging.Formatter):
    """Mask personal data in the whole formatted record, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, then redact."""
        return redact_text(super().format(record))


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
