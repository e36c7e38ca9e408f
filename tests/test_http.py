"""The aiohttp-based Bot API client: PTB's request contract, errors and uploads."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import NetworkError, TimedOut

from bot.http import AiohttpRequest
from emulator import BotApiEmulator


async def _bot(emulator: BotApiEmulator, *, trim_keyboards: bool = False) -> Bot:
    return Bot(
        "123:ABC",
        base_url=emulator.base_url,
        base_file_url=emulator.base_file_url,
        request=AiohttpRequest(connection_pool_size=4, trim_keyboards=trim_keyboards),
        get_updates_request=AiohttpRequest(connection_pool_size=1, trim_keyboards=trim_keyboards),
    )


async def test_messages_and_documents_round_trip(emulator: BotApiEmulator) -> None:
    """Plain calls and multipart uploads arrive at the emulator intact."""
    user = emulator.user(4001)
    await user.send("/start")
    async with await _bot(emulator) as bot:
        await bot.send_message(4001, "<b>Halo</b> &amp; selamat", parse_mode="HTML")
        await bot.send_document(4001, b"nik,nama\n", filename="daftar.csv", caption="ekspor")
    reply = await user.expect(r"Halo & selamat")
    assert reply.raw_text == "<b>Halo</b> &amp; selamat"
    document = await user.expect(r"ekspor")
    assert document.document == ("daftar.csv", b"nik,nama\n")


async def test_keyboards_are_left_out_of_results_only_when_asked(
    emulator: BotApiEmulator,
) -> None:
    """The worker still gets the buttons; only the bot's copies of messages skip them."""
    user = emulator.user(4002)
    await user.send("/start")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Sopir", callback_data="reg:o:sopir")]])
    async with await _bot(emulator) as bot:
        kept = await bot.send_message(4002, "Pekerjaan lagi?", reply_markup=markup)
    async with await _bot(emulator, trim_keyboards=True) as bot:
        trimmed = await bot.send_message(4002, "Pekerjaan?", reply_markup=markup)
        assert (await user.expect(r"^Pekerjaan\?$")).button_labels() == ["Sopir"]
        await user.press("Sopir")
        [update] = [u for u in await bot.get_updates() if u.callback_query is not None]
    assert kept.reply_markup == markup
    assert trimmed.reply_markup is None
    assert trimmed.text == "Pekerjaan?"
    assert update.callback_query is not None
    assert update.callback_query.data == "reg:o:sopir"
    assert isinstance(update.callback_query.message, Message)
    assert update.callback_query.message.reply_markup is None


async def test_server_errors_and_drops_become_network_errors(emulator: BotApiEmulator) -> None:
    """A 5xx or a dropped connection is a NetworkError, as with PTB's own client."""
    emulator.user(4002)
    async with await _bot(emulator) as bot:
        emulator.inject_fault("sendMessage", "5xx")
        with pytest.raises(NetworkError):
            await bot.send_message(4002, "x")
        emulator.inject_fault("sendMessage", "drop")
        with pytest.raises(NetworkError):
            await bot.send_message(4002, "x")


async def test_slow_answer_times_out(emulator: BotApiEmulator) -> None:
    """A read timeout surfaces as TimedOut."""
    emulator.user(4003)
    async with await _bot(emulator) as bot:
        emulator.inject_fault("sendMessage", "slow", delay=1.0)
        with pytest.raises(TimedOut):
            await bot.send_message(4003, "x", read_timeout=0.2)


_TOKEN = "1234567890:AAHsyntheticTokenForTheLeakTest_0123456"


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A 127.0.0.1 port whose listen queue is full: connecting to it times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        # Each takes a place in the queue (or waits for one); never accepted.
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for open_socket in (*fillers, server):
            open_socket.close()


async def test_connect_timeout_error_does_not_quote_the_bot_token(unanswered_port: int) -> None:
    """aiohttp names the URL (with /bot<TOKEN>/) in a connect timeout; the NetworkError PTB
    logs must not, nor may a chained error carry it into a printed traceback."""
    request = AiohttpRequest(connect_timeout=0.3)
    bot = Bot(_TOKEN, base_url=f"http://127.0.0.1:{unanswered_port}/bot", request=request)
    try:
        with pytest.raises(NetworkError) as raised:
            await bot.get_me()
    finally:
        await request.shutdown()
    assert "ConnectionTimeoutError" in str(raised.value)
    chain: list[BaseException] = []
    current: BaseException | None = raised.value
    while current is not None:  # what a printed traceback shows
        chain.append(current)
        shown = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or shown
    for error in chain:
        assert _TOKEN.split(":")[1] not in str(error)
        assert _TOKEN.split(":")[1] not in repr(error)


def _shown_in_a_traceback(error: BaseException) -> list[BaseException]:
    """The error and every error a printed traceback of it would show."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None:
        chain.append(current)
        shown = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or shown
    return chain


async def test_waiting_for_a_full_connection_pool_does_not_quote_the_bot_token(
    emulator: BotApiEmulator,
) -> None:
    """The pool's one connection is busy with a slow call; the next call gives up waiting for
    it. Neither the error PTB logs nor anything chained to it names the token (aiohttp names
    the URL when a pool wait runs into a `connect` timeout)."""
    emulator.user(4004)
    request = AiohttpRequest(connection_pool_size=1)
    bot = Bot(_TOKEN, base_url=emulator.base_url, request=request)
    emulator.inject_fault("sendMessage", "slow", delay=1.0)
    try:
        busy = asyncio.create_task(bot.send_message(4004, "x", read_timeout=10))
        for _ in range(200):  # until the slow call holds the connection
            if any(method == "sendMessage" for method, _params in emulator.requests_log):
                break
            await asyncio.sleep(0.01)
        with pytest.raises(NetworkError) as raised:
            await bot.get_me(
                read_timeout=0.2, write_timeout=0.1, connect_timeout=0.1, pool_timeout=0.1
            )
        await busy
    finally:
        await request.shutdown()
    assert "aiohttp." in str(raised.value)
    for error in _shown_in_a_traceback(raised.value):
        assert _TOKEN.split(":")[1] not in str(error)
        assert _TOKEN.split(":")[1] not in repr(error)
