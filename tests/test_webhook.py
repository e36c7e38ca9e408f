"""Webhook mode: the emulator POSTs updates to the real bot, which trusts only the secret."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import func, select
from telegram import Bot, Update
from telegram.error import BadRequest, Conflict
from telegram.ext import Updater

from bot.app import RentanApp, build_application, migrate_database
from bot.running import running
from config.settings import SettingsError, load_settings
from emulator import BotApiEmulator, EmulatedUser
from storage.models import Application, ProcessedUpdate
from testkit.factories import make_person
from testkit.fakes import row_of, seed_dtsen
from testkit.harness import TEST_PII_SECRET, TEST_TOKEN, make_settings

ROOT = Path(__file__).resolve().parent.parent
SECRET = "rahasia_webhook-0123456789"
PATH = "/telegram"
WELCOME = r"Selamat datang"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class WebhookBot:
    """The running Application and the local address its webhook server listens on."""

    app: RentanApp
    url: str

    async def count(self, model: Any) -> int:
        """Rows of one table in the bot's database."""
        services = self.app.bot_data.services
        assert services is not None
        async with services.database.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@contextlib.asynccontextmanager
async def webhook_bot(
    emulator: BotApiEmulator, database_url: str, *, public_url: str | None = None
) -> AsyncIterator[WebhookBot]:
    """The real bot serving a webhook on 127.0.0.1; Telegram (the emulator) calls public_url."""
    port = _free_port()
    local_url = f"http://127.0.0.1:{port}{PATH}"
    settings = make_settings(
        emulator.root_url,
        database_url,
        webhook_url=public_url or local_url,
        webhook_secret=SECRET,
        webhook_port=port,
        webhook_path=PATH,
    )
    await migrate_database(settings)
    app = build_application(settings, rate_limit=None)

    async def serve_webhook(updater: Updater) -> None:
        await updater.start_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            url_path=settings.webhook_path,
            secret_token=settings.require_webhook_secret(),
            webhook_url=settings.webhook_url,
            allowed_updates=Update.ALL_TYPES,
        )

    async with running(app, updates=serve_webhook):
        yield WebhookBot(app, local_url)


@dataclass
class Receiver:
    """A stand-in endpoint: records each POST and answers the next queued status (else 200)."""

    statuses: list[int] = field(default_factory=list)
    seen: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    forward_to: str | None = None
    lost_answers: int = 0
    runner: web.AppRunner | None = None
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        """Record the update id, secret header and content type; fail or forward."""
        body = await request.read()
        self.seen.append(
            (
                int(json.loads(body)["update_id"]),
                request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
                request.headers.get("Content-Type"),
            )
        )
        if self.statuses:
            return web.Response(status=self.statuses.pop(0))
        if self.forward_to is None:
            return web.Response(status=200)
        # Like a reverse proxy: pass the body and Telegram's headers to the bot unchanged.
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("content-type", "x-telegram-bot-api-secret-token")
        }
        async with httpx.AsyncClient() as client:
            answer = await client.post(self.forward_to, content=body, headers=headers)
        if self.lost_answers:
            # The bot handled it, but its answer never reached Telegram (a proxy timeout).
            self.lost_answers -= 1
            return web.Response(status=504)
        return web.Response(status=answer.status_code, body=answer.content)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post(PATH, self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}{PATH}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def _until(condition: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _start_update(user: EmulatedUser, update_id: int) -> dict[str, Any]:
    """A /start message from this user, as Telegram would POST it."""
    chat = {"id": user.id, "type": "private", "first_name": user.first_name}
    message = {
        "message_id": 1,
        "from": user.as_dict(),
        "chat": chat,
        "date": int(time.time()),
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    }
    return {"update_id": update_id, "message": message}


def _consent_update(user: EmulatedUser, update_id: int) -> dict[str, Any]:
    """A press on "Setuju" under the newest bot message, with a query id the bot never saw."""
    shown = user.last_bot_message()
    assert shown is not None
    query = {
        "id": "4200000000000999999",
        "from": user.as_dict(),
        "message": shown.raw,
        "chat_instance": "1",
        "data": "consent:yes",
    }
    return {"update_id": update_id, "callback_query": query}


async def test_bot_in_webhook_mode_answers_start(
    emulator: BotApiEmulator, database_url: str
) -> None:
    """The emulator POSTs the user's /start to the bot's webhook and the welcome comes back."""
    async with webhook_bot(emulator, database_url) as bot:
        assert emulator.webhook_url == bot.url
        assert emulator.webhook_secret == SECRET
        user = emulator.user(300001)
        await user.send("/start")
        reply = await user.expect(WELCOME)
        assert "BPJS Ketenagakerjaan" in reply.text
        await user.press("✅ Setuju")
        await user.expect(r"\(1/9\)")
        assert await bot.count(Application) == 1
        assert emulator.webhook_deliveries == 2
        assert emulator.webhook_failures == 0
        assert emulator.pending_updates == 0


async def test_wrong_or_missing_secret_is_refused_and_changes_nothing(
    emulator: BotApiEmulator, database_url: str
) -> None:
    """Only Telegram knows the secret: a forged update without it gets 403, no reply, no row."""
    async with webhook_bot(emulator, database_url) as bot:
        user = emulator.user(300002)
        await user.send("/start")
        await user.expect(WELCOME)
        sent = emulator.calls["sendMessage"]
        rows = (await bot.count(Application), await bot.count(ProcessedUpdate))
        forged = [_start_update(user, 900_001), _consent_update(user, 900_002)]
        async with httpx.AsyncClient() as client:
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": "tebakan"}, {}):
                for update in forged:
                    answer = await client.post(bot.url, json=update, headers=headers)
                    assert answer.status_code == 403
        await user.expect_no_reply(0.3)
        assert sent == emulator.calls["sendMessage"]
        assert emulator.calls["answerCallbackQuery"] == 0
        assert rows == (await bot.count(Application), await bot.count(ProcessedUpdate))
        assert await bot.count(Application) == 0
        # The same forged /start with the secret is processed: the refusal was the header's.
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                bot.url,
                json=forged[0],
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            )
        assert answer.status_code == 200
        await user.expect(WELCOME)


async def test_failed_delivery_is_retried_and_processed_once(
    emulator: BotApiEmulator, database_url: str
) -> None:
    """A proxy answering 502 twice (bot restarting): the same update arrives later, once."""
    emulator.webhook_retry_initial = 0.05
    async with Receiver(statuses=[502, 502]) as proxy:
        async with webhook_bot(emulator, database_url, public_url=proxy.url) as bot:
            proxy.forward_to = bot.url
            user = emulator.user(300003)
            await user.send("/start")
            await user.expect(WELCOME)
            await user.expect_no_reply(0.3)
        update_id = emulator.last_update_id
        assert [seen[0] for seen in proxy.seen] == [update_id] * 3
        assert emulator.webhook_failures == 2
        assert emulator.webhook_deliveries == 1
        welcomes = [m for m in user.transcript() if m.from_bot and "Selamat" in m.message.text]
        assert len(welcomes) == 1


async def test_update_redelivered_after_a_lost_answer_is_not_answered_twice(
    emulator: BotApiEmulator, database_url: str
) -> None:
    """The bot handled /start but its 200 was lost; Telegram resends it: one welcome only."""
    emulator.webhook_retry_initial = 0.05
    async with Receiver(lost_answers=1) as proxy:
        async with webhook_bot(emulator, database_url, public_url=proxy.url) as bot:
            proxy.forward_to = bot.url
            user = emulator.user(300004)
            await user.send("/start")
            await user.expect(WELCOME)
            await _until(lambda: emulator.webhook_deliveries == 1)
            await user.expect_no_reply(0.3)
        welcomes = [m for m in user.transcript() if m.from_bot and "Selamat" in m.message.text]
        assert len(welcomes) == 1
        assert emulator.webhook_failures == 1


async def test_emulator_delivers_in_order_with_the_secret_and_retries_until_deleted(
    emulator: BotApiEmulator,
) -> None:
    """Updates arrive one by one in update_id order; refused ones are retried until
    deleteWebhook, after which getUpdates hands out what is left."""
    emulator.webhook_retry_initial = 0.01
    emulator.webhook_retry_max = 0.02
    user = emulator.user(300004)
    async with (
        Receiver() as receiver,
        Bot(TEST_TOKEN, base_url=emulator.base_url) as bot,
    ):
        for text in ("satu", "dua", "tiga"):
            await user.send(text)
        assert await bot.set_webhook(receiver.url, secret_token=SECRET, max_connections=1)
        await _until(lambda: emulator.pending_updates == 0)
        assert receiver.seen == [(i, SECRET, "application/json") for i in (1, 2, 3)]
        with pytest.raises(Conflict):
            await bot.get_updates()
        receiver.statuses = [500] * 1000
        await user.send("empat")
        await _until(lambda: emulator.webhook_failures >= 3)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 1
        assert "500" in (info.last_error_message or "")
        assert await bot.delete_webhook()
        failures = emulator.webhook_failures
        await asyncio.sleep(0.1)
        assert emulator.webhook_failures <= failures + 1
        assert {u.update_id for u in await bot.get_updates(timeout=0)} == {4}
        assert {seen[0] for seen in receiver.seen[3:]} == {4}
        assert emulator.webhook_deliveries == 3


async def test_emulator_retries_after_connection_refused(emulator: BotApiEmulator) -> None:
    """Nothing listening yet: the delivery is retried and succeeds once the bot is up."""
    emulator.webhook_retry_initial = 0.01
    emulator.webhook_retry_max = 0.05
    user = emulator.user(300005)
    async with Bot(TEST_TOKEN, base_url=emulator.base_url) as bot:
        closed = f"http://127.0.0.1:{_free_port()}{PATH}"
        assert await bot.set_webhook(closed)
        await user.send("halo")
        await _until(lambda: emulator.webhook_failures >= 2)
        assert "Connection failed" in (emulator.webhook_last_error or "")
        async with Receiver() as receiver:
            assert await bot.set_webhook(receiver.url)
            await _until(lambda: emulator.pending_updates == 0)
        assert receiver.seen == [(1, None, "application/json")]


async def test_emulator_refuses_http_webhook_when_https_is_required() -> None:
    """Real Telegram calls only https URLs; the emulator can be told to insist too."""
    async with (
        BotApiEmulator(require_https=True) as emulator,
        Bot(TEST_TOKEN, base_url=emulator.base_url) as bot,
    ):
        with pytest.raises(BadRequest, match=r"(?i)https url"):
            await bot.set_webhook("http://127.0.0.1:9/telegram")
        with pytest.raises(BadRequest, match=r"(?i)secret token"):
            await bot.set_webhook("https://bot.example.go.id/telegram", secret_token="a b")
        assert await bot.set_webhook("https://bot.example.go.id/telegram", secret_token=SECRET)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"webhook_url": "https://bot.example.go.id/telegram"}, "WEBHOOK_SECRET"),
        (
            {"webhook_url": "https://bot.example.go.id/telegram", "webhook_secret": "ada spasi"},
            "WEBHOOK_SECRET",
        ),
        ({"webhook_url": "http://bot.example.go.id/telegram", "webhook_secret": SECRET}, "URL"),
        ({"webhook_path": "telegram"}, "WEBHOOK_PATH"),
        ({"webhook_port": "0"}, "WEBHOOK_PORT"),
    ],
)
def test_bad_webhook_settings_fail_naming_the_variable(
    overrides: dict[str, str], variable: str
) -> None:
    """A webhook needs a valid secret, a public https URL and a sane local path and port."""
    with pytest.raises(SettingsError, match=variable) as error:
        load_settings(env_file=None, **overrides)
    assert "\n" not in str(error.value)


def test_run_with_webhook_url_but_no_secret_exits_with_one_line(tmp_path: Path) -> None:
    """`rentan-bot run` with WEBHOOK_URL but no WEBHOOK_SECRET: exit 2, one line naming it."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env = {
        **keep,
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "PII_SECRET": TEST_PII_SECRET,
        "WEBHOOK_URL": "https://bot.example.go.id/telegram",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "WEBHOOK_SECRET" in lines[0]
    assert "Traceback" not in result.stderr


def _webhook_run_env(emulator: BotApiEmulator, tmp_path: Path, hook_port: int) -> dict[str, str]:
    """The environment of a `rentan-bot run` subprocess serving a webhook on `hook_port`."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return {
        **keep,
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_BOT_TOKEN": TEST_TOKEN,
        "TELEGRAM_API_URL": emulator.root_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        "PII_SECRET": TEST_PII_SECRET,
        "WEBHOOK_URL": f"http://127.0.0.1:{hook_port}{PATH}",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_PORT": str(hook_port),
    }


async def test_run_with_webhook_url_serves_the_webhook(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """`rentan-bot run` with WEBHOOK_* set registers its webhook and answers /start through it."""
    hook_port = _free_port()
    env = _webhook_run_env(emulator, tmp_path, hook_port)
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        user = emulator.user(300006)
        # Queued until the bot registers its webhook, then POSTed to it.
        await user.send("/start")
        reply = await user.expect(WELCOME, timeout=20.0)
        assert "BPJS Ketenagakerjaan" in reply.text
        assert emulator.webhook_url == env["WEBHOOK_URL"]
        assert emulator.webhook_secret == SECRET
        assert emulator.calls["getUpdates"] == 0
    finally:
        bot.terminate()
        # The bot's shutdown calls the emulator, which runs on this event loop: keep it free.
        _, errors = await asyncio.to_thread(bot.communicate, timeout=20)
    assert bot.returncode == 0, errors
    assert b"Traceback" not in errors, errors.decode()


async def test_lost_answer_after_the_update_ids_restarted_is_answered_once(
    emulator: BotApiEmulator, database_url: str
) -> None:
    """Ids restarted far below (a quiet week): a mid-flow answer is handled, its resend is not."""
    emulator.webhook_retry_initial = 0.05
    person = make_person(360)
    emulator.restart_update_ids(900_000)
    async with Receiver() as proxy:
        async with webhook_bot(emulator, database_url, public_url=proxy.url) as bot:
            services = bot.app.bot_data.services
            assert services is not None
            await seed_dtsen(services.database, services.secret, [row_of(person)])
            proxy.forward_to = bot.url
            user = emulator.user(360000)
            await user.send("/start")
            await user.expect(WELCOME)
            await user.press("✅ Setuju")
            await user.expect(r"\(1/9\)")
            await user.send(person.nik)
            await user.expect(r"\(2/9\)")
            await emulator.wait_idle()
            emulator.restart_update_ids(1_000)
            proxy.lost_answers = 1
            await user.send(person.name)
            await user.expect(r"\(3/9\)")
            await _until(lambda: emulator.webhook_deliveries == 4)
            await user.expect_no_reply(0.3)
            async with services.database.read() as session:
                [draft] = (await session.execute(select(Application))).scalars().all()
        assert [seen[0] for seen in proxy.seen[-2:]] == [1_000, 1_000]
        assert (draft.step, draft.nama) == ("birth_date", person.name)


async def test_run_in_webhook_mode_keeps_updates_sent_while_it_was_down(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """`rentan-bot run` with a webhook registers it without dropping what is pending."""
    hook_port = _free_port()
    env = _webhook_run_env(emulator, tmp_path, hook_port)
    user = emulator.user(300007)
    await user.send("/start")  # pending before the bot exists
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await user.expect(WELCOME, timeout=20.0)
    finally:
        bot.terminate()
        # The bot's shutdown calls the emulator, which runs on this event loop: keep it free.
        _, errors = await asyncio.to_thread(bot.communicate, timeout=20)
    assert bot.returncode == 0, errors
    registrations = [p for method, p in emulator.requests_log if method == "setWebhook"]
    assert registrations
    assert all(
        str(p.get("drop_pending_updates")).lower() in ("none", "false") for p in registrations
    )
