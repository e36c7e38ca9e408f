"""A local Telegram Bot API emulator for tests, demos and benchmarks.

It speaks the HTTP dialect python-telegram-bot uses (form-encoded or multipart bodies with
JSON-in-string fields, a real long poll on getUpdates) and enforces the limits that bite in
production: text length after entity parsing, strict HTML, callback_data size, "message is not
modified", blocked users. Tests act as users through `EmulatedUser`; other processes use the
control API under `/_emulator/` (see `emulator.client`). After `setWebhook` it POSTs updates to
the bot's URL instead, retrying failed deliveries as Telegram does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import itertools
import json
import logging
import re
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final, Literal, TypeAlias, get_args
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

JSONDict: TypeAlias = dict[str, Any]
FaultKind: TypeAlias = Literal["429", "5xx", "slow", "drop"]
EventKind: TypeAlias = Literal["message", "edit", "delete"]
Pattern: TypeAlias = str | re.Pattern[str]

MAX_TEXT: Final = 4096
MAX_CAPTION: Final = 1024
MAX_CALLBACK_DATA_BYTES: Final = 64
MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024
MAX_LONG_POLL: Final = 50.0
# setWebhook's secret_token: 1-256 characters of A-Z, a-z, 0-9, _ and -.
_SECRET_TOKEN_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,256}$")

NOT_MODIFIED: Final = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
BLOCKED: Final = "Forbidden: bot was blocked by the user"

# Fields PTB serialises to a JSON string inside form and multipart bodies.
_JSON_FIELDS: Final = frozenset(
    {
        "allowed_updates",
        "caption_entities",
        "commands",
        "entities",
        "explanation_entities",
        "link_preview_options",
        "media",
        "menu_button",
        "options",
        "permissions",
        "reaction",
        "reply_markup",
        "reply_parameters",
        "results",
        "scope",
    }
)
_INLINE_ACTIONS: Final = (
    "callback_data",
    "url",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "callback_game",
    "pay",
    "web_app",
    "copy_text",
)
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


class ApiError(Exception):
    """A Bot API error answer: HTTP status, description and optional parameters."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> JSONDict:
        """The JSON body Telegram sends for this error."""
        body: JSONDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Bot API entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _entity_error(detail: str) -> ApiError:
    return _bad(f"can't parse entities: {detail}")


# ---------------------------------------------------------------------------------------------
# Formatting: HTML, MarkdownV2 and legacy Markdown, parsed as strictly as Telegram does.
# ---------------------------------------------------------------------------------------------

_HTML_SIMPLE: Final = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
_HTML_TAGS: Final = frozenset({*_HTML_SIMPLE, "span", "a", "blockquote", "tg-emoji"})
_HTML_NAMED: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG_RE: Final = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9-]*)"
    r"((?:\s+[^\s=>/]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*/?>"
)
_ATTR_RE: Final = re.compile(r"([^\s=>/]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")
_REF_RE: Final = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9A-Fa-f]{1,6})|([A-Za-z][A-Za-z0-9]*));")


def _html_unescape_attr(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        decimal, hexadecimal, name = match.groups()
        if decimal or hexadecimal:
            return chr(int(decimal, 10) if decimal else int(hexadecimal, 16))
        return _HTML_NAMED.get(name.lower(), match.group(0))

    return _REF_RE.sub(replace, value)


def _html_attrs(source: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for name, value in _ATTR_RE.findall(source):
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        attrs[name.lower()] = _html_unescape_attr(value)
    return attrs


@dataclass
class _Open:
    token: str
    start: int
    byte: int
    entity: JSONDict | None


def _finish_entities(entities: list[JSONDict]) -> list[JSONDict]:
    kept = [e for e in entities if e["length"] > 0]
    kept.sort(key=lambda e: (e["offset"], -e["length"]))
    return kept


def parse_html(raw: str) -> tuple[str, list[JSONDict]]:
    """Plain text and entities of an HTML message; raises ApiError as Telegram would."""
    parts: list[str] = []
    pos = 0
    stack: list[_Open] = []
    entities: list[JSONDict] = []
    i = 0
    n = len(raw)

    def emit(chunk: str) -> None:
        nonlocal pos
        parts.append(chunk)
        pos += utf16_len(chunk)

    while i < n:
        special = [x for x in (raw.find("<", i), raw.find("&", i)) if x >= 0]
        nxt = min(special) if special else n
        if nxt > i:
            emit(raw[i:nxt])
            i = nxt
        if i >= n:
            break
        if raw[i] == "&":
            ref = _REF_RE.match(raw, i)
            if ref is None:
                raise _entity_error(
                    f'Unsupported HTML entity at byte offset {_byte_offset(raw, i)}: a literal "&"'
                    ' must be written as "&amp;"'
                )
            decimal, hexadecimal, name = ref.groups()
            if decimal or hexadecimal:
                code = int(decimal, 10) if decimal else int(hexadecimal, 16)
                if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise _entity_error(
                        f"Invalid HTML entity at byte offset {_byte_offset(raw, i)}"
                    )
                emit(chr(code))
            elif name.lower() in _HTML_NAMED:
                emit(_HTML_NAMED[name.lower()])
            else:
                raise _entity_error(
                    f'Unsupported HTML entity "&{name};" at byte offset {_byte_offset(raw, i)}'
                )
            i = ref.end()
            continue
        tag = _TAG_RE.match(raw, i)
        if tag is None:
            word_match = re.match(r"/?[^\s<>&]*", raw[i + 1 :])
            word = word_match.group(0) if word_match else ""
            if word.startswith("/"):
                raise _entity_error(f"Unexpected end tag at byte offset {_byte_offset(raw, i)}")
            raise _entity_error(
                f'Unsupported start tag "{word}" at byte offset {_byte_offset(raw, i)}'
            )
        name = tag.group(2).lower()
        if tag.group(1):
            if not stack:
                raise _entity_error(f"Unexpected end tag at byte offset {_byte_offset(raw, i)}")
            top = stack.pop()
            if top.token != name:
                raise _entity_error(
                    f"Unmatched end tag at byte offset {_byte_offset(raw, i)}, "
                    f'expected "</{top.token}>", found "</{name}>"'
                )
            if top.entity is not None:
                entities.append({**top.entity, "offset": top.start, "length": pos - top.start})
        else:
            if name not in _HTML_TAGS:
                raise _entity_error(
                    f'Unsupported start tag "{name}" at byte offset {_byte_offset(raw, i)}'
                )
            attrs = _html_attrs(tag.group(3))
            entity = _html_entity(name, attrs, stack, raw, i)
            stack.append(_Open(name, pos, _byte_offset(raw, i), entity))
        i = tag.end()
    if stack:
        raise _entity_error(f'Can\'t find end tag corresponding to start tag "{stack[-1].token}"')
    return "".join(parts), _finish_entities(entities)


def _html_entity(
    name: str, attrs: dict[str, str], stack: list[_Open], raw: str, index: int
) -> JSONDict | None:
    if name in _HTML_SIMPLE:
        if name == "code" and stack and stack[-1].token == "pre":
            language = attrs.get("class", "")
            pre = stack[-1].entity
            if language.startswith("language-") and pre is not None:
                # <pre><code class="language-x"> is one pre entity with a language, not two.
                pre["language"] = language.removeprefix("language-")
                return None
        return {"type": _HTML_SIMPLE[name]}
    if name == "span":
        if attrs.get("class") != "tg-spoiler":
            raise _entity_error(
                f'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(raw, index)}"
            )
        return {"type": "spoiler"}
    if name == "a":
        href = attrs.get("href")
        # Telegram silently drops a link without href rather than failing the message.
        return {"type": "text_link", "url": href} if href else None
    if name == "blockquote":
        return {"type": "expandable_blockquote" if "expandable" in attrs else "blockquote"}
    emoji_id = attrs.get("emoji-id", "")
    if not emoji_id.isdigit():
        raise _entity_error(
            f"Custom emoji entity must contain a valid custom emoji identifier at byte offset "
            f"{_byte_offset(raw, index)}"
        )
    return {"type": "custom_emoji", "custom_emoji_id": emoji_id}


_MDV2_RESERVED: Final = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_TOGGLES: Final = {
    "*": "bold",
    "_": "italic",
    "__": "underline",
    "~": "strikethrough",
    "||": "spoiler",
}
_ENTITY_NAMES: Final = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "code": "Code",
    "pre": "Pre",
}


def _mdv2_scan_code(raw: str, start: int, closer: str) -> tuple[str, int]:
    """Unescape a code/pre body up to `closer`; returns the body and the closer's index."""
    out: list[str] = []
    i = start
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in "`\\":
            out.append(raw[i + 1])
            i += 2
            continue
        if raw.startswith(closer, i):
            return "".join(out), i
        out.append(raw[i])
        i += 1
    return "".join(out), -1


def _mdv2_scan_url(raw: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in ")\\":
            out.append(raw[i + 1])
            i += 2
            continue
        if raw[i] == ")":
            return "".join(out), i
        out.append(raw[i])
        i += 1
    return "".join(out), -1


def parse_markdown_v2(raw: str) -> tuple[str, list[JSONDict]]:
    """Plain text and entities of a MarkdownV2 message; raises ApiError as Telegram would."""
    parts: list[str] = []
    pos = 0
    stack: list[_Open] = []
    entities: list[JSONDict] = []
    quote_start: int | None = None
    quote_end = 0
    line_start = True
    i = 0
    n = len(raw)

    def emit(chunk: str) -> None:
        nonlocal pos
        parts.append(chunk)
        pos += utf16_len(chunk)

    while i < n:
        c = raw[i]
        if line_start:
            line_start = False
            if c == ">":
                if quote_start is None:
                    quote_start = pos
                i += 1
                continue
            if quote_start is not None:
                entities.append(
                    {
                        "type": "blockquote",
                        "offset": quote_start,
                        "length": quote_end - quote_start,
                    }
                )
                quote_start = None
        if c == "\n":
            quote_end = pos
            emit(c)
            line_start = True
            i += 1
        elif c == "\\":
            if i + 1 < n and 1 <= ord(raw[i + 1]) <= 126:
                emit(raw[i + 1])
                i += 2
            else:
                emit(c)
                i += 1
        elif c == "`":
            fence = "```" if raw.startswith("```", i) else "`"
            body, end = _mdv2_scan_code(raw, i + len(fence), fence)
            if end < 0:
                kind = "Pre" if fence == "```" else "Code"
                raise _entity_error(
                    f"Can't find end of {kind} entity at byte offset {_byte_offset(raw, i)}"
                )
            entity: JSONDict = {"type": "code"}
            if fence == "```":
                entity = {"type": "pre"}
                first, sep, rest = body.partition("\n")
                if sep and first and not any(ch.isspace() for ch in first):
                    entity["language"] = first
                    body = rest
            start = pos
            emit(body)
            entities.append({**entity, "offset": start, "length": pos - start})
            i = end + len(fence)
        elif c == "!" and raw.startswith("![", i):
            stack.append(_Open("![", pos, _byte_offset(raw, i), None))
            i += 2
        elif c == "[":
            stack.append(_Open("[", pos, _byte_offset(raw, i), None))
            i += 1
        elif c == "]" and stack and stack[-1].token in ("[", "!["):
            if not raw.startswith("(", i + 1):
                raise _entity_error(
                    f"Can't find end of a URL at byte offset {_byte_offset(raw, i)}; "
                    "Character ']' is reserved and must be escaped with the preceding '\\'"
                )
            url, end = _mdv2_scan_url(raw, i + 2)
            top = stack.pop()
            if end < 0:
                name = "CustomEmoji" if top.token == "![" else "TextUrl"
                raise _entity_error(f"Can't find end of {name} entity at byte offset {top.byte}")
            if top.token == "![":
                emoji_id = url.removeprefix("tg://emoji?id=")
                link: JSONDict = {"type": "custom_emoji", "custom_emoji_id": emoji_id}
            else:
                link = {"type": "text_link", "url": url}
            entities.append({**link, "offset": top.start, "length": pos - top.start})
            i = end + 1
        elif c in "*_~" or raw.startswith("||", i):
            token = "__" if raw.startswith("__", i) else "||" if c == "|" else c
            if stack and stack[-1].token == token:
                top = stack.pop()
                entities.append(
                    {"type": _MDV2_TOGGLES[token], "offset": top.start, "length": pos - top.start}
                )
            elif any(o.token == token for o in stack):
                opened = next(o for o in stack if o.token == token)
                name = _ENTITY_NAMES[_MDV2_TOGGLES[token]]
                raise _entity_error(
                    f"Can't find end of {name} entity at byte offset {opened.byte}"
                )
            else:
                stack.append(_Open(token, pos, _byte_offset(raw, i), None))
            i += len(token)
        elif c in _MDV2_RESERVED:
            raise _entity_error(
                f"Character '{c}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            emit(c)
            i += 1
    if stack:
        top = stack[-1]
        kind = "TextUrl" if top.token in ("[", "![") else _ENTITY_NAMES[_MDV2_TOGGLES[top.token]]
        raise _entity_error(f"Can't find end of {kind} entity at byte offset {top.byte}")
    if quote_start is not None:
        entities.append({"type": "blockquote", "offset": quote_start, "length": pos - quote_start})
    return "".join(parts), _finish_entities(entities)


_MD_TOGGLES: Final = {"*": "bold", "_": "italic"}


def parse_markdown(raw: str) -> tuple[str, list[JSONDict]]:
    """Plain text and entities of a legacy Markdown message (no nesting, few escapes)."""
    parts: list[str] = []
    pos = 0
    entities: list[JSONDict] = []
    i = 0
    n = len(raw)

    def emit(chunk: str) -> None:
        nonlocal pos
        parts.append(chunk)
        pos += utf16_len(chunk)

    def unterminated(index: int) -> ApiError:
        return _entity_error(
            f"Can't find end of the entity starting at byte offset {_byte_offset(raw, index)}"
        )

    while i < n:
        c = raw[i]
        if c == "\\" and i + 1 < n and raw[i + 1] in "_*`[":
            emit(raw[i + 1])
            i += 2
        elif c in _MD_TOGGLES or c == "`":
            fence = "```" if raw.startswith("```", i) else c
            end = raw.find(fence, i + len(fence))
            if end < 0:
                raise unterminated(i)
            body = raw[i + len(fence) : end]
            entity: JSONDict = {"type": _MD_TOGGLES.get(c, "code")}
            if fence == "```":
                entity = {"type": "pre"}
                first, sep, rest = body.partition("\n")
                if sep and first and not any(ch.isspace() for ch in first):
                    entity["language"] = first
                    body = rest
            start = pos
            emit(body)
            entities.append({**entity, "offset": start, "length": pos - start})
            i = end + len(fence)
        elif c == "[":
            close = raw.find("](", i + 1)
            end = raw.find(")", close + 2) if close >= 0 else -1
            if close < 0 or end < 0:
                raise unterminated(i)
            start = pos
            emit(raw[i + 1 : close])
            url = raw[close + 2 : end]
            entities.append(
                {"type": "text_link", "url": url, "offset": start, "length": pos - start}
            )
            i = end + 1
        else:
            emit(c)
            i += 1
    return "".join(parts), _finish_entities(entities)


def parse_formatted(
    text: str, parse_mode: str | None, entities: Any = None
) -> tuple[str, list[JSONDict]]:
    """Apply explicit entities or a parse mode; returns the plain text and its entities."""
    if entities is not None:
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise _bad("can't parse entities JSON object")
        return text, entities
    mode = (parse_mode or "").lower()
    if mode == "":
        return text, []
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    raise _bad(f"unsupported parse_mode {parse_mode!r}")


# ---------------------------------------------------------------------------------------------
# Reply markup
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Markup:
    inline: JSONDict | None = None
    reply_keyboard: list[list[str]] | None = None
    remove_keyboard: bool = False


def _valid_button_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return bool(parts.hostname) and "." in (parts.hostname or "")
    return parts.scheme == "tg"


def parse_reply_markup(markup: Any) -> _Markup:
    """Validate a reply_markup object like Telegram does."""
    if markup is None or markup == "":
        return _Markup()
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        return _Markup(inline=_validate_inline_keyboard(markup["inline_keyboard"]))
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad("can't parse reply keyboard markup JSON object")
        labels: list[list[str]] = []
        for row in rows:
            labels.append([])
            for button in row:
                label = button.get("text") if isinstance(button, dict) else button
                if not isinstance(label, str) or not label:
                    raise _bad('can\'t parse keyboard button: Field "text" must be of type String')
                labels[-1].append(label)
        return _Markup(reply_keyboard=labels)
    if markup.get("remove_keyboard") is True:
        return _Markup(remove_keyboard=True)
    if markup.get("force_reply") is True:
        return _Markup()
    raise _bad("can't parse reply keyboard markup JSON object")


def _validate_inline_keyboard(rows: Any) -> JSONDict | None:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad('can\'t parse inline keyboard button: Field "inline_keyboard" must be an Array')
    total = 0
    for row in rows:
        for button in row:
            total += 1
            if not isinstance(button, dict):
                raise _bad(
                    "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                )
            label = button.get("text")
            if not isinstance(label, str):
                raise _bad(
                    'can\'t parse inline keyboard button: Field "text" must be of type String'
                )
            if not label.strip():
                raise _bad("BUTTON_TEXT_INVALID")
            actions = [name for name in _INLINE_ACTIONS if name in button]
            if not actions:
                raise _bad("text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise _bad(
                    "can't parse inline keyboard button: exactly one of the optional fields "
                    f"must be used, found {', '.join(actions)}"
                )
            if "callback_data" in button:
                data = button["callback_data"]
                if (
                    not isinstance(data, str)
                    or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
                ):
                    raise _bad("BUTTON_DATA_INVALID")
            if "url" in button:
                url = button["url"]
                if not isinstance(url, str) or not _valid_button_url(url):
                    raise _bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")
    if total > 100:
        raise _bad("reply markup is too long")
    if total == 0:
        return None
    return {"inline_keyboard": rows}


# ---------------------------------------------------------------------------------------------
# Stored state and the views tests see
# ---------------------------------------------------------------------------------------------


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
class _StoredFile:
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
class _StoredMessage:
    data: JSONDict
    from_bot: bool
    raw_text: str = ""
    parse_mode: str | None = None
    reply_keyboard: list[list[str]] | None = None
    remove_keyboard: bool = False
    file: _StoredFile | None = None
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


class _Signal:
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
class _Chat:
    data: JSONDict
    chat_instance: str
    messages: dict[int, _StoredMessage] = field(default_factory=dict)
    events: list[TranscriptEvent] = field(default_factory=list)
    next_message_id: int = 1
    signal: _Signal = field(default_factory=_Signal)

    @property
    def id(self) -> int:
        return int(self.data["id"])


@dataclass
class _Fault:
    method: str | None
    kind: FaultKind
    remaining: int
    retry_after: int
    delay: float
    status: int
    chat_id: int | None = None

    def matches(self, method: str, params: JSONDict) -> bool:
        if self.chat_id is not None and str(params.get("chat_id")) != str(self.chat_id):
            return False
        if self.method is None:
            return method.lower() != "getupdates"
        return self.method.lower() == method.lower()


@dataclass
class _Upload:
    data: bytes
    filename: str | None
    content_type: str | None

    def __repr__(self) -> str:
        return f"<upload {self.filename!r} {len(self.data)} bytes>"


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


_PNG: Final = _tiny_png()


def _png_size(data: bytes) -> tuple[int, int]:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 320, 320


def _command_entities(text: str) -> list[JSONDict]:
    if not text.startswith("/") or len(text) < 2:
        return []
    command = re.split(r"\s", text, maxsplit=1)[0]
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]


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


class _ChatView:
    """A cursor over one chat's transcript, for assertions on what the bot said."""

    def __init__(self, emulator: BotApiEmulator, chat: _Chat) -> None:
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


class EmulatedUser(_ChatView):
    """A Telegram user talking to the bot in a private chat (chat id == user id)."""

    def __init__(
        self,
        emulator: BotApiEmulator,
        chat: _Chat,
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

    async def send(self, text: str) -> JSONDict:
        """Send a text message (with a bot_command entity when it starts with '/')."""
        return self._emulator._user_message(self._chat, self, _text_fields(text))

    async def send_photo(self, data: bytes | None = None) -> JSONDict:
        """Send a photo (a 1x1 PNG unless bytes are given)."""
        stored = self._emulator._store_file(data or _PNG, "photo.png", "image/png", "photos")
        width, height = _png_size(stored.data)
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


class EmulatedGroup(_ChatView):
    """A basic group the bot is a member of (negative chat id)."""

    async def send(self, user: EmulatedUser, text: str) -> JSONDict:
        """`user` writes `text` in the group."""
        return self._emulator._user_message(self._chat, user, _text_fields(text))


class EmulatedChannel(_ChatView):
    """A channel the bot administers; posts arrive as channel_post updates."""

    async def post(self, text: str) -> JSONDict:
        """Publish a text post in the channel."""
        return self._emulator._user_message(self._chat, None, _text_fields(text))


def _text_fields(text: str) -> JSONDict:
    fields: JSONDict = {"text": text}
    entities = _command_entities(text)
    if entities:
        fields["entities"] = entities
    return fields


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def _opt_int(params: JSONDict, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f'field "{name}" must be of type Integer') from None


def _opt_float(params: JSONDict, name: str, default: float) -> float:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _bad(f'field "{name}" must be of type Number') from None


def _opt_str(params: JSONDict, name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, _Upload):
        raise _bad(f'field "{name}" must be of type String')
    return str(value)


Handler: TypeAlias = Callable[[JSONDict], Awaitable[Any]]


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class BotApiEmulator:
    """An in-process Telegram Bot API server on 127.0.0.1 with a transcript per chat."""

    def __init__(
        self,
        *,
        bot_id: int = 7000000001,
        bot_username: str = "rentan_test_bot",
        bot_name: str = "Rentan Bot",
        latency: float = 0.0,
        require_https: bool = False,
    ) -> None:
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.latency = latency
        # Real Telegram only calls https:// webhooks; tests serve plain http on 127.0.0.1.
        self.require_https = require_https
        self.last_token: str | None = None
        self.calls: collections.Counter[str] = collections.Counter()
        self.requests_log: collections.deque[tuple[str, JSONDict]] = collections.deque(maxlen=2000)
        self.answered_callbacks: dict[str, tuple[str | None, bool]] = {}
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_max_connections = 40
        # Telegram retries a failed delivery with growing pauses for hours; these keep tests fast.
        self.webhook_retry_initial = 0.1
        self.webhook_retry_max = 1.0
        self.webhook_timeout = 10.0
        self.webhook_deliveries = 0
        self.webhook_failures = 0
        self.webhook_last_error: str | None = None
        self._webhook_last_error_at = 0
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_signal = _Signal()
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.menu_buttons: dict[int | None, JSONDict] = {}
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, EmulatedUser] = {}
        self._views: dict[int, _ChatView] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._updates: collections.deque[JSONDict] = collections.deque()
        self._next_update_id = 1
        self._delivered_up_to = 0
        # The newest id of the sequence before restart_update_ids (0 while it never restarted):
        # a bot's offset from that sequence must not confirm the new, lower ids unseen.
        self._old_sequence_end = 0
        # Recently delivered updates, so a test can replay what a crashed bot never confirmed.
        self._delivered: collections.deque[JSONDict] = collections.deque(maxlen=5000)
        self._allowed_updates: frozenset[str] | None = None
        self._updates_signal = _Signal()
        self._activity = _Signal()
        self._activity_count = 0
        self._open_queries: dict[str, JSONDict] = {}
        self._query_counter = itertools.count(4_200_000_000_000_000_001)
        self._faults: list[_Fault] = []
        self._in_flight = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._methods: dict[str, tuple[str, Handler]] = {}
        for name, handler in self._method_table().items():
            self._methods[name.lower()] = (name, handler)

    # -- lifecycle ------------------------------------------------------------------------------

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

    @property
    def bot_user(self) -> JSONDict:
        """The bot's Bot API User object."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by a getUpdates offset."""
        return len(self._updates)

    # -- chats and actors -----------------------------------------------------------------------

    def _new_chat(self, data: JSONDict) -> _Chat:
        chat_id = int(data["id"])
        if chat_id in self._chats:
            raise ValueError(f"chat {chat_id} already exists")
        chat = _Chat(data=data, chat_instance=str(abs(hash((self.bot_id, chat_id)))))
        self._chats[chat_id] = chat
        return chat

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

    def my_commands(
        self, language_code: str = "", scope: JSONDict | None = None
    ) -> list[JSONDict]:
        """Commands the bot set for a scope (default scope) and language."""
        return list(self.commands.get((_scope_key(scope), language_code), []))

    # -- recording ------------------------------------------------------------------------------

    def _record(self, chat: _Chat, kind: EventKind, stored: _StoredMessage) -> TranscriptEvent:
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
        chat: _Chat,
        sender: JSONDict | None,
        fields: JSONDict,
        *,
        from_bot: bool,
        raw_text: str = "",
        parse_mode: str | None = None,
        markup: _Markup | None = None,
        file: _StoredFile | None = None,
    ) -> _StoredMessage:
        data: JSONDict = {"message_id": chat.next_message_id}
        chat.next_message_id += 1
        if sender is not None:
            data["from"] = sender
        if chat.data["type"] == "channel":
            data["sender_chat"] = chat.data
        data["chat"] = chat.data
        data["date"] = int(time.time())
        data.update(fields)
        markup = markup or _Markup()
        stored = _StoredMessage(
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

    def _push_update(self, kind: str, payload: JSONDict) -> JSONDict:
        # The update carries a copy: later edits to the stored message must not rewrite history.
        update = {"update_id": self._next_update_id, kind: copy.deepcopy(payload)}
        self._next_update_id += 1
        self._updates.append(update)
        self._updates_signal.fire()
        self._touch()
        return update

    def _user_message(
        self,
        chat: _Chat,
        user: EmulatedUser | None,
        fields: JSONDict,
        *,
        file: _StoredFile | None = None,
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
        self, chat: _Chat, user: EmulatedUser, message_id: int, new_text: str
    ) -> JSONDict:
        stored = chat.messages.get(message_id)
        if stored is None or stored.from_bot or stored.deleted or "text" not in stored.data:
            raise AssertionError(f"message {message_id} is not a text message of user {user.id}")
        stored.data["text"] = new_text
        stored.data.pop("entities", None)
        stored.data.update({k: v for k, v in _text_fields(new_text).items() if k != "text"})
        stored.data["edit_date"] = int(time.time())
        stored.raw_text = new_text
        stored.edited = True
        self._record(chat, "edit", stored)
        self._push_update("edited_message", stored.data)
        return copy.deepcopy(stored.data)

    def _callback(
        self,
        chat: _Chat,
        user: EmulatedUser,
        stored: _StoredMessage | None,
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
    ) -> _StoredFile:
        number = next(self._file_counter)
        suffix = ""
        if filename and "." in filename:
            suffix = "." + filename.rsplit(".", 1)[1]
        stored = _StoredFile(
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

    # -- faults and latency ---------------------------------------------------------------------

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
        if kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {kind!r}")
        if kind == "5xx" and not 500 <= status <= 599:
            raise ValueError("a 5xx fault needs a status from 500 to 599")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.append(_Fault(method, kind, times, retry_after, delay, status, chat_id))

    @property
    def last_update_id(self) -> int:
        """The id of the newest update created so far (0 when none)."""
        return self._next_update_id - 1

    def restart_update_ids(self, next_id: int) -> None:
        """Start the update id sequence again at `next_id`, as Telegram does after a week
        without updates ("chosen randomly instead of sequentially"): usually far below the ids
        the bot has seen. Only with nothing pending, as after such a quiet week."""
        if self._updates:
            raise RuntimeError("update ids restart only when no update is pending")
        if next_id < 1:
            raise ValueError("update ids start at 1")
        self._old_sequence_end = max(self._old_sequence_end, self._next_update_id - 1)
        self._next_update_id = next_id
        # Delivery is tracked per sequence: the new ids are fresh even when they are lower.
        self._delivered_up_to = next_id - 1

    def redeliver(self, *update_ids: int) -> None:
        """Queue already delivered updates again, as Telegram does after a crash before the
        bot confirmed them (same update_id); a bot restarting with offset 0 receives them."""
        by_id = {u["update_id"]: u for u in self._delivered}
        missing = [i for i in update_ids if i not in by_id]
        if missing:
            raise KeyError(f"updates {missing} were never delivered (or are too old)")
        queued = {u["update_id"] for u in self._updates}
        merged = list(self._updates) + [
            copy.deepcopy(by_id[i]) for i in update_ids if i not in queued
        ]
        self._updates = collections.deque(sorted(merged, key=lambda u: int(u["update_id"])))
        self._updates_signal.fire()
        self._touch()

    def expire_callback_queries(self) -> None:
        """Forget every unanswered callback query, as Telegram does after its answer window
        (about 15 seconds): answering one of them later fails with 400."""
        self._open_queries.clear()

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()

    def _take_fault(self, method: str, params: JSONDict) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(method, params):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        # Interruptible so that stop() is never held up by a simulated delay.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()

    async def wait_idle(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - a per-call deadline reads better in tests
        *,
        quiet: float = 0.05,
    ) -> None:
        """Wait until every update was fetched and no call is in flight for `quiet` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"emulator not idle after {timeout}s: {self._in_flight} calls in flight, "
                    f"{len(self._updates)} updates unconfirmed"
                )
            if self._in_flight == 0 and self._all_fetched():
                settled_at = self._activity_count
                await self._activity.wait(min(quiet, remaining))
                if settled_at == self._activity_count and self._in_flight == 0:
                    return
            else:
                await self._activity.wait(remaining)

    def _all_fetched(self) -> bool:
        return not self._updates or self._updates[-1]["update_id"] <= self._delivered_up_to

    def _touch(self) -> None:
        self._activity_count += 1
        self._activity.fire()

    # -- HTTP: Bot API --------------------------------------------------------------------------

    async def _read_params(self, request: web.Request) -> JSONDict:
        params: JSONDict = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise _bad("can't parse JSON object") from None
                if not isinstance(body, dict):
                    raise _bad("JSON object expected")
                params.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = _Upload(
                            value.file.read(), value.filename, value.content_type
                        )
                    elif isinstance(value, bytes | bytearray):
                        params[key] = bytes(value).decode("utf-8", "replace")
                    else:
                        params[key] = value
        for key in _JSON_FIELDS.intersection(params):
            value = params[key]
            if isinstance(value, str):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    if key == "reply_markup":
                        raise _bad("can't parse reply keyboard markup JSON object") from None
                    raise _bad(f"can't parse {key} JSON object") from None
        return params

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
                params = await self._read_params(request)
            except ApiError as error:
                self.requests_log.append((method, {}))
                return await self._answer(error.code, error.body())
            self.requests_log.append((method, params))
            if entry is None:
                return await self._answer(404, ApiError(404, "Not Found").body())
            fault = self._take_fault(method, params)
            if fault is not None and fault.kind == "drop":
                return self._drop(request)
            if fault is not None and fault.kind == "429":
                flood = ApiError(
                    429,
                    f"Too Many Requests: retry after {fault.retry_after}",
                    {"retry_after": fault.retry_after},
                )
                return await self._answer(429, flood.body())
            if fault is not None and fault.kind == "5xx":
                body = ApiError(fault.status, HTTPStatus(fault.status).phrase).body()
                return await self._answer(fault.status, body)
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
            return web.json_response(ApiError(404, "Not Found").body(), status=404, dumps=_dumps)
        await self._sleep(self.latency)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    # -- Bot API methods ------------------------------------------------------------------------

    def _method_table(self) -> dict[str, Handler]:
        return {
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

    def _confirm(self, offset: int) -> None:
        if offset > self._next_update_id and offset <= self._old_sequence_end + 1:
            # An offset from before the ids restarted confirms only what the bot was given.
            offset = self._delivered_up_to + 1
        if offset > 0:
            while self._updates and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
        elif offset < 0:
            while len(self._updates) > -offset:
                self._updates.popleft()

    def _deliverable(self, limit: int) -> list[JSONDict]:
        allowed = self._allowed_updates
        if allowed is not None:
            # Telegram never delivers a type the bot opted out of; dropping matches that.
            kept = [u for u in self._updates if _update_kind(u) in allowed]
            if len(kept) != len(self._updates):
                self._updates = collections.deque(kept)
        return list(itertools.islice(self._updates, limit))

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = _opt_int(params, "offset", 0)
        limit = min(max(_opt_int(params, "limit", 100), 1), 100)
        timeout = min(max(_opt_float(params, "timeout", 0.0), 0.0), MAX_LONG_POLL)
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            if not isinstance(allowed, list):
                raise _bad("can't parse allowed_updates JSON object")
            self._allowed_updates = frozenset(map(str, allowed)) if allowed else None
        self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = self._deliverable(limit)
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing.is_set():
                break
            await self._updates_signal.wait(remaining)
        if batch:
            fresh = [u for u in batch if u["update_id"] > self._delivered_up_to]
            self._delivered.extend(copy.deepcopy(u) for u in fresh)
            self._delivered_up_to = max(self._delivered_up_to, batch[-1]["update_id"])
            self._touch()
        return batch

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = _opt_str(params, "url") or ""
        schemes = ("https://",) if self.require_https else ("https://", "http://")
        if url and not url.startswith(schemes):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = _opt_str(params, "secret_token")
        if secret and not _SECRET_TOKEN_RE.fullmatch(secret):
            raise _bad("secret token contains unallowed characters")
        max_connections = _opt_int(params, "max_connections", 40)
        if not 1 <= max_connections <= 100:
            raise _bad("bad webhook: max_connections must be between 1 and 100")
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            if not isinstance(allowed, list):
                raise _bad("can't parse allowed_updates JSON object")
            self._allowed_updates = frozenset(map(str, allowed)) if allowed else None
        self.webhook_url = url or None
        self.webhook_secret = secret or None
        self.webhook_max_connections = max_connections
        self.webhook_last_error = None
        if _truthy(params.get("drop_pending_updates")):
            self._updates.clear()
        # A new address deserves an attempt now, not after the old one's backoff.
        self._webhook_signal.fire()
        if self.webhook_url and (self._webhook_task is None or self._webhook_task.done()):
            self._webhook_task = asyncio.create_task(
                self._deliver_webhooks(), name="emulator-webhook-delivery"
            )
        return True

    async def _delete_webhook(self, params: JSONDict) -> bool:
        self.webhook_url = None
        self.webhook_secret = None
        if _truthy(params.get("drop_pending_updates")):
            self._updates.clear()
        # The delivery loop notices the missing URL and ends; pending updates wait for getUpdates.
        self._webhook_signal.fire()
        self._updates_signal.fire()
        return True

    async def _get_webhook_info(self, _params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_url:
            info["max_connections"] = self.webhook_max_connections
        if self.webhook_last_error is not None:
            info["last_error_date"] = self._webhook_last_error_at
            info["last_error_message"] = self.webhook_last_error
        if self._allowed_updates is not None:
            info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    # -- webhook delivery -----------------------------------------------------------------------

    async def _deliver_webhooks(self) -> None:
        """POST pending updates to the webhook one at a time in update_id order until it is
        deleted; a failed delivery is retried (same update) after a growing, capped pause."""
        # One POST in flight (max_connections is only reported): it keeps update_id order, which
        # tests can then rely on, and PTB answers as soon as an update is queued anyway.
        delay = self.webhook_retry_initial
        async with aiohttp.ClientSession() as session:
            while self.webhook_url and not self._closing.is_set():
                batch = self._deliverable(1)
                if not batch:
                    await self._updates_signal.wait(MAX_LONG_POLL)
                    continue
                update = batch[0]
                if await self._post_update(session, self.webhook_url, update):
                    delay = self.webhook_retry_initial
                    self._webhook_delivered(update)
                    continue
                # Woken early by setWebhook/deleteWebhook, so a fixed endpoint is tried at once.
                await self._webhook_signal.wait(delay)
                delay = min(delay * 2, self.webhook_retry_max)

    async def _post_update(
        self, session: aiohttp.ClientSession, url: str, update: JSONDict
    ) -> bool:
        """One delivery attempt; True when the bot answered 2xx."""
        headers = {"Content-Type": "application/json"}
        if self.webhook_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook_secret
        body = _dumps(update).encode()
        timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
        try:
            async with session.post(url, data=body, headers=headers, timeout=timeout) as answer:
                await answer.read()
                if 200 <= answer.status < 300:
                    return True
                error = f"Wrong response from the webhook: {answer.status} {answer.reason}"
        except (aiohttp.ClientError, OSError, TimeoutError) as failure:
            error = f"Connection failed: {type(failure).__name__} {failure}".strip()
        self.webhook_failures += 1
        self.webhook_last_error = error
        self._webhook_last_error_at = int(time.time())
        log.debug("webhook delivery of update %s failed: %s", update["update_id"], error)
        self._touch()
        return False

    def _webhook_delivered(self, update: JSONDict) -> None:
        update_id = update["update_id"]
        if self._updates and self._updates[0]["update_id"] == update_id:
            self._updates.popleft()
        else:
            # redeliver() or allowed_updates reshaped the queue while the POST was in flight.
            self._updates = collections.deque(
                u for u in self._updates if u["update_id"] != update_id
            )
        if update_id > self._delivered_up_to:
            self._delivered.append(copy.deepcopy(update))
        self._delivered_up_to = max(self._delivered_up_to, update_id)
        self.webhook_deliveries += 1
        self._touch()

    async def _stop_webhook_delivery(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("too many commands")
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand JSON object")
            name = command.get("command")
            description = command.get("description")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name):
                raise _bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise _bad("command description must be non-empty")
        key = (_scope_key(params.get("scope")), _opt_str(params, "language_code") or "")
        self.commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        key = (_scope_key(params.get("scope")), _opt_str(params, "language_code") or "")
        return list(self.commands.get(key, []))

    async def _delete_my_commands(self, params: JSONDict) -> bool:
        key = (_scope_key(params.get("scope")), _opt_str(params, "language_code") or "")
        self.commands.pop(key, None)
        return True

    async def _set_chat_menu_button(self, params: JSONDict) -> bool:
        chat_id = _opt_int(params, "chat_id", 0) or None
        if chat_id is not None and chat_id not in self._chats:
            raise _bad("chat not found")
        button = params.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in (
            "default",
            "commands",
            "web_app",
        ):
            raise _bad("can't parse menu button JSON object")
        self.menu_buttons[chat_id] = button
        return True

    async def _get_chat_menu_button(self, params: JSONDict) -> JSONDict:
        chat_id = _opt_int(params, "chat_id", 0) or None
        return self.menu_buttons.get(chat_id) or self.menu_buttons.get(None) or {"type": "default"}

    def _find_chat(self, params: JSONDict, *, sending: bool = True) -> _Chat:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad("chat_id is empty")
        chat: _Chat | None = None
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
            raise _bad("chat not found")
        if sending and chat.data["type"] == "private":
            user = self._users.get(chat.id)
            if user is not None and user.blocked:
                raise ApiError(403, BLOCKED)
        return chat

    def _reply_to(self, chat: _Chat, params: JSONDict) -> JSONDict | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow = _truthy(reply.get("allow_sending_without_reply"))
        else:
            message_id = params.get("reply_to_message_id")
            allow = _truthy(params.get("allow_sending_without_reply"))
        if message_id in (None, ""):
            return None
        try:
            stored = chat.messages.get(int(message_id))
        except (TypeError, ValueError):
            raise _bad("message to be replied not found") from None
        if stored is None or stored.deleted:
            if allow:
                return None
            raise _bad("message to be replied not found")
        original = dict(stored.data)
        original.pop("reply_to_message", None)
        return original

    def _text(self, params: JSONDict) -> tuple[str, str, list[JSONDict]]:
        raw = _opt_str(params, "text") or ""
        if not raw.strip():
            raise _bad("message text is empty")
        plain, entities = parse_formatted(
            raw, _opt_str(params, "parse_mode"), params.get("entities")
        )
        if not plain.strip():
            raise _bad("message text is empty")
        if len(plain) > MAX_TEXT:
            raise _bad("message is too long")
        return raw, plain, entities

    def _caption(self, params: JSONDict) -> tuple[str, str, list[JSONDict]]:
        raw = _opt_str(params, "caption") or ""
        if not raw:
            return "", "", []
        plain, entities = parse_formatted(
            raw, _opt_str(params, "parse_mode"), params.get("caption_entities")
        )
        if len(plain) > MAX_CAPTION:
            raise _bad("message caption is too long")
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
            parse_mode=_opt_str(params, "parse_mode"),
            markup=markup,
        )
        return stored.data

    async def _send_file(self, params: JSONDict, field_name: str, folder: str) -> JSONDict:
        chat = self._find_chat(params)
        value = params.get(field_name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, _Upload):
            if not value.data:
                raise _bad("file must be non-empty")
            filename = value.filename if field_name == "document" else None
            stored = self._store_file(value.data, filename, value.content_type, folder)
        elif isinstance(value, str) and value in self._files:
            stored = self._files[value]
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            raise _bad("failed to get HTTP URL content")
        elif value in (None, ""):
            raise _bad(f"there is no {field_name} in the request")
        else:
            raise _bad("wrong file identifier/HTTP URL specified")
        raw_caption, caption, caption_entities = self._caption(params)
        markup = parse_reply_markup(params.get("reply_markup"))
        fields: JSONDict = {}
        if field_name == "document":
            fields["document"] = stored.document()
        else:
            width, height = _png_size(stored.data)
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
            parse_mode=_opt_str(params, "parse_mode"),
            markup=markup,
            file=stored,
        ).data

    async def _send_document(self, params: JSONDict) -> JSONDict:
        return await self._send_file(params, "document", "documents")

    async def _send_photo(self, params: JSONDict) -> JSONDict:
        return await self._send_file(params, "photo", "photos")

    def _editable(self, params: JSONDict) -> tuple[_Chat, _StoredMessage]:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        chat = self._find_chat(params)
        message_id = _opt_int(params, "message_id", 0)
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted:
            raise _bad("message to edit not found")
        if not stored.from_bot:
            raise _bad("message can't be edited")
        return chat, stored

    def _apply_edit(
        self, chat: _Chat, stored: _StoredMessage, changes: JSONDict, markup: _Markup
    ) -> JSONDict:
        after = {**changes, "reply_markup": markup.inline}
        # A missing field and an empty one are the same content to Telegram.
        if all(_blank_to_none(stored.data.get(k)) == _blank_to_none(v) for k, v in after.items()):
            raise _bad(NOT_MODIFIED.removeprefix("Bad Request: "))
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
            raise _bad("there is no text in the message to edit")
        raw, plain, entities = self._text(params)
        # Like Telegram, an edit without reply_markup removes the inline keyboard.
        markup = parse_reply_markup(params.get("reply_markup"))
        result = self._apply_edit(chat, stored, {"text": plain, "entities": entities}, markup)
        stored.raw_text = raw
        stored.parse_mode = _opt_str(params, "parse_mode")
        return result

    async def _edit_message_caption(self, params: JSONDict) -> JSONDict:
        chat, stored = self._editable(params)
        if "text" in stored.data:
            raise _bad("there is no caption in the message to edit")
        raw, plain, entities = self._caption(params)
        markup = parse_reply_markup(params.get("reply_markup"))
        changes: JSONDict = {"caption": plain or None, "caption_entities": entities}
        result = self._apply_edit(chat, stored, changes, markup)
        stored.raw_text = raw
        stored.parse_mode = _opt_str(params, "parse_mode")
        return result

    async def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        chat, stored = self._editable(params)
        markup = parse_reply_markup(params.get("reply_markup"))
        return self._apply_edit(chat, stored, {}, markup)

    async def _delete_message(self, params: JSONDict) -> bool:
        chat = self._find_chat(params, sending=False)
        stored = chat.messages.get(_opt_int(params, "message_id", 0))
        if stored is None or stored.deleted:
            raise _bad("message to delete not found")
        stored.deleted = True
        self._record(chat, "delete", stored)
        return True

    async def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = _opt_str(params, "callback_query_id") or ""
        if self._open_queries.pop(query_id, None) is None:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = _opt_str(params, "text")
        if text is not None and len(text) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        self.answered_callbacks[query_id] = (text, _truthy(params.get("show_alert")))
        return True

    async def _send_chat_action(self, params: JSONDict) -> bool:
        self._find_chat(params)
        if _opt_str(params, "action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    async def _get_file(self, params: JSONDict) -> JSONDict:
        stored = self._files.get(_opt_str(params, "file_id") or "")
        if stored is None:
            raise _bad("invalid file_id")
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

    # -- HTTP: control API ----------------------------------------------------------------------

    def _add_control_routes(self, app: web.Application) -> None:
        prefix = "/_emulator"
        users = f"{prefix}/users/{{user_id:-?[0-9]+}}"
        app.router.add_post(f"{users}/send", self._ctl_send)
        app.router.add_post(f"{users}/press", self._ctl_press)
        app.router.add_post(f"{users}/contact", self._ctl_contact)
        app.router.add_post(f"{users}/photo", self._ctl_photo)
        app.router.add_post(f"{users}/sticker", self._ctl_sticker)
        app.router.add_post(f"{users}/voice", self._ctl_voice)
        app.router.add_post(f"{users}/location", self._ctl_location)
        app.router.add_post(f"{users}/edit", self._ctl_edit)
        app.router.add_post(f"{users}/block", self._ctl_block)
        app.router.add_post(f"{users}/unblock", self._ctl_unblock)
        app.router.add_get(f"{prefix}/chats/{{chat_id:-?[0-9]+}}/messages", self._ctl_messages)
        app.router.add_post(f"{prefix}/faults", self._ctl_faults)
        app.router.add_delete(f"{prefix}/faults", self._ctl_clear_faults)
        app.router.add_post(f"{prefix}/latency", self._ctl_latency)
        app.router.add_get(f"{prefix}/stats", self._ctl_stats)

    async def _ctl_body(self, request: web.Request) -> JSONDict:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="body must be JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return body

    async def _ctl_user(self, request: web.Request) -> tuple[EmulatedUser, JSONDict]:
        body = await self._ctl_body(request)
        user_id = int(request.match_info["user_id"])
        user = self._users.get(user_id)
        if user is None:
            user = self.user(
                user_id,
                first_name=str(body.get("first_name") or "Budi"),
                username=body.get("username"),
                language_code=body.get("language_code", "id"),
            )
        else:
            if body.get("first_name"):
                user.first_name = str(body["first_name"])
            if "language_code" in body:
                user.language_code = body["language_code"]
        return user, body

    async def _ctl_send(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise web.HTTPBadRequest(text='"text" is required')
        return _json({"message": await user.send(text)})

    async def _ctl_press(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        message_id = body.get("message_id")
        try:
            if "data" in body:
                query_id = await user.press_data(str(body["data"]), message_id)
            else:
                label = body.get("label")
                if not isinstance(label, str):
                    raise web.HTTPBadRequest(text='"label" or "data" is required')
                pattern: Pattern = re.compile(label) if body.get("regex") else label
                query_id = await user.press(pattern, message_id=message_id)
        except AssertionError as error:
            return _json({"error": str(error)}, status=404)
        return _json({"callback_query_id": query_id})

    async def _ctl_contact(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        phone = body.get("phone_number")
        if not isinstance(phone, str):
            raise web.HTTPBadRequest(text='"phone_number" is required')
        message = await user.share_contact(
            phone, user_id=body.get("user_id"), first_name=body.get("contact_first_name")
        )
        return _json({"message": message})

    async def _ctl_photo(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        return _json({"message": await user.send_photo()})

    async def _ctl_sticker(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        return _json({"message": await user.send_sticker()})

    async def _ctl_voice(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        return _json({"message": await user.send_voice()})

    async def _ctl_location(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        message = await user.send_location(float(body["latitude"]), float(body["longitude"]))
        return _json({"message": message})

    async def _ctl_edit(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        try:
            message = await user.edit(int(body["message_id"]), str(body["text"]))
        except AssertionError as error:
            return _json({"error": str(error)}, status=404)
        return _json({"message": message})

    async def _ctl_block(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        await user.block()
        return _json({"blocked": True})

    async def _ctl_unblock(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        await user.unblock()
        return _json({"blocked": False})

    async def _ctl_messages(self, request: web.Request) -> web.Response:
        chat = self._chats.get(int(request.match_info["chat_id"]))
        if chat is None:
            return _json({"error": "chat not found"}, status=404)
        try:
            after = int(request.query.get("after", "-1"))
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_LONG_POLL)
        except ValueError:
            raise web.HTTPBadRequest(text="after and wait must be numbers") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while len(chat.events) <= after + 1 and not self._closing.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await chat.signal.wait(remaining)
        events = chat.events[max(after + 1, 0) :]
        return _json({"events": [e.to_json() for e in events], "last_index": len(chat.events) - 1})

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        try:
            self.inject_fault(
                body.get("method"),
                body["kind"],
                times=int(body.get("times", 1)),
                retry_after=int(body.get("retry_after", 1)),
                delay=float(body.get("delay", 2.0)),
                status=int(body.get("status", 502)),
            )
        except (KeyError, ValueError) as error:
            raise web.HTTPBadRequest(text=f"bad fault: {error}") from None
        return _json({"faults": len(self._faults)})

    async def _ctl_clear_faults(self, _request: web.Request) -> web.Response:
        self.clear_faults()
        return _json({"faults": 0})

    async def _ctl_latency(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        try:
            self.latency = max(float(body["seconds"]), 0.0)
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text='"seconds" must be a number') from None
        return _json({"latency": self.latency})

    async def _ctl_stats(self, _request: web.Request) -> web.Response:
        return _json(
            {
                "calls": dict(self.calls),
                "pending_updates": len(self._updates),
                "next_update_id": self._next_update_id,
                "in_flight": self._in_flight,
                "latency": self.latency,
                "faults": len(self._faults),
                "chats": len(self._chats),
                "last_token_seen": self.last_token is not None,
                "webhook": self.webhook_url is not None,
                "webhook_deliveries": self.webhook_deliveries,
                "webhook_failures": self.webhook_failures,
            }
        )


def _blank_to_none(value: Any) -> Any:
    return None if value in (None, "", [], {}) else value


def _update_kind(update: JSONDict) -> str:
    return next(k for k in update if k != "update_id")


def _scope_key(scope: Any) -> str:
    if not scope:
        scope = {"type": "default"}
    return json.dumps(scope, sort_keys=True)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json(body: JSONDict, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


async def serve(port: int, host: str = "127.0.0.1", *, latency: float = 0.0) -> None:
    """Run an emulator on host:port until cancelled."""
    emulator = BotApiEmulator(latency=latency)
    await emulator.start(host, port)
    log.info("Bot API emulator listening on %s:%d", host, emulator.port)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()
