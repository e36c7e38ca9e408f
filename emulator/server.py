"""The emulator as an HTTP server: `BotApiEmulator` (lifecycle, URLs, dispatch of Bot API calls
with injected faults and latency, file downloads) and `serve` for `rentan-bot emulator`."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from emulator.api import MAX_UPLOAD_BYTES, ApiError, JSONDict, dumps
from emulator.control import ControlMixin
from emulator.faults import FaultKind
from emulator.methods import MethodsMixin
from emulator.params import read_params

log = logging.getLogger(__name__)


class BotApiEmulator(MethodsMixin, ControlMixin):
    """An in-process Telegram Bot API server on 127.0.0.1 with a transcript per chat."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port)."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_bot_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._add_control_routes(app)
        # A short shutdown timeout: long polls wake on stop, so nothing should need longer.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._closing.clear()
        log.debug("Bot API emulator listening on %s", self.base_url)

    async def stop(self) -> None:
        """Wake every waiting request and shut the server down."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()
        self._updates_signal.fire()
        self._activity.fire()
        for chat in self._chats.values():
            chat.signal.fire()
        await self._stop_webhook_delivery()
        await runner.cleanup()

    async def __aenter__(self) -> BotApiEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise RuntimeError("emulator not started")
        return self._port

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT, the address of the control API and EmulatorClient."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The base_url for PTB, which appends the token directly."""
        return f"{self.root_url}/bot"

    @property
    def base_file_url(self) -> str:
        """The base_file_url for PTB."""
        return f"{self.root_url}/file/bot"

    def inject_fault(
        self,
        method: str | None,
        kind: FaultKind,
        *,
        times: int = 1,
        retry_after: int = 1,
        delay: float = 2.0,
        status: int = 502,
        chat_id: int | None = None,
    ) -> None:
        """Make the next `times` calls of `method` (None: any but getUpdates) fail this way;
        with `chat_id`, only calls addressed to that chat."""
        self._faults.add(
            method,
            kind,
            times=times,
            retry_after=retry_after,
            delay=delay,
            status=status,
            chat_id=chat_id,
        )

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()

    async def _handle_bot_api(self, request: web.Request) -> web.StreamResponse:
        self.last_token = request.match_info["token"]
        requested = request.match_info["method"]
        entry = self._methods.get(requested.lower())
        method = entry[0] if entry else requested
        self.calls[method] += 1
        is_poll = method == "getUpdates"
        if not is_poll:
            self._in_flight += 1
            self._touch()
        try:
            try:
                params = await read_params(request)
            except ApiError as error:
                self.requests_log.append((method, {}))
                return await self._answer(error.code, error.body())
            self.requests_log.append((method, params))
            if entry is None:
                return await self._answer(404, ApiError(404, "Not Found").body())
            fault = self._faults.take(method, params)
            if fault is not None and fault.kind == "drop":
                return self._drop(request)
            injected = fault.error() if fault is not None else None
            if injected is None:
                injected = self.caps.admit(method, params)
            if injected is not None:
                return await self._answer(injected.code, injected.body())
            try:
                result = await entry[1](params)
                status, payload = 200, {"ok": True, "result": result}
            except ApiError as refusal:
                status, payload = refusal.code, refusal.body()
            extra = fault.delay if fault is not None and fault.kind == "slow" else 0.0
            return await self._answer(status, payload, extra)
        finally:
            if not is_poll:
                self._in_flight -= 1
                self._touch()

    async def _answer(self, status: int, payload: JSONDict, extra: float = 0.0) -> web.Response:
        # Serialised before the delay so the answer reflects the state at processing time.
        text = json.dumps(payload, ensure_ascii=False)
        await self._sleep(self.latency + extra)
        return web.Response(status=status, text=text, content_type="application/json")

    def _drop(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # aiohttp discards a response for an aborted transport silently; raising would log.
        return web.Response(status=204)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        self.last_token = request.match_info["token"]
        stored = self._files_by_path.get(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404, dumps=dumps)
        await self._sleep(self.latency)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )


async def serve(port: int, host: str = "127.0.0.1", *, latency: float = 0.0) -> None:
    """Run an emulator on host:port until cancelled."""
    emulator = BotApiEmulator(latency=latency)
    await emulator.start(host, port)
    log.info("Bot API emulator listening on %s:%d", host, emulator.port)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()
