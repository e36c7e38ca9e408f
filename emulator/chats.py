"""Chats and what happens in them: creating users, groups and channels, recording each message,
edit and deletion in the chat's transcript, and the updates a person's action sends the bot."""

from __future__ import annotations

import copy
import time

from emulator.api import JSONDict
from emulator.markup import Markup
from emulator.records import (
    Chat,
    EventKind,
    StoredFile,
    StoredMessage,
    TranscriptEvent,
    text_fields,
)
from emulator.updates import UpdatesMixin
from emulator.users import EmulatedChannel, EmulatedGroup, EmulatedUser


class ChatsMixin(UpdatesMixin):
    """The chats, their people and their transcripts."""

    def _new_chat(self, data: JSONDict) -> Chat:
        chat_id = int(data["id"])
        if chat_id in self._chats:
            raise ValueError(f"chat {chat_id} already exists")
        chat = Chat(data=data, chat_instance=str(abs(hash((self.bot_id, chat_id)))))
        chat.next_message_id = self._resumed_message_ids.get(chat_id, chat.next_message_id)
        self._chats[chat_id] = chat
        return chat

    def numbering(self) -> JSONDict:
        """Where update ids and each chat's message ids stand (JSON-safe), for
        `resume_numbering` in a later emulator."""
        message_ids = dict(self._resumed_message_ids)
        message_ids.update(
            {chat_id: chat.next_message_id for chat_id, chat in self._chats.items()}
        )
        return {
            "next_update_id": self._next_update_id,
            "next_message_ids": {
                str(chat_id): next_id for chat_id, next_id in message_ids.items()
            },
        }

    def resume_numbering(self, numbering: JSONDict) -> None:
        """Continue the ids a previous emulator handed out (`numbering()`), as Telegram does
        across a bot's restart: a bot that remembers the update ids and messages it handled
        must never see the same ids again. Ids only move forward."""
        next_update = int(numbering.get("next_update_id", 1))
        if next_update > self._next_update_id and not self._updates:
            self._next_update_id = next_update
            self._delivered_up_to = next_update - 1
        for key, value in dict(numbering.get("next_message_ids", {})).items():
            chat_id, next_id = int(key), int(value)
            self._resumed_message_ids[chat_id] = max(
                next_id, self._resumed_message_ids.get(chat_id, 1)
            )
            chat = self._chats.get(chat_id)
            if chat is not None:
                chat.next_message_id = max(chat.next_message_id, next_id)

    def user(
        self,
        user_id: int,
        *,
        first_name: str = "Budi",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "id",
    ) -> EmulatedUser:
        """The user with this id (created with a private chat on first use)."""
        existing = self._users.get(user_id)
        if existing is not None:
            return existing
        if user_id <= 0:
            raise ValueError("user ids are positive")
        data: JSONDict = {"id": user_id, "type": "private", "first_name": first_name}
        if last_name:
            data["last_name"] = last_name
        if username:
            data["username"] = username
        user = EmulatedUser(
            self,
            self._new_chat(data),
            user_id=user_id,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
        )
        self._users[user_id] = user
        return user

    def group(self, chat_id: int, title: str = "Grup Uji") -> EmulatedGroup:
        """A basic group (negative id) the bot is a member of."""
        existing = self._views.get(chat_id)
        if isinstance(existing, EmulatedGroup):
            return existing
        if chat_id >= 0:
            raise ValueError("group ids are negative")
        group = EmulatedGroup(
            self, self._new_chat({"id": chat_id, "type": "group", "title": title})
        )
        self._views[chat_id] = group
        return group

    def channel(
        self, chat_id: int, title: str = "Kanal Uji", username: str | None = None
    ) -> EmulatedChannel:
        """A channel (negative id) the bot administers."""
        existing = self._views.get(chat_id)
        if isinstance(existing, EmulatedChannel):
            return existing
        if chat_id >= 0:
            raise ValueError("channel ids are negative")
        data: JSONDict = {"id": chat_id, "type": "channel", "title": title}
        if username:
            data["username"] = username
        channel = EmulatedChannel(self, self._new_chat(data))
        self._views[chat_id] = channel
        return channel

    def chat_events(self, chat_id: int) -> list[TranscriptEvent]:
        """The transcript of any chat."""
        chat = self._chats.get(chat_id)
        return list(chat.events) if chat else []

    def _record(self, chat: Chat, kind: EventKind, stored: StoredMessage) -> TranscriptEvent:
        event = TranscriptEvent(
            index=len(chat.events),
            kind=kind,
            chat_id=chat.id,
            message_id=int(stored.data["message_id"]),
            from_bot=stored.from_bot,
            at=time.time(),
            message=stored.view(),
        )
        chat.events.append(event)
        chat.signal.fire()
        self._touch()
        return event

    def _add_message(
        self,
        chat: Chat,
        sender: JSONDict | None,
        fields: JSONDict,
        *,
        from_bot: bool,
        raw_text: str = "",
        parse_mode: str | None = None,
        markup: Markup | None = None,
        file: StoredFile | None = None,
    ) -> StoredMessage:
        data: JSONDict = {"message_id": chat.next_message_id}
        chat.next_message_id += 1
        if sender is not None:
            data["from"] = sender
        if chat.data["type"] == "channel":
            data["sender_chat"] = chat.data
        data["chat"] = chat.data
        data["date"] = int(time.time())
        data.update(fields)
        markup = markup or Markup()
        stored = StoredMessage(
            data=data,
            from_bot=from_bot,
            raw_text=raw_text,
            parse_mode=parse_mode,
            reply_keyboard=markup.reply_keyboard,
            remove_keyboard=markup.remove_keyboard,
            file=file,
        )
        chat.messages[data["message_id"]] = stored
        self._record(chat, "message", stored)
        return stored

    def _user_message(
        self,
        chat: Chat,
        user: EmulatedUser | None,
        fields: JSONDict,
        *,
        file: StoredFile | None = None,
    ) -> JSONDict:
        stored = self._add_message(
            chat,
            user.as_dict() if user else None,
            fields,
            from_bot=False,
            raw_text=str(fields.get("text") or fields.get("caption") or ""),
            file=file,
        )
        kind = "channel_post" if chat.data["type"] == "channel" else "message"
        self._push_update(kind, stored.data)
        return copy.deepcopy(stored.data)

    def _user_edit(
        self, chat: Chat, user: EmulatedUser, message_id: int, new_text: str
    ) -> JSONDict:
        stored = chat.messages.get(message_id)
        if stored is None or stored.from_bot or stored.deleted or "text" not in stored.data:
            raise AssertionError(f"message {message_id} is not a text message of user {user.id}")
        stored.data["text"] = new_text
        stored.data.pop("entities", None)
        stored.data.update({k: v for k, v in text_fields(new_text).items() if k != "text"})
        stored.data["edit_date"] = int(time.time())
        stored.raw_text = new_text
        stored.edited = True
        self._record(chat, "edit", stored)
        self._push_update("edited_message", stored.data)
        return copy.deepcopy(stored.data)

    def _callback(
        self,
        chat: Chat,
        user: EmulatedUser,
        stored: StoredMessage | None,
        data: str,
        *,
        message_id: int | None = None,
    ) -> str:
        query_id = str(next(self._query_counter))
        if stored is not None and not stored.deleted:
            message = stored.data
        else:
            # What Telegram sends for a message the bot can no longer see.
            message = {"chat": chat.data, "message_id": message_id or 0, "date": 0}
        query: JSONDict = {
            "id": query_id,
            "from": user.as_dict(),
            "message": message,
            "chat_instance": chat.chat_instance,
            "data": data,
        }
        self._open_queries[query_id] = query
        self._push_update("callback_query", query)
        return query_id

    def _member_update(self, user: EmulatedUser, old: str, new: str) -> None:
        def member(status: str) -> JSONDict:
            body: JSONDict = {"user": self.bot_user, "status": status}
            if status == "kicked":
                body["until_date"] = 0
            return body

        self._push_update(
            "my_chat_member",
            {
                "chat": self._chats[user.id].data,
                "from": user.as_dict(),
                "date": int(time.time()),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )

    def _store_file(
        self, data: bytes, filename: str | None, mime_type: str | None, folder: str
    ) -> StoredFile:
        number = next(self._file_counter)
        suffix = ""
        if filename and "." in filename:
            suffix = "." + filename.rsplit(".", 1)[1]
        stored = StoredFile(
            file_id=f"EMU{folder[:3].upper()}{number:08d}{self.bot_id}",
            file_unique_id=f"U{number:08d}",
            file_path=f"{folder}/file_{number}{suffix}",
            data=bytes(data),
            filename=filename,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    def expire_callback_queries(self) -> None:
        """Forget every unanswered callback query, as Telegram does after its answer window
        (about 15 seconds): answering one of them later fails with 400."""
        self._open_queries.clear()
