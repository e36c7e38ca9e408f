"""The emulator enforces Telegram's send caps when asked: 429 with retry_after, counted."""

from __future__ import annotations

import httpx
import pytest
from telegram import Bot
from telegram.error import RetryAfter

from emulator import BotApiEmulator
from emulator.caps import CapLimits, SendCaps
from emulator.client import EmulatorClient

TOKEN = "123:ABC"


def test_a_second_message_into_one_private_chat_within_a_second_is_refused_with_retry_after() -> (
    None
):
    """1 message a second per private chat: the second within the second gets 429 and
    `retry_after` in whole seconds; after the window it goes."""
    caps = SendCaps(enabled=True)
    assert caps.admit("sendMessage", {"chat_id": 5}, now=100.0) is None
    refusal = caps.admit("editMessageText", {"chat_id": 5}, now=100.4)
    assert refusal is not None
    assert refusal.code == 429
    assert refusal.body()["parameters"] == {"retry_after": 1}
    assert caps.admit("sendMessage", {"chat_id": 6}, now=100.4) is None
    assert caps.admit("sendMessage", {"chat_id": 5}, now=101.0) is None
    assert (caps.accepted, caps.refused) == (3, 1)
    assert caps.refused_by == {"chat": 1}
    # Each 429 is recorded for finding its cause: the cap, the chat, the gap to its last message.
    [record] = caps.refusals
    assert (record.at, record.cap, record.chat_id, record.bot_window) == (100.4, "chat", "5", 1)
    assert record.since_chat == pytest.approx(0.4)


def test_the_bot_wide_cap_refuses_the_thirty_first_message_in_a_second() -> None:
    """30 messages a second per bot, whatever the chats."""
    caps = SendCaps(enabled=True)
    for chat in range(30):
        assert caps.admit("sendPhoto", {"chat_id": chat}, now=10.0 + chat / 100) is None
    assert caps.admit("sendMessage", {"chat_id": 99}, now=10.5) is not None
    assert caps.admit("sendMessage", {"chat_id": 99}, now=10.995) is not None
    # The first message (at 10.0) has left the window: one more fits.
    assert caps.admit("sendMessage", {"chat_id": 99}, now=11.0) is None
    assert caps.refused == 2


def test_a_group_gets_twenty_messages_a_minute_and_waits_the_rest_of_the_minute() -> None:
    """20 per minute in a group, with retry_after the whole seconds until the window frees."""
    caps = SendCaps(limits=CapLimits(per_bot=1000), enabled=True)
    for index in range(20):
        assert caps.admit("sendMessage", {"chat_id": -77}, now=float(index)) is None
    refusal = caps.admit("sendMessage", {"chat_id": -77}, now=30.0)
    assert refusal is not None
    assert refusal.body()["parameters"]["retry_after"] == 30


def test_callback_answers_and_a_switched_off_cap_are_never_refused() -> None:
    """answerCallbackQuery is not a message, and caps are off by default."""
    caps = SendCaps(enabled=True)
    for _ in range(50):
        assert caps.admit("answerCallbackQuery", {"callback_query_id": "1"}, now=1.0) is None
    off = SendCaps()
    for _ in range(50):
        assert off.admit("sendMessage", {"chat_id": 1}, now=1.0) is None
    assert (caps.refused, off.refused) == (0, 0)


async def test_the_emulator_answers_429_like_the_bot_api_and_reports_it() -> None:
    """Over HTTP, switched on by the control API: the body PTB turns into RetryAfter, and the
    count in the stats."""
    async with BotApiEmulator() as emulator:
        emulator.user(4242)
        async with EmulatorClient(emulator.root_url) as control:
            await control.set_caps(enabled=True)
            async with httpx.AsyncClient() as http:
                first = await http.post(
                    f"{emulator.base_url}{TOKEN}/sendMessage", json={"chat_id": 4242, "text": "a"}
                )
                second = await http.post(
                    f"{emulator.base_url}{TOKEN}/sendMessage", json={"chat_id": 4242, "text": "b"}
                )
            assert first.status_code == 200
            assert second.status_code == 429
            assert second.json() == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            }
            async with Bot(TOKEN, base_url=emulator.base_url) as bot:
                with pytest.raises(RetryAfter):
                    await bot.send_message(4242, "c")
            stats = await control.stats()
            assert (stats.caps_enabled, stats.caps_accepted, stats.caps_refused) == (True, 1, 2)


async def test_caps_can_be_switched_on_by_the_constructor() -> None:
    """`BotApiEmulator(enforce_caps=True)` starts with the caps on."""
    async with BotApiEmulator(enforce_caps=True) as emulator:
        assert emulator.caps.enabled
