"""Tests of the Bot API emulator, driven the way python-telegram-bot drives the real server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import html
import re
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MenuButtonCommands,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

from emulator import ApiError, BotApiEmulator, parse_html, parse_markdown_v2, serve
from emulator.client import EmulatorClient

TOKEN = "123:ABC"
USER_ID = 100001


@pytest.fixture
async def emulator() -> AsyncIterator[BotApiEmulator]:
    """A fresh emulator per test; defined here so these tests depend on nothing else."""
    async with BotApiEmulator() as emu:
        yield emu


@pytest.fixture
async def bot(emulator: BotApiEmulator) -> AsyncIterator[Bot]:
    """A PTB Bot talking to the emulator (initialising it calls getMe)."""
    async with Bot(
        token=TOKEN, base_url=emulator.base_url, base_file_url=emulator.base_file_url
    ) as tg_bot:
        yield tg_bot


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data)] for label, data in pairs]
    )


async def test_get_me_has_what_ptb_needs(emulator: BotApiEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.username == "rentan_test_bot"
    assert me.is_bot
    assert me.can_join_groups is True
    assert me.supports_inline_queries is False
    assert emulator.last_token == TOKEN
    assert emulator.calls["getMe"] == 2


async def test_send_message_lands_in_the_transcript(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID, first_name="Siti")
    sent = await bot.send_message(
        USER_ID, "<b>Halo</b> Siti", parse_mode=ParseMode.HTML, reply_markup=keyboard(("Ya", "y"))
    )
    second = await bot.send_message(USER_ID, "Kedua")
    assert sent.from_user is not None
    assert sent.from_user.username == "rentan_test_bot"
    assert sent.chat.type == "private"
    assert sent.text == "Halo Siti"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 4)]
    assert sent.reply_markup == keyboard(("Ya", "y"))
    assert second.message_id == sent.message_id + 1

    message = await user.expect("Halo")
    assert message.raw_text == "<b>Halo</b> Siti"
    assert message.parse_mode == "HTML"
    assert message.buttons == [[("Ya", "y")]]
    assert message.button_labels() == ["Ya"]
    assert (await user.expect("Kedua")).message_id == second.message_id
    assert user.replies_since_cursor() == []


async def test_reply_keyboard_and_removal_are_kept(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    markup = ReplyKeyboardMarkup([[KeyboardButton("Bagikan nomor", request_contact=True)]])
    sent = await bot.send_message(USER_ID, "Nomor?", reply_markup=markup)
    assert sent.reply_markup is None  # Telegram only echoes inline keyboards
    assert (await user.expect("Nomor")).reply_keyboard == [["Bagikan nomor"]]
    await bot.send_message(USER_ID, "Terima kasih", reply_markup=ReplyKeyboardRemove())
    assert (await user.expect("Terima")).remove_keyboard


async def test_text_length_is_measured_after_parsing(emulator: BotApiEmulator, bot: Bot) -> None:
    emulator.user(USER_ID)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(USER_ID, "x" * 4097)
    await bot.send_message(USER_ID, "x" * 4096)
    await bot.send_message(USER_ID, f"<b>{'x' * 4096}</b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)text is empty"):
        await bot.send_message(USER_ID, "<b></b>", parse_mode=ParseMode.HTML)
    assert len(emulator.chat_events(USER_ID)) == 2


async def test_callback_data_is_limited_in_bytes(emulator: BotApiEmulator, bot: Bot) -> None:
    emulator.user(USER_ID)
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(USER_ID, "a", reply_markup=keyboard(("A", "a" * 65)))
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(USER_ID, "b", reply_markup=keyboard(("B", "é" * 33)))
    await bot.send_message(USER_ID, "c", reply_markup=keyboard(("C", "é" * 32)))
    await bot.send_message(USER_ID, "d", reply_markup=keyboard(("D", "a" * 64)))


async def test_html_must_be_escaped(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(USER_ID, "Gaji < 5 juta", parse_mode=ParseMode.HTML)
    await bot.send_message(USER_ID, html.escape("Gaji < 5 juta & <b>"), parse_mode=ParseMode.HTML)
    message = await user.expect("Gaji")
    assert message.text == "Gaji < 5 juta & <b>"
    assert message.entities == []


@pytest.mark.parametrize(
    "markup",
    [
        "a < b",
        "Tom & Jerry",
        "baris<br>baru",
        "<b>tebal",
        "<b><i>x</b></i>",
        "x</b>",
        "&nbsp;",
        '<span class="x">s</span>',
    ],
)
def test_malformed_html_is_refused(markup: str) -> None:
    with pytest.raises(ApiError, match="can't parse entities") as caught:
        parse_html(markup)
    assert caught.value.code == 400


def test_html_entities_use_utf16_offsets() -> None:
    text, entities = parse_html(
        '👋 <b>Hai <i>kamu</i></b> &amp; <a href="https://example.org">tautan</a>'
        '<pre><code class="language-python">x = 1</code></pre><tg-spoiler>r</tg-spoiler>'
    )
    assert text == "👋 Hai kamu & tautanx = 1r"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 8},
        {"type": "italic", "offset": 7, "length": 4},
        {"type": "text_link", "url": "https://example.org", "offset": 14, "length": 6},
        {"type": "pre", "language": "python", "offset": 20, "length": 5},
        {"type": "spoiler", "offset": 25, "length": 1},
    ]


def test_markdown_v2_reserved_characters() -> None:
    with pytest.raises(ApiError, match=r"Character '\.' is reserved"):
        parse_markdown_v2("Iuran Rp 16.800")
    text, entities = parse_markdown_v2(r"*Iuran* Rp 16\.800 [lihat](https://example.org/a\)b)")
    assert text == "Iuran Rp 16.800 lihat"
    assert entities[0] == {"type": "bold", "offset": 0, "length": 5}
    assert entities[1]["url"] == "https://example.org/a)b"
    with pytest.raises(ApiError, match="Can't find end of Bold entity"):
        parse_markdown_v2("*tebal")


async def test_edit_message_text(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    sent = await bot.send_message(USER_ID, "Pilih", reply_markup=keyboard(("Ya", "y")))
    edited = await bot.edit_message_text(
        "Dipilih: Ya", USER_ID, sent.message_id, reply_markup=keyboard(("Ya", "y"))
    )
    assert not isinstance(edited, bool)
    assert edited.text == "Dipilih: Ya"
    assert edited.edit_date is not None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "Dipilih: Ya", USER_ID, sent.message_id, reply_markup=keyboard(("Ya", "y"))
        )
    await user.expect("Pilih")
    after_edit = await user.expect("Dipilih")
    assert after_edit.edited
    assert after_edit.buttons == [[("Ya", "y")]]

    # Like Telegram: an edit that leaves out reply_markup drops the keyboard.
    await bot.edit_message_text("Selesai", USER_ID, sent.message_id)
    assert (await user.expect("Selesai")).buttons == []
    await bot.edit_message_reply_markup(
        USER_ID, sent.message_id, reply_markup=keyboard(("B", "b"))
    )
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(
            USER_ID, sent.message_id, reply_markup=keyboard(("B", "b"))
        )
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", USER_ID, 999)
    kinds = [e.kind for e in user.transcript()]
    assert kinds == ["message", "edit", "edit", "edit"]


async def test_delete_message_is_marked(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    sent = await bot.send_message(USER_ID, "Sementara")
    assert await bot.delete_message(USER_ID, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(USER_ID, sent.message_id)
    last = user.transcript()[-1]
    assert (last.kind, last.message.deleted) == ("delete", True)
    assert user.last_bot_message() is None


async def test_documents_and_photos_both_ways(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    payload = b"nik,nama\n1,Siti\n"
    sent = await bot.send_document(
        USER_ID,
        document=payload,
        filename="laporan.csv",
        caption="<b>Laporan</b>",
        parse_mode=ParseMode.HTML,
    )
    assert sent.document is not None
    assert sent.document.file_name == "laporan.csv"
    assert sent.caption == "Laporan"
    received = await user.expect("Laporan")
    assert received.document == ("laporan.csv", payload)
    downloaded = await (await bot.get_file(sent.document.file_id)).download_as_bytearray()
    assert bytes(downloaded) == payload

    photo = await bot.send_photo(USER_ID, photo=b"\x89PNG\r\n\x1a\nnot-really")
    assert photo.photo
    with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
        await bot.send_document(USER_ID, document=b"x", filename="a.txt", caption="c" * 1025)

    message = await user.send_document(b"a;b\n", "data.csv")
    updates = await bot.get_updates(timeout=0)
    document = updates[-1].message.document if updates[-1].message else None
    assert document is not None
    assert document.file_name == "data.csv"
    assert message["document"]["file_id"] == document.file_id
    file = await bot.get_file(document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"a;b\n"


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    emulator: BotApiEmulator, bot: Bot
) -> None:
    user = emulator.user(USER_ID)
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    assert not poll.done()
    await user.send("/start kode")
    updates = await poll
    assert time.monotonic() - started < 2
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None
    assert message.text == "/start kode"
    assert message.from_user is not None
    assert message.from_user.language_code == "id"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bot_command", 0, 6)]


async def test_long_poll_waits_for_the_timeout(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 2


async def test_offset_confirms_updates(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    for text in ("satu", "dua", "tiga"):
        await user.send(text)
    updates = await bot.get_updates()
    ids = [u.update_id for u in updates]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert [u.update_id for u in await bot.get_updates(offset=ids[1])] == ids[1:]
    assert await bot.get_updates(offset=ids[-1] + 1, timeout=0) == ()
    assert emulator.pending_updates == 0
    await user.send("empat")
    assert (await bot.get_updates(offset=ids[-1] + 1))[0].update_id > ids[-1]


async def test_429_becomes_retry_after(
    emulator: BotApiEmulator, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    user = emulator.user(USER_ID)
    emulator.inject_fault("sendMessage", "429", retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER_ID, "halo")
    assert caught.value.retry_after == dtm.timedelta(seconds=7)
    assert user.transcript() == []
    await bot.send_message(USER_ID, "halo")
    assert len(user.transcript()) == 1


async def test_5xx_and_drop_are_network_errors(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    emulator.inject_fault(None, "5xx", status=502)
    with pytest.raises(NetworkError, match=r"(?i)Bad Gateway"):
        await bot.send_message(USER_ID, "satu")
    emulator.inject_fault(None, "5xx", status=500)
    with pytest.raises(NetworkError):
        await bot.send_message(USER_ID, "dua")
    emulator.inject_fault("sendMessage", "drop")
    with pytest.raises(NetworkError):
        await bot.send_message(USER_ID, "tiga")
    assert user.transcript() == []
    await bot.send_message(USER_ID, "empat")
    assert [e.message.text for e in user.transcript()] == ["empat"]
    assert emulator.calls["sendMessage"] == 4


async def test_fault_for_any_method_spares_get_updates(emulator: BotApiEmulator, bot: Bot) -> None:
    emulator.inject_fault(None, "5xx", times=2)
    assert await bot.get_updates(timeout=0) == ()
    with pytest.raises(NetworkError):
        await bot.get_me()
    emulator.clear_faults()
    await bot.get_me()


async def test_latency_and_slow_answers(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    emulator.latency = 0.2
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.2
    emulator.latency = 0.0
    emulator.inject_fault("sendMessage", "slow", delay=0.3)
    started = time.monotonic()
    await bot.send_message(USER_ID, "lambat")
    assert time.monotonic() - started >= 0.3
    assert (await user.expect("lambat", timeout=0)).text == "lambat"


async def test_blocked_user_is_forbidden(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    await user.block()
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(USER_ID, "halo")
    updates = await bot.get_updates()
    member = updates[-1].my_chat_member
    assert member is not None
    assert member.new_chat_member.status == "kicked"
    await user.unblock()
    await bot.send_message(USER_ID, "halo")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(424242, "siapa?")


async def test_press_finds_the_button(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    first = await bot.send_message(USER_ID, "Lama", reply_markup=keyboard(("Ya", "old:yes")))
    await bot.send_message(
        USER_ID, "Baru", reply_markup=keyboard(("Ya", "new:yes"), ("Tidak", "no"))
    )
    query_id = await user.press("Ya")
    await user.press(re.compile("^Tid"))
    await user.press("Ya", message_id=first.message_id)
    updates = await bot.get_updates()
    queries = [u.callback_query for u in updates if u.callback_query]
    assert [q.data for q in queries] == ["new:yes", "no", "old:yes"]
    assert queries[0].id == query_id
    assert queries[0].from_user.id == USER_ID
    assert queries[0].message is not None
    assert queries[0].message.message_id == first.message_id + 1
    assert await queries[0].answer("Oke", show_alert=True)
    assert emulator.answered_callbacks[query_id] == ("Oke", True)
    with pytest.raises(BadRequest, match=r"(?i)query ID is invalid"):
        await queries[0].answer()
    with pytest.raises(AssertionError, match=r"no inline button 'Mungkin'.*Tidak"):
        await user.press("Mungkin")


async def test_press_sees_the_message_after_edits(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    sent = await bot.send_message(USER_ID, "Awal", reply_markup=keyboard(("Lanjut", "go")))
    await bot.edit_message_text(
        "Diubah", USER_ID, sent.message_id, reply_markup=keyboard(("Lanjut", "go2"))
    )
    await user.press("Lanjut")
    (update,) = await bot.get_updates()
    assert update.callback_query is not None
    assert update.callback_query.data == "go2"
    message = update.callback_query.message
    assert message is not None
    assert getattr(message, "text", None) == "Diubah"


async def test_forged_callback_data(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    sent = await bot.send_message(USER_ID, "Menu", reply_markup=keyboard(("Ya", "y")))
    await user.press_data("admin:hapus:42", sent.message_id)
    (update,) = await bot.get_updates()
    assert update.callback_query is not None
    assert update.callback_query.data == "admin:hapus:42"


async def test_user_edit_produces_edited_message(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    message = await user.send("nama saya Budi")
    await user.edit(message["message_id"], "nama saya Budi Santoso")
    updates = await bot.get_updates()
    assert updates[0].message is not None
    assert updates[0].message.text == "nama saya Budi"
    edited = updates[1].edited_message
    assert edited is not None
    assert edited.text == "nama saya Budi Santoso"
    assert edited.edit_date is not None
    assert [e.kind for e in user.transcript()] == ["message", "edit"]


async def test_other_user_messages(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    await user.share_contact("+6281234567890")
    await user.share_contact("+6281111111111", user_id=555)
    await user.send_photo()
    await user.send_sticker()
    await user.send_voice()
    await user.send_location(-6.2383, 106.9756)
    messages = [u.message for u in await bot.get_updates() if u.message]
    assert messages[0].contact is not None
    assert messages[0].contact.user_id == USER_ID
    assert messages[1].contact is not None
    assert messages[1].contact.user_id == 555
    assert messages[2].photo
    assert messages[3].sticker is not None
    assert messages[4].voice is not None
    assert messages[5].location is not None


async def test_groups_and_channels(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    group = emulator.group(-1001, "Paguyuban Ojol")
    channel = emulator.channel(-1002003004005, "Info BPJS")
    await group.send(user, "/daftar@rentan_test_bot")
    await channel.post("Pengumuman")
    updates = await bot.get_updates()
    assert updates[0].message is not None
    assert updates[0].message.chat.type == "group"
    assert updates[0].message.chat.title == "Paguyuban Ojol"
    assert updates[1].channel_post is not None
    assert updates[1].channel_post.chat.type == "channel"
    await bot.send_message(-1001, "Hanya di chat pribadi")
    assert (await group.expect("pribadi")).chat_id == -1001
    chat = await bot.get_chat(-1001)
    assert chat.title == "Paguyuban Ojol"


async def test_expect_reports_the_transcript(emulator: BotApiEmulator, bot: Bot) -> None:
    user = emulator.user(USER_ID)
    await user.send("halo")
    await bot.send_message(USER_ID, "Selamat datang", reply_markup=keyboard(("Daftar", "reg")))
    with pytest.raises(
        AssertionError, match=r"(?s)no bot message matching 'Sampai jumpa'.*Daftar"
    ):
        await user.expect("Sampai jumpa", timeout=0.1)
    with pytest.raises(AssertionError, match="expected no reply"):
        await user.expect_no_reply(0.05)
    await user.expect("Selamat")
    await user.expect_no_reply(0.05)
    last = user.last_bot_message()
    assert last is not None
    assert last.text == "Selamat datang"


async def test_commands_menu_and_webhook(emulator: BotApiEmulator, bot: Bot) -> None:
    emulator.user(USER_ID)
    commands = [BotCommand("start", "Mulai"), BotCommand("bantuan", "Bantuan")]
    assert await bot.set_my_commands(commands, language_code="id")
    assert list(await bot.get_my_commands(language_code="id")) == commands
    assert emulator.my_commands("id") == [
        {"command": "start", "description": "Mulai"},
        {"command": "bantuan", "description": "Bantuan"},
    ]
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "Mulai")])
    assert await bot.delete_my_commands(language_code="id")
    assert await bot.get_my_commands(language_code="id") == ()
    assert await bot.set_chat_menu_button(USER_ID, MenuButtonCommands())
    assert emulator.menu_buttons[USER_ID] == {"type": "commands"}
    assert await bot.send_chat_action(USER_ID, "typing")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.close()
    assert await bot.log_out()


async def test_raw_http_shapes(emulator: BotApiEmulator) -> None:
    emulator.user(USER_ID)
    async with httpx.AsyncClient(base_url=emulator.root_url) as client:
        missing = await client.post("/bot1:x/noSuchMethod", data={"a": "1"})
        assert missing.status_code == 404
        assert missing.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        sent = await client.post(
            "/bot1:x/sendMessage",
            json={"chat_id": USER_ID, "text": "json", "reply_markup": {"inline_keyboard": []}},
        )
        assert sent.json()["ok"] is True
        assert sent.json()["result"]["text"] == "json"
        by_get = await client.get("/bot1:x/getMe")
        assert by_get.json()["result"]["username"] == "rentan_test_bot"
        bad_markup = await client.post(
            "/bot1:x/sendMessage", data={"chat_id": str(USER_ID), "text": "x", "reply_markup": "{"}
        )
        assert bad_markup.status_code == 400
        assert bad_markup.json()["description"].startswith("Bad Request: can't parse")


async def test_control_api_through_the_client(
    emulator: BotApiEmulator, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without it PTB warns (an error here) as soon as it builds a RetryAfter.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    async with EmulatorClient(emulator.root_url) as client:
        message = await client.send(2001, "/start", first_name="Rina", language_code="en")
        (update,) = await bot.get_updates()
        assert update.message is not None
        assert update.message.message_id == message["message_id"]
        assert update.message.from_user is not None
        assert update.message.from_user.first_name == "Rina"

        reply = asyncio.create_task(client.wait_for_reply(2001, "Pilih", after=0, within=3))
        await asyncio.sleep(0.05)
        await bot.send_message(2001, "Pilih bahasa", reply_markup=keyboard(("English", "en")))
        event = await reply
        assert event.from_bot
        assert event.button_labels() == ["English"]

        events = await client.events(2001)
        assert [(e.index, e.from_bot) for e in events] == [(0, False), (1, True)]
        assert await client.events(2001, after=1, wait=0.1) == []

        query_id = await client.press(2001, "English")
        await client.share_contact(2001, "+628123")
        await client.send_photo(2001)
        await client.send_sticker(2001)
        later = await bot.get_updates(offset=update.update_id + 1)
        kinds = [u.callback_query.id if u.callback_query else None for u in later]
        assert kinds[0] == query_id

        await client.inject_fault("sendMessage", "429", retry_after=3)
        with pytest.raises(RetryAfter):
            await bot.send_message(2001, "x")
        await client.set_latency(0.05)
        assert emulator.latency == 0.05
        stats = await client.stats()
        assert stats.calls["sendMessage"] == 2
        assert stats.latency == 0.05


async def test_echo_application_polls_the_emulator(emulator: BotApiEmulator) -> None:
    async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(f"echo: {update.message.text}")

    app = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(emulator.base_url)
        .base_file_url(emulator.base_file_url)
        .build()
    )
    app.add_handler(MessageHandler(filters.TEXT, echo))
    user = emulator.user(USER_ID)
    await app.initialize()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    await app.start()
    try:
        await user.send("halo")
        assert (await user.expect("echo: halo", timeout=3)).text == "echo: halo"
        await user.send("lagi")
        await user.expect("echo: lagi", timeout=3)
        await emulator.wait_idle(3)
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert emulator.pending_updates == 0
    assert emulator.calls["deleteWebhook"] == 1


async def test_serve_runs_until_cancelled() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = asyncio.create_task(serve(port))
    try:
        async with EmulatorClient(f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    stats = await client.stats()
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
            else:
                pytest.fail("serve() never started listening")
            assert stats.pending_updates == 0
            await client.send(3001, "halo")
            assert (await client.stats()).pending_updates == 1
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
