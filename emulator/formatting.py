"""Telegram's text formatting, parsed as strictly as Telegram does: HTML, MarkdownV2 and legacy
Markdown to plain text plus entities, with offsets in UTF-16 code units."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from emulator.api import ApiError, JSONDict, bad


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Bot API entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _entity_error(detail: str) -> ApiError:
    return bad(f"can't parse entities: {detail}")


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
            raise bad("can't parse entities JSON object")
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
    raise bad(f"unsupported parse_mode {parse_mode!r}")
