"""A Telegram Bot API stand-in for tests, the demo and benchmarks: the real bot talks to it over
HTTP as it would to Telegram. It imports nothing of the bot."""

from emulator.core import (
    ApiError,
    BotApiEmulator,
    BotMessage,
    EmulatedChannel,
    EmulatedGroup,
    EmulatedUser,
    TranscriptEvent,
    parse_formatted,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    serve,
    utf16_len,
)

__all__ = [
    "ApiError",
    "BotApiEmulator",
    "BotMessage",
    "EmulatedChannel",
    "EmulatedGroup",
    "EmulatedUser",
    "TranscriptEvent",
    "parse_formatted",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
    "serve",
    "utf16_len",
]
