"""PTB's `BaseRequest` on aiohttp: the bot's HTTP client for Bot API calls.

Why not PTB's default (httpx): measured on this machine with the project's emulator, a bare echo
bot spent ~4.8 ms of CPU per update in httpx/httpcore (its connection-pool bookkeeping grows
with the requests in flight, encode/httpcore#1035) against ~0.9 ms with aiohttp, which the
project already depends on for its emulator. PTB documents `BaseRequest` as the extension
point for other HTTP libraries; this class keeps HTTPXRequest's contract (status, body) and
maps failures to PTB's own NetworkError/TimedOut so retries and error handling are unchanged.
A request that was sent but never answered raises `Unanswered`, because Telegram may have
carried it out: senders that must not repeat a visible message treat it differently.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class Unanswered(TimedOut):
    """The request was sent but no answer came back (read timeout, connection dropped): Telegram
    may or may not have carried it out, so repeating it could show the user a message twice."""


def _seconds(value: Any, default: float | None) -> float | None:
    """A timeout argument as seconds (PTB passes DEFAULT_NONE when the caller gave none)."""
    if isinstance(value, int | float):
        return float(value)
    if value is None:
        return None
    return default


_HEADERS = {"User-Agent": BaseRequest.USER_AGENT}
_JSON_HEADERS = {**_HEADERS, "Content-Type": "application/json"}


class AiohttpRequest(BaseRequest):
    """Bot API calls over one aiohttp session with a bounded keep-alive connection pool."""

    def __init__(
        self,
        *,
        connection_pool_size: int = 8,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        trim_keyboards: bool = False,
    ) -> None:
        self._pool_size = connection_pool_size
        self._trim_keyboards = trim_keyboards
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def parse_json_payload(self, payload: bytes) -> dict[str, Any]:  # type: ignore[override]
        """Parse an answer; with `trim_keyboards`, leave out the inline keyboards of messages.

        PTB turns every message the bot sends or edits, and the message under every pressed
        button, into a `Message`, and rebuilding an inline keyboard is most of that work
        (~250 µs of ~450 for a 12-button keyboard, measured here). Nothing in this bot reads
        those keyboards (results of `reply_text` and friends are never used, presses are read
        from their callback data, arbitrary callback data is off), so the bot's request objects
        leave them out. PTB documents this method as the place to customise JSON decoding.
        """
        data: dict[str, Any] = super().parse_json_payload(payload)
        if self._trim_keyboards:
            result = data.get("result")
            if isinstance(result, dict) and "message_id" in result:
                result.pop("reply_markup", None)
            elif isinstance(result, list):
                for update in result:
                    query = update.get("callback_query") if isinstance(update, dict) else None
                    if isinstance(query, dict) and isinstance(query.get("message"), dict):
                        query["message"].pop("reply_markup", None)
        return data

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (PTB adds the long-poll time to it for getUpdates)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session; calling it twice is harmless, as with HTTPXRequest."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=connector)

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One call; returns (status, body) like HTTPXRequest."""
        if self._session is None or self._session.closed:
            await self.initialize()
        assert self._session is not None
        read = _seconds(read_timeout, self._read_timeout)
        connect = _seconds(connect_timeout, self._connect_timeout)
        write = _seconds(write_timeout, self._write_timeout)
        pool = _seconds(pool_timeout, 1.0)
        # aiohttp has no separate write timeout; the upload gets its share of the total.
        total = None if read is None else read + (write or 0.0) + (pool or 0.0) + (connect or 0.0)
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read)
        data: Any = None
        headers = _HEADERS
        if request_data is not None:
            files = request_data.multipart_data
            if files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, part in files.items():
                    if isinstance(part, tuple):
                        filename, content, mime_type = (*part, None)[:3]
                        form.add_field(name, content, filename=filename, content_type=mime_type)
                    else:
                        form.add_field(name, part)
                data = form
            else:
                # A JSON body (the Bot API takes one): cheaper to build than a url-encoded form.
                data = request_data.json_payload
                headers = _JSON_HEADERS
        try:
            async with self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=timeout,
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as error:
            # Never connected: nothing reached Telegram, so a retry is safe.
            raise NetworkError(_describe(error, "could not connect to the Bot API")) from None
        except TimeoutError as error:
            raise Unanswered(_describe(error, "no answer from the Bot API in time")) from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as error:
            raise Unanswered(_describe(error, "the connection to the Bot API broke")) from None
        except aiohttp.ClientError as error:
            raise NetworkError(_describe(error, "the Bot API call failed")) from None


def _describe(error: BaseException, what: str) -> str:
    """An error message without aiohttp's text: that quotes the URL, and the URL holds the bot
    token (`/bot<TOKEN>/sendMessage`), which PTB and the error handler would then log. The
    aiohttp error is not chained either (`from None`): a traceback printed outside logging,
    e.g. a crash at start-up, would show its text."""
    reason = getattr(getattr(error, "os_error", None), "strerror", None)
    detail = f" ({reason})" if isinstance(reason, str) else ""
    return f"aiohttp.{type(error).__name__}: {what}{detail}"
