"""The Bot API methods the bot calls: sending, editing and deleting messages, files, callback
answers, commands and the menu button, getMe and getChat, each checked as Telegram checks it."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias

from emulator.api import MAX_CAPTION, MAX_TEXT, ApiError, JSONDict, bad
from emulator.chats import ChatsMixin
from emulator.formatting import parse_formatted
from emulator.markup import Markup, parse_reply_markup
from emulator.params import Upload, opt_int, opt_str, truthy
from emulator.records import Chat, StoredMessage, png_size
from emulator.webhooks import WebhooksMixin

NOT_MODIFIED: Final = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
BLOCKED: Final = "Forbidden: bot was blocked by the user"


_CHAT_ACTIONS: Final = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


Handler: TypeAlias = Callable[[JSONDict], Awaitable[Any]]


class MethodsMixin(ChatsMixin, WebhooksMixin):
    """The Bot API methods, looked up by name in `_methods`."""

    @functools.cached_property
    def _methods(self) -> dict[str, tuple[str, Handler]]:
        """Each method by its lower-cased name (Telegram ignores the case), with its spelling."""
        table: dict[str, Handler] = {
            "getMe": self._get_me,
            "logOut": self._true,
            "close": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setMyDescription": self._true,
            "setMyShortDescription": self._true,
            "setMyName": self._true,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "sendChatAction": self._send_chat_action,
            "getFile": self._get_file,
            "getChat": self._get_chat,
        }
        return {name.lower(): (name, handler) for name, handler in table.items()}

    async def _true(self, _params: JSONDict) -> bool:
        return True

    async def _get_me(self, _params: JSONDict) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def my_commands(
        self, language_code: str = "", scope: JSONDict | None = None
    ) -> list[JSONDict]:
        """Commands the bot set for a scope (default scope) and language."""
        return list(self.commands.get((_scope_key(scope), language_code), []))

    def menu_of(self, user_id: int, language_code: str = "") -> list[JSONDict]:
        """The command menu a user sees in their private chat with the bot: the first scope
        set of chat, all private chats, default, each with the user's language before none
        (the order the Bot API documents for private chats)."""
        for scope in (
            {"type": "chat", "chat_id": user_id},
            {"type": "all_private_chats"},
            {"type": "default"},
        ):
            for language in dict.fromkeys((language_code, "")):
                commands = self.commands.get((_scope_key(scope), language))
                if commands is not None:
                    return list(commands)
        return []

    def _command_scope(self, raw: Any) -> str:
        """A BotCommandScope checked as the Bot API documents it; its key in `commands`."""
        if raw is None or raw == "":
            return _scope_key(None)
        if not isinstance(raw, dict) or raw.get("type") not in _SCOPE_FIELDS:
            raise bad("can't parse BotCommandScope JSON object")
        scope: JSONDict = {"type": raw["type"]}
        for name in _SCOPE_FIELDS[raw["type"]]:
            if raw.get(name) is None:
                raise bad(f'field "{name}" must be of type Integer')
            if name == "chat_id":
                # A chat the bot has never seen (the user never started it) is not found.
                scope[name] = self._find_chat({"chat_id": raw[name]}, sending=False).id
            else:
                scope[name] = opt_int(raw, name, 0)
        return _scope_key(scope)

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad("too many commands")
        for command in commands:
            if not isinstance(command, dict):
                raise bad("can't parse BotCommand JSON object")
            name = command.get("command")
            description = command.get("description")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise bad("command description must be non-empty")
        key = (self._command_scope(params.get("scope")), opt_str(params, "language_code") or "")
        self.commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        key = (self._command_scope(params.get("scope")), opt_str(params, "language_code") or "")
        return list(self.commands.get(key, []))

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        key = (self._command_scope(params.get("scope")), opt_str(params, "language_code") or "")
        self.commands.pop(key, None)
        return True

    async def _set_chat_menu_button(self, params: JSONDict) -> bool:
        chat_id = opt_int(params, "chat_id", 0) or None
        if chat_id is not None and chat_id not in self._chats:
            raise bad("chat not found")
        button = params.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in (
            "default",
            "commands",
            "web_app",
        ):
            raise bad("can't parse menu button JSON object")
        self.menu_buttons[chat_id] = button
        return True

    async def _get_chat_menu_button(self, params: JSONDict) -> JSONDict:
        chat_id = opt_int(params, "chat_id", 0) or None
        return self.menu_buttons.get(chat_id) or self.menu_buttons.get(None) or {"type": "default"}

    def _find_chat(self, params: JSONDict, *, sending: bool = True) -> Chat:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad("chat_id is empty")
        chat: Chat | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next(
                (c for c in self._chats.values() if c.data.get("username") == raw[1:]), None
            )
        else:
            try:
                chat = self._chats.get(int(raw))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            raise bad("chat not found")
        if sending and chat.data["type"] == "private":
            user = self._users.get(chat.id)
            if user is not None and user.blocked:
                raise ApiError(403, BLOCKED)
        return chat

    def _reply_to(self, chat: Chat, params: JSONDict) -> JSONDict | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow = truthy(reply.get("allow_sending_without_reply"))
        else:
            message_id = params.get("reply_to_message_id")
            allow = truthy(params.get("allow_sending_without_reply"))
        if message_id in (None, ""):
            return None
        try:
            stored = chat.messages.get(int(message_id))
        except (TypeError, ValueError):
            raise bad("message to be replied not found") from None
        if stored is None or stored.deleted:
            if allow:
                return None
            raise bad("message to be replied not found")
        original = dict(stored.data)
        original.pop("reply_to_message", None)
        return original

    def _text(self, params: JSONDict) -> tuple[str, str, list[JSONDict]]:
        raw = opt_str(params, "text") or ""
        if not raw.strip():
            raise bad("message text is empty")
        plain, entities = parse_formatted(
            raw, opt_str(params, "parse_mode"), params.get("entities")
        )
        if not plain.strip():
            raise bad("message text is empty")
        if len(plain) > MAX_TEXT:
            raise bad("message is too long")
        return raw, plain, entities

    def _caption(self, params: JSONDict) -> tuple[str, str, list[JSONDict]]:
        raw = opt_str(params, "caption") or ""
        if not raw:
            return "", "", []
        plain, entities = parse_formatted(
            raw, opt_str(params, "parse_mode"), params.get("caption_entities")
        )
        if len(plain) > MAX_CAPTION:
            raise bad("message caption is too long")
        return raw, plain, entities

    async def _send_message(self, params: JSONDict) -> JSONDict:
        chat = self._find_chat(params)
        raw, plain, entities = self._text(params)
        markup = parse_reply_markup(params.get("reply_markup"))
        fields: JSONDict = {"text": plain}
        if entities:
            fields["entities"] = entities
        reply_to = self._reply_to(chat, params)
        if reply_to is not None:
            fields["reply_to_message"] = reply_to
        if markup.inline is not None:
            fields["reply_markup"] = markup.inline
        stored = self._add_message(
            chat,
            self.bot_user,
            fields,
            from_bot=True,
            raw_text=raw,
            parse_mode=opt_str(params, "parse_mode"),
            markup=markup,
        )
        return stored.data

    async def _send_file(self, params: JSONDict, field_name: str, folder: str) -> JSONDict:
        chat = self._find_chat(params)
        value = params.get(field_name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, Upload):
            if not value.data:
                raise bad("file must be non-empty")
            filename = value.filename if field_name == "document" else None
            stored = self._store_file(value.data, filename, value.content_type, folder)
        elif isinstance(value, str) and value in self._files:
            stored = self._files[value]
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            raise bad("failed to get HTTP URL content")
        elif value in (None, ""):
            raise bad(f"there is no {field_name} in the request")
        else:
            raise bad("wrong file identifier/HTTP URL specified")
        raw_caption, caption, caption_entities = self._caption(params)
        markup = parse_reply_markup(params.get("reply_markup"))
        fields: JSONDict = {}
        if field_name == "document":
            fields["document"] = stored.document()
        else:
            width, height = png_size(stored.data)
            fields["photo"] = [
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": len(stored.data),
                    "width": width,
                    "height": height,
                }
            ]
        if caption:
            fields["caption"] = caption
            if caption_entities:
                fields["caption_entities"] = caption_entities
        reply_to = self._reply_to(chat, params)
        if reply_to is not None:
            fields["reply_to_message"] = reply_to
        if markup.inline is not None:
            fields["reply_markup"] = markup.inline
        return self._add_message(
            chat,
            self.bot_user,
            fields,
            from_bot=True,
            raw_text=raw_caption,
            parse_mode=opt_str(params, "parse_mode"),
            markup=markup,
            file=stored,
        ).data

    async def _send_document(self, params: JSONDict) -> JSONDict:
        return await self._send_file(params, "document", "documents")

    async def _send_photo(self, params: JSONDict) -> JSONDict:
        return await self._send_file(params, "photo", "photos")

    def _editable(self, params: JSONDict) -> tuple[Chat, StoredMessage]:
        if params.get("inline_message_id"):
            raise bad("MESSAGE_ID_INVALID")
        chat = self._find_chat(params)
        message_id = opt_int(params, "message_id", 0)
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted:
            raise bad("message to edit not found")
        if not stored.from_bot:
            raise bad("message can't be edited")
        return chat, stored

    def _apply_edit(
        self, chat: Chat, stored: StoredMessage, changes: JSONDict, markup: Markup
    ) -> JSONDict:
        after = {**changes, "reply_markup": markup.inline}
        # A missing field and an empty one are the same content to Telegram.
        if all(_blank_to_none(stored.data.get(k)) == _blank_to_none(v) for k, v in after.items()):
            raise bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        for key, value in after.items():
            if value is None or value == []:
                stored.data.pop(key, None)
            else:
                stored.data[key] = value
        stored.data["edit_date"] = int(time.time())
        stored.edited = True
        self._record(chat, "edit", stored)
        return stored.data

    async def _edit_message_text(self, params: JSONDict) -> JSONDict:
        chat, stored = self._editable(params)
        if "text" not in stored.data:
            raise bad("there is no text in the message to edit")
        raw, plain, entities = self._text(params)
        # Like Telegram, an edit without reply_markup removes the inline keyboard.
        markup = parse_reply_markup(params.get("reply_markup"))
        result = self._apply_edit(chat, stored, {"text": plain, "entities": entities}, markup)
        stored.raw_text = raw
        stored.parse_mode = opt_str(params, "parse_mode")
        return result

    async def _edit_message_caption(self, params: JSONDict) -> JSONDict:
        chat, stored = self._editable(params)
        if "text" in stored.data:
            raise bad("there is no caption in the message to edit")
        raw, plain, entities = self._caption(params)
        markup = parse_reply_markup(params.get("reply_markup"))
        changes: JSONDict = {"caption": plain or None, "caption_entities": entities}
        result = self._apply_edit(chat, stored, changes, markup)
        stored.raw_text = raw
        stored.parse_mode = opt_str(params, "parse_mode")
        return result

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        chat, stored = self._editable(params)
        markup = parse_reply_markup(params.get("reply_markup"))
        return self._apply_edit(chat, stored, {}, markup)

    async def _delete_message(self, params: JSONDict) -> bool:
        chat = self._find_chat(params, sending=False)
        stored = chat.messages.get(opt_int(params, "message_id", 0))
        if stored is None or stored.deleted:
            raise bad("message to delete not found")
        stored.deleted = True
        self._record(chat, "delete", stored)
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = opt_str(params, "callback_query_id") or ""
        if self._open_queries.pop(query_id, None) is None:
            raise bad("query is too old and response timeout expired or query ID is invalid")
        text = opt_str(params, "text")
        if text is not None and len(text) > 200:
            raise bad("MESSAGE_TOO_LONG")
        self.answered_callbacks[query_id] = (text, truthy(params.get("show_alert")))
        return True

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._find_chat(params)
        if opt_str(params, "action") not in _CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        return True

    async def _get_file(self, params: JSONDict) -> JSONDict:
        stored = self._files.get(opt_str(params, "file_id") or "")
        if stored is None:
            raise bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    async def _get_chat(self, params: JSONDict) -> JSONDict:
        chat = self._find_chat(params, sending=False)
        return {
            **chat.data,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }


def _blank_to_none(value: Any) -> Any:
    return None if value in (None, "", [], {}) else value


# BotCommandScope types and the fields each requires (Bot API, "BotCommandScope").
_SCOPE_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "default": (),
    "all_private_chats": (),
    "all_group_chats": (),
    "all_chat_administrators": (),
    "chat": ("chat_id",),
    "chat_administrators": ("chat_id",),
    "chat_member": ("chat_id", "user_id"),
}


def _scope_key(scope: Any) -> str:
    if not scope:
        scope = {"type": "default"}
    return json.dumps(scope, sort_keys=True)
