"""An async client for the Bot API emulator's control API: act as users from another process.

The emulator runs with `rentan-bot emulator --port N`; a benchmark or a manual test then drives
users through `/_emulator/...` and reads the chat transcripts back.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeAlias

import httpx

JSONDict: TypeAlias = dict[str, Any]
FaultKind: TypeAlias = Literal["429", "5xx", "slow", "drop"]


class EmulatorError(Exception):
    """The control API refused a request."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"emulator answered {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class EmulatorEvent:
    """One transcript event: a message, an edit or a deletion, from a user or the bot."""

    index: int
    kind: str
    chat_id: int
    message_id: int
    from_bot: bool
    text: str
    raw_text: str
    parse_mode: str | None
    buttons: list[list[tuple[str, str]]]
    reply_keyboard: list[list[str]] | None
    remove_keyboard: bool
    document_name: str | None
    edited: bool
    message: JSONDict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: JSONDict) -> EmulatorEvent:
        """Build from the control API's JSON form."""
        document = body.get("document")
        return cls(
            index=int(body["index"]),
            kind=str(body["kind"]),
            chat_id=int(body["chat_id"]),
            message_id=int(body["message_id"]),
            from_bot=bool(body["from_bot"]),
            text=str(body.get("text") or ""),
            raw_text=str(body.get("raw_text") or ""),
            parse_mode=body.get("parse_mode"),
            buttons=[[(str(b[0]), str(b[1])) for b in row] for row in body.get("buttons", [])],
            reply_keyboard=body.get("reply_keyboard"),
            remove_keyboard=bool(body.get("remove_keyboard")),
            document_name=document["filename"] if document else None,
            edited=bool(body.get("edited")),
            message=body.get("message") or {},
        )

    def button_labels(self) -> list[str]:
        """All inline button labels, row by row."""
        return [label for row in self.buttons for label, _ in row]


@dataclass(frozen=True)
class EmulatorStats:
    """Counters the emulator keeps."""

    calls: dict[str, int]
    pending_updates: int
    in_flight: int
    latency: float
    faults: int
    chats: int
    # Telegram's send caps: whether enforced, messages let through and 429s given.
    caps_enabled: bool = False
    caps_accepted: int = 0
    caps_refused: int = 0


class EmulatorClient:
    """Control API client; use as `async with EmulatorClient("http://127.0.0.1:8081") as c:`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8081",
        *,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> EmulatorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying HTTP client if this object created it."""
        if self._owns_client:
            await self._client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        body: JSONDict | None = None,
        *,
        params: dict[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> JSONDict:
        request_timeout: Any = httpx.USE_CLIENT_DEFAULT if read_timeout is None else read_timeout
        response = await self._client.request(
            method,
            f"{self.base_url}/_emulator/{path}",
            json=body,
            params=params,
            timeout=request_timeout,
        )
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("error", response.text))
            except ValueError:
                detail = response.text
            raise EmulatorError(response.status_code, detail)
        result = response.json()
        if not isinstance(result, dict):
            raise EmulatorError(response.status_code, "expected a JSON object")
        return result

    async def _user_action(
        self, user_id: int, action: str, body: JSONDict | None = None
    ) -> JSONDict:
        result = await self._call("POST", f"users/{user_id}/{action}", body or {})
        message = result.get("message")
        return message if isinstance(message, dict) else result

    async def send(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str | None = None,
        language_code: str | None = None,
        username: str | None = None,
    ) -> JSONDict:
        """The user sends a text message; returns the Message dict."""
        body: JSONDict = {"text": text}
        if first_name is not None:
            body["first_name"] = first_name
        if language_code is not None:
            body["language_code"] = language_code
        if username is not None:
            body["username"] = username
        return await self._user_action(user_id, "send", body)

    async def press(
        self,
        user_id: int,
        label: str | None = None,
        *,
        data: str | None = None,
        message_id: int | None = None,
        regex: bool = False,
    ) -> str:
        """Press a button by label (or send raw callback data); returns the callback query id."""
        if (label is None) == (data is None):
            raise ValueError("give exactly one of label and data")
        body: JSONDict = {"label": label} if label is not None else {"data": data}
        if message_id is not None:
            body["message_id"] = message_id
        if regex:
            body["regex"] = True
        result = await self._call("POST", f"users/{user_id}/press", body)
        return str(result["callback_query_id"])

    async def share_contact(
        self,
        user_id: int,
        phone_number: str,
        *,
        contact_user_id: int | None = None,
        first_name: str | None = None,
    ) -> JSONDict:
        """Share a contact: the user's own unless contact_user_id names someone else."""
        body: JSONDict = {"phone_number": phone_number}
        if contact_user_id is not None:
            body["user_id"] = contact_user_id
        if first_name is not None:
            body["contact_first_name"] = first_name
        return await self._user_action(user_id, "contact", body)

    async def send_photo(self, user_id: int) -> JSONDict:
        """The user sends a photo."""
        return await self._user_action(user_id, "photo")

    async def send_sticker(self, user_id: int) -> JSONDict:
        """The user sends a sticker."""
        return await self._user_action(user_id, "sticker")

    async def send_voice(self, user_id: int) -> JSONDict:
        """The user sends a voice note."""
        return await self._user_action(user_id, "voice")

    async def send_location(self, user_id: int, latitude: float, longitude: float) -> JSONDict:
        """The user sends a location."""
        body = {"latitude": latitude, "longitude": longitude}
        return await self._user_action(user_id, "location", body)

    async def edit(self, user_id: int, message_id: int, text: str) -> JSONDict:
        """The user edits one of their text messages."""
        return await self._user_action(user_id, "edit", {"message_id": message_id, "text": text})

    async def block(self, user_id: int) -> None:
        """The user blocks the bot."""
        await self._call("POST", f"users/{user_id}/block", {})

    async def unblock(self, user_id: int) -> None:
        """The user unblocks the bot."""
        await self._call("POST", f"users/{user_id}/unblock", {})

    async def events(
        self, chat_id: int, after: int = -1, wait: float = 0.0
    ) -> list[EmulatorEvent]:
        """Transcript events with index > after, long-polling up to `wait` seconds for one."""
        result = await self._call(
            "GET",
            f"chats/{chat_id}/messages",
            params={"after": str(after), "wait": str(wait)},
            read_timeout=wait + 10.0,
        )
        return [EmulatorEvent.from_json(e) for e in result["events"]]

    async def wait_for_reply(
        self,
        chat_id: int,
        pattern: str | re.Pattern[str],
        *,
        after: int = -1,
        within: float = 5.0,
    ) -> EmulatorEvent:
        """The first bot message or edit after `after` whose text matches `pattern`."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            remaining = deadline - loop.time()
            events = await self.events(chat_id, after, wait=max(remaining, 0.0))
            for event in events:
                if event.from_bot and event.kind != "delete" and regex.search(event.text):
                    return event
            if events:
                after = events[-1].index
            if loop.time() >= deadline:
                raise TimeoutError(f"no bot reply matching {regex.pattern!r} in chat {chat_id}")

    async def inject_fault(
        self,
        method: str | None,
        kind: FaultKind,
        *,
        times: int = 1,
        retry_after: int = 1,
        delay: float = 2.0,
        status: int = 502,
    ) -> None:
        """Make the next `times` calls of `method` (None: any but getUpdates) fail."""
        body = {
            "method": method,
            "kind": kind,
            "times": times,
            "retry_after": retry_after,
            "delay": delay,
            "status": status,
        }
        await self._call("POST", "faults", body)

    async def clear_faults(self) -> None:
        """Forget every pending fault."""
        await self._call("DELETE", "faults")

    async def set_latency(self, seconds: float) -> None:
        """Add `seconds` to every Bot API answer."""
        await self._call("POST", "latency", {"seconds": seconds})

    async def stats(self) -> EmulatorStats:
        """Calls per method, pending updates and the current settings."""
        body = await self._call("GET", "stats")
        return EmulatorStats(
            calls={str(k): int(v) for k, v in body["calls"].items()},
            pending_updates=int(body["pending_updates"]),
            in_flight=int(body["in_flight"]),
            latency=float(body["latency"]),
            faults=int(body["faults"]),
            chats=int(body["chats"]),
            caps_enabled=bool(body["caps"]["enabled"]),
            caps_accepted=int(body["caps"]["accepted"]),
            caps_refused=int(body["caps"]["refused"]),
        )

    async def set_caps(self, *, enabled: bool, reset: bool = False) -> None:
        """Switch Telegram's send caps on or off; `reset` forgets their windows and counts."""
        await self._call("POST", "caps", {"enabled": enabled, "reset": reset})
