"""A Telegram Bot API stand-in for tests, the demo and benchmarks: the real bot talks to it over
HTTP as it would to Telegram, and it enforces the limits that bite in production (text length
after entity parsing, strict HTML, callback_data size, "message is not modified", blocked users).
It imports nothing of the bot. `server` holds `BotApiEmulator`, built from mixins over the shared
`state`: `updates` (queue, getUpdates long poll), `chats` (chats, transcripts, people's actions),
`webhooks` (delivery and retries), `methods` (the Bot API methods) and `control` (the HTTP
control API); `users` holds the emulated people, `records` the stored messages and files,
`formatting` the HTML / Markdown parsers, `markup` the reply markup checks, `params` request
decoding, `faults` fault injection, `caps` Telegram's send caps (off unless switched on),
`api` the shared error and limits, and `client` an HTTP
client for the control API.
"""

from emulator.api import ApiError
from emulator.formatting import (
    parse_formatted,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    utf16_len,
)
from emulator.records import BotMessage, TranscriptEvent
from emulator.server import BotApiEmulator, serve
from emulator.users import EmulatedChannel, EmulatedGroup, EmulatedUser

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
