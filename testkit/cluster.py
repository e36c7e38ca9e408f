"""Several real bot processes (Applications in this event loop, each with its own services and
webhook server) on one database behind a round-robin proxy, as a multi-process deployment runs.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from telegram import Update
from telegram.ext import Updater

from bot.app import RentanApp, build_application, migrate_database
from bot.running import start_application, stop_application
from emulator import BotApiEmulator
from handlers.context import Services
from testkit.harness import make_settings

WEBHOOK_SECRET = "rahasia_cluster-0123456789"
WEBHOOK_PATH = "/telegram"
# What a reverse proxy passes on of Telegram's request.
_FORWARDED = ("content-type", "x-telegram-bot-api-secret-token")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RoundRobinProxy:
    """Forwards each POST to the next process in turn, or to `pinned` when a test sets it."""

    targets: list[str] = field(default_factory=list)
    pinned: int | None = None
    # Which process each forwarded request went to, and its body, in order.
    routed: list[int] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    url: str = ""
    # Try the next process when one does not take the connection (nginx's proxy_next_upstream
    # error): a killed process loses no update that was not yet handed to it.
    failover: bool = False
    _next: int = 0
    _runner: web.AppRunner | None = None
    _client: httpx.AsyncClient | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.pinned is not None:
            index = self.pinned
        else:
            index, self._next = self._next, (self._next + 1) % len(self.targets)
        self.routed.append(index)
        self.bodies.append(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
        if self._client is None:
            self._client = httpx.AsyncClient()
        tries = len(self.targets) if self.failover and self.pinned is None else 1
        for attempt in range(tries):
            target = (index + attempt) % len(self.targets)
            try:
                answer = await self._client.post(
                    self.targets[target], content=body, headers=headers
                )
            except httpx.ConnectError:
                if attempt < tries - 1:
                    continue
                if not self.failover:
                    raise
                return web.Response(status=502)
            except httpx.TransportError:
                if not self.failover:
                    raise
                # The process died holding the request: nginx answers 502, Telegram retries.
                return web.Response(status=502)
            self.routed[-1] = target
            return web.Response(status=answer.status_code, body=answer.content)
        raise AssertionError("unreachable")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(WEBHOOK_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}{WEBHOOK_PATH}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@dataclass
class Cluster:
    """The running processes and the proxy Telegram (the emulator) posts to."""

    apps: list[RentanApp]
    proxy: RoundRobinProxy

    def services(self, index: int) -> Services:
        """The services of one process."""
        services = self.apps[index].bot_data.services
        assert services is not None
        return services

    def route_to(self, index: int | None) -> None:
        """Send every update to this process from now on (None: round-robin again)."""
        self.proxy.pinned = index


@contextlib.asynccontextmanager
async def webhook_cluster(
    emulator: BotApiEmulator, database_url: str, *, processes: int = 2, **overrides: Any
) -> AsyncIterator[Cluster]:
    """`processes` webhook processes on one database behind a round-robin proxy."""
    proxy = RoundRobinProxy()
    await proxy.start()
    apps: list[RentanApp] = []
    try:
        for _ in range(processes):
            port = free_port()
            settings = make_settings(
                emulator.root_url,
                database_url,
                webhook_url=proxy.url,
                webhook_secret=WEBHOOK_SECRET,
                webhook_port=port,
                webhook_path=WEBHOOK_PATH,
                bot_processes=processes,
                **overrides,
            )
            await migrate_database(settings)
            app = build_application(settings, rate_limit=None)

            async def serve(updater: Updater, settings: Any = settings) -> None:
                await updater.start_webhook(
                    listen=settings.webhook_listen,
                    port=settings.webhook_port,
                    url_path=settings.webhook_path,
                    secret_token=settings.require_webhook_secret(),
                    webhook_url=settings.webhook_url,
                    allowed_updates=Update.ALL_TYPES,
                )

            await start_application(app, updates=serve)
            apps.append(app)
            proxy.targets.append(f"http://127.0.0.1:{port}{WEBHOOK_PATH}")
        yield Cluster(apps, proxy)
    finally:
        for app in reversed(apps):
            await stop_application(app)
        await proxy.stop()
