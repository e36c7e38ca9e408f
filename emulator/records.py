"""What the emulator stores and what tests read back: chats with their messages and transcript,
uploaded files, and the flattened `BotMessage` / `TranscriptEvent` views."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from emulator.api import JSONDict
from emulator.formatting import utf16_len

EventKind: TypeAlias = Literal["message", "edit", "delete"]


@dataclass(frozen=True)
class BotMessage:
    """One message as seen in a transcript, flattened for assertions."""

    message_id: int
    chat_id: int
    text: str
    raw_text: str
    parse_mode: str | None
    buttons: list[list[tuple[str, str]]]
    reply_keyboard: list[list[str]] | None
    remove_keyboard: bool
    document: tuple[str, bytes] | None
    photo: bytes | None
    edited: bool
    from_bot: bool = True
    deleted: bool = False
    entities: list[JSONDict] = field(default_factory=list)
    raw: JSONDict = field(default_factory=dict, repr=False, compare=False)

    def button_labels(self) -> list[str]:
        """All inline button labels, row by row."""
        return [label for row in self.buttons for label, _ in row]

    def to_json(self) -> JSONDict:
        """A JSON-safe form (file bytes replaced by their size) for the control API."""
        return {
            "message_id": self.message_id,
            "chat_id": self.chat_id,
            "text": self.text,
            "raw_text": self.raw_text,
            "parse_mode": self.parse_mode,
            "buttons": [[list(button) for button in row] for row in self.buttons],
            "reply_keyboard": self.reply_keyboard,
            "remove_keyboard": self.remove_keyboard,
            "document": (
                {"filename": self.document[0], "size": len(self.document[1])}
                if self.document
                else None
            ),
            "photo_size": len(self.photo) if self.photo is not None else None,
            "edited": self.edited,
            "from_bot": self.from_bot,
            "deleted": self.deleted,
            "entities": self.entities,
            "message": self.raw,
        }


@dataclass(frozen=True)
class TranscriptEvent:
    """One entry of a chat transcript: a message, an edit or a deletion, in order."""

    index: int
    kind: EventKind
    chat_id: int
    message_id: int
    from_bot: bool
    at: float
    message: BotMessage

    def to_json(self) -> JSONDict:
        """The control API's JSON form."""
        return {
            "index": self.index,
            "kind": self.kind,
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "from_bot": self.from_bot,
            "at": self.at,
            **self.message.to_json(),
        }


@dataclass
class StoredFile:
    """A file the bot sent or a user uploaded, served by getFile and /file/."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    filename: str | None
    mime_type: str | None

    def document(self) -> JSONDict:
        doc: JSONDict = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
        }
        if self.filename:
            doc["file_name"] = self.filename
        if self.mime_type:
            doc["mime_type"] = self.mime_type
        return doc


@dataclass
class StoredMessage:
    """A message as the emulator keeps it: the Bot API object plus what was sent."""

    data: JSONDict
    from_bot: bool
    raw_text: str = ""
    parse_mode: str | None = None
    reply_keyboard: list[list[str]] | None = None
    remove_keyboard: bool = False
    file: StoredFile | None = None
    deleted: bool = False
    edited: bool = False

    def view(self) -> BotMessage:
        data = self.data
        text = str(data.get("text") or data.get("caption") or "")
        markup = data.get("reply_markup") or {}
        buttons = [
            [(str(b["text"]), str(b.get("callback_data") or b.get("url") or "")) for b in row]
            for row in markup.get("inline_keyboard", [])
        ]
        file = self.file
        return BotMessage(
            message_id=data["message_id"],
            chat_id=data["chat"]["id"],
            text=text,
            raw_text=self.raw_text or text,
            parse_mode=self.parse_mode,
            buttons=buttons,
            reply_keyboard=self.reply_keyboard,
            remove_keyboard=self.remove_keyboard,
            document=(file.filename or "", file.data) if file and "document" in data else None,
            photo=file.data if file and "photo" in data else None,
            edited=self.edited,
            from_bot=self.from_bot,
            deleted=self.deleted,
            entities=copy.deepcopy(data.get("entities") or data.get("caption_entities") or []),
            raw=copy.deepcopy(data),
        )


class Signal:
    """Wakes every current waiter at once; waiters re-check their condition afterwards."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await event.wait()


@dataclass
class Chat:
    """One chat: its messages by id, its transcript, and a signal fired on each event."""

    data: JSONDict
    chat_instance: str
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    events: list[TranscriptEvent] = field(default_factory=list)
    next_message_id: int = 1
    signal: Signal = field(default_factory=Signal)

    @property
    def id(self) -> int:
        return int(self.data["id"])


def _tiny_png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\xff\xff")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


TINY_PNG: Final = _tiny_png()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG (320x320 for anything else, as a stand-in)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 320, 320


def _command_entities(text: str) -> list[JSONDict]:
    if not text.startswith("/") or len(text) < 2:
        return []
    command = re.split(r"\s", text, maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]


def text_fields(text: str) -> JSONDict:
    """The fields of a user's text message, with a bot_command entity for "/..."."""
    fields: JSONDict = {"text": text}
    entities = _command_entities(text)
    if entities:
        fields["entities"] = entities
    return fields
