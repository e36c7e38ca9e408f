"""The emulated people: `EmulatedUser` (a private chat), `EmulatedGroup` and `EmulatedChannel`,
each a cursor over its chat's transcript with the actions and assertions tests use."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeAlias

from emulator.api import JSONDict
from emulator.records import TINY_PNG, BotMessage, Chat, TranscriptEvent, png_size, text_fields

if TYPE_CHECKING:
    from emulator.chats import ChatsMixin

Pattern: TypeAlias = str | re.Pattern[str]


def _format_event(event: TranscriptEvent) -> str:
    who = "bot" if event.from_bot else "user"
    tag = {"message": "", "edit": " (edit)", "delete": " (deleted)"}[event.kind]
    message = event.message
    body = message.text
    if message.document:
        body = f"[document {message.document[0]}] {body}"
    elif message.photo is not None:
        body = f"[photo] {body}"
    elif not body:
        kinds = [k for k in ("sticker", "voice", "location", "contact") if k in message.raw]
        body = f"[{kinds[0]}]" if kinds else "[no text]"
    line = f"  #{event.index} {who}{tag} msg {event.message_id}: {body!r}"
    labels = message.button_labels()
    if labels:
        line += f"  buttons={labels}"
    if message.reply_keyboard:
        line += f"  keyboard={[label for row in message.reply_keyboard for label in row]}"
    return line


def _compile(pattern: Pattern) -> re.Pattern[str]:
    return re.compile(pattern) if isinstance(pattern, str) else pattern


class ChatView:
    """A cursor over one chat's transcript, for assertions on what the bot said."""

    def __init__(self, emulator: ChatsMixin, chat: Chat) -> None:
        self._emulator = emulator
        self._chat = chat
        self.cursor = 0

    @property
    def chat_id(self) -> int:
        """The chat this view follows."""
        return self._chat.id

    def transcript(self) -> list[TranscriptEvent]:
        """Every event of the chat so far, in order."""
        return list(self._chat.events)

    def format_transcript(self, last: int = 15) -> str:
        """The last events as readable lines, for assertion messages."""
        events = self._chat.events[-last:]
        return "\n".join(_format_event(e) for e in events) or "  (empty)"

    def _bot_events_after_cursor(self) -> list[TranscriptEvent]:
        return [
            e
            for e in self._chat.events[self.cursor :]
            if e.from_bot and e.kind in ("message", "edit")
        ]

    def replies_since_cursor(self) -> list[BotMessage]:
        """Bot messages and edits after the cursor, without waiting or moving the cursor."""
        return [e.message for e in self._bot_events_after_cursor()]

    def messages(self) -> list[BotMessage]:
        """Every message of the chat as it stands now (after edits), oldest first."""
        return [self._chat.messages[m].view() for m in sorted(self._chat.messages)]

    def skip_to_end(self) -> None:
        """Move the cursor past everything already in the transcript."""
        self.cursor = len(self._chat.events)

    def last_bot_message(self) -> BotMessage | None:
        """The newest undeleted bot message as currently stored (after edits)."""
        for message_id in sorted(self._chat.messages, reverse=True):
            stored = self._chat.messages[message_id]
            if stored.from_bot and not stored.deleted:
                return stored.view()
        return None

    async def expect(
        self,
        pattern: Pattern,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a per-call deadline reads better in tests
    ) -> BotMessage:
        """Wait for a bot message or edit after the cursor whose text matches; move past it."""
        regex = _compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for event in self._bot_events_after_cursor():
                if regex.search(event.message.text):
                    self.cursor = event.index + 1
                    return event.message
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no bot message matching {regex.pattern!r} within {timeout}s in chat "
                    f"{self.chat_id} (cursor at #{self.cursor}); recent transcript:\n"
                    f"{self.format_transcript()}"
                )
            await self._chat.signal.wait(remaining)

    async def expect_no_reply(self, within: float = 0.5) -> None:
        """Assert that the bot sends or edits nothing here for `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            replies = self._bot_events_after_cursor()
            if replies:
                raise AssertionError(
                    f"expected no reply in chat {self.chat_id}, got {len(replies)}:\n"
                    + "\n".join(_format_event(e) for e in replies)
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await self._chat.signal.wait(remaining)


class EmulatedUser(ChatView):
    """A Telegram user talking to the bot in a private chat (chat id == user id)."""

    def __init__(
        self,
        emulator: ChatsMixin,
        chat: Chat,
        *,
        user_id: int,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
    ) -> None:
        super().__init__(emulator, chat)
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self.blocked = False

    def as_dict(self) -> JSONDict:
        """The Bot API User object."""
        user: JSONDict = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    async def send(self, text: str, *, reply_to: int | None = None) -> JSONDict:
        """Send a text message (with a bot_command entity when it starts with '/'), optionally
        as a reply to message `reply_to` of this chat (what a ForceReply prompt asks for)."""
        fields = text_fields(text)
        if reply_to is not None:
            original = self._chat.messages.get(reply_to)
            if original is None or original.deleted:
                raise AssertionError(f"no message {reply_to} in chat {self.chat_id} to reply to")
            replied = dict(original.data)
            replied.pop("reply_to_message", None)
            fields["reply_to_message"] = replied
        return self._emulator._user_message(self._chat, self, fields)

    async def send_photo(self, data: bytes | None = None) -> JSONDict:
        """Send a photo (a 1x1 PNG unless bytes are given)."""
        stored = self._emulator._store_file(data or TINY_PNG, "photo.png", "image/png", "photos")
        width, height = png_size(stored.data)
        size = {**stored.document(), "width": width, "height": height}
        size.pop("file_name", None)
        size.pop("mime_type", None)
        return self._emulator._user_message(self._chat, self, {"photo": [size]}, file=stored)

    async def send_sticker(self, emoji: str = "👍") -> JSONDict:
        """Send a sticker."""
        stored = self._emulator._store_file(b"RIFF\0\0\0\0WEBP", None, "image/webp", "stickers")
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": len(stored.data),
        }
        return self._emulator._user_message(self._chat, self, {"sticker": sticker}, file=stored)

    async def send_voice(self, duration: int = 2) -> JSONDict:
        """Send a voice note."""
        stored = self._emulator._store_file(b"OggS" + bytes(60), None, "audio/ogg", "voice")
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(stored.data),
        }
        return self._emulator._user_message(self._chat, self, {"voice": voice}, file=stored)

    async def send_location(self, latitude: float, longitude: float) -> JSONDict:
        """Send a location."""
        location = {"latitude": latitude, "longitude": longitude}
        return self._emulator._user_message(self._chat, self, {"location": location})

    async def send_document(
        self, data: bytes, filename: str, mime_type: str = "text/csv", caption: str | None = None
    ) -> JSONDict:
        """Send a file the bot can fetch with getFile and download."""
        stored = self._emulator._store_file(data, filename, mime_type, "documents")
        fields: JSONDict = {"document": stored.document()}
        if caption:
            fields["caption"] = caption
        return self._emulator._user_message(self._chat, self, fields, file=stored)

    async def share_contact(
        self, phone_number: str, *, user_id: int | None = None, first_name: str | None = None
    ) -> JSONDict:
        """Share a contact: by default the sender's own, else someone else's (user_id)."""
        contact: JSONDict = {
            "phone_number": phone_number,
            "first_name": first_name or (self.first_name if user_id is None else "Kontak"),
            "user_id": self.id if user_id is None else user_id,
        }
        if user_id is None and self.last_name:
            contact["last_name"] = self.last_name
        return self._emulator._user_message(self._chat, self, {"contact": contact})

    async def edit(self, message_id: int, new_text: str) -> JSONDict:
        """Edit one of this user's text messages; the bot gets an edited_message update."""
        return self._emulator._user_edit(self._chat, self, message_id, new_text)

    async def press(self, label: Pattern, *, message_id: int | None = None) -> str:
        """Press an inline button by label on the newest bot message having it; returns the id."""
        chat = self._chat
        matcher = (
            (lambda text: text == label)
            if isinstance(label, str)
            else (lambda text: label.search(text) is not None)
        )
        candidates: Iterable[int]
        if message_id is not None:
            candidates = [message_id]
        else:
            candidates = sorted(chat.messages, reverse=True)
        for mid in candidates:
            stored = chat.messages.get(mid)
            if stored is None or not stored.from_bot or stored.deleted:
                continue
            markup = stored.data.get("reply_markup") or {}
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    if matcher(button["text"]):
                        if "callback_data" not in button:
                            raise AssertionError(
                                f"button {button['text']!r} on message {mid} has no "
                                f"callback_data: {button}"
                            )
                        return self._emulator._callback(
                            chat, self, stored, str(button["callback_data"])
                        )
        wanted = label if isinstance(label, str) else label.pattern
        available = [
            f"msg {m.message_id}: {m.button_labels()}"
            for m in (s.view() for s in reversed(chat.messages.values()))
            if m.from_bot and not m.deleted and m.buttons
        ][:5]
        raise AssertionError(
            f"no inline button {wanted!r} in chat {chat.id}"
            + (f" on message {message_id}" if message_id is not None else "")
            + "; available: "
            + ("; ".join(available) or "none")
            + f"\nrecent transcript:\n{self.format_transcript()}"
        )

    async def press_data(self, data: str, message_id: int | None = None) -> str:
        """A callback_query with arbitrary data, as a modified client could forge one."""
        chat = self._chat
        if message_id is None:
            bot_ids = [m for m, s in chat.messages.items() if s.from_bot and not s.deleted]
            if not bot_ids:
                raise AssertionError(f"no bot message in chat {chat.id} to attach a press to")
            message_id = max(bot_ids)
        stored = chat.messages.get(message_id)
        return self._emulator._callback(chat, self, stored, data, message_id=message_id)

    async def block(self) -> None:
        """Block the bot: sends to this user now fail with 403 Forbidden."""
        if not self.blocked:
            self.blocked = True
            self._emulator._member_update(self, "member", "kicked")

    async def unblock(self) -> None:
        """Unblock the bot (the client's 'Restart')."""
        if self.blocked:
            self.blocked = False
            self._emulator._member_update(self, "kicked", "member")


class EmulatedGroup(ChatView):
    """A basic group the bot is a member of (negative chat id)."""

    async def send(self, user: EmulatedUser, text: str) -> JSONDict:
        """`user` writes `text` in the group."""
        return self._emulator._user_message(self._chat, user, text_fields(text))


class EmulatedChannel(ChatView):
    """A channel the bot administers; posts arrive as channel_post updates."""

    async def post(self, text: str) -> JSONDict:
        """Publish a text post in the channel."""
        return self._emulator._user_message(self._chat, None, text_fields(text))
