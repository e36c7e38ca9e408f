"""Decoding Bot API requests as PTB sends them: form, multipart (uploads) or JSON bodies with
JSON-in-string fields, and the typed reading of optional fields."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from emulator.api import JSONDict, bad

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


@dataclass
class Upload:
    """A file field of a multipart body."""

    data: bytes
    filename: str | None
    content_type: str | None

    def __repr__(self) -> str:
        return f"<upload {self.filename!r} {len(self.data)} bytes>"


def truthy(value: Any) -> bool:
    """A Bot API boolean, sent as JSON or as form text."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def opt_int(params: JSONDict, name: str, default: int) -> int:
    """An optional Integer field; a malformed one is a 400."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad(f'field "{name}" must be of type Integer') from None


def opt_float(params: JSONDict, name: str, default: float) -> float:
    """An optional Number field; a malformed one is a 400."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise bad(f'field "{name}" must be of type Number') from None


def opt_str(params: JSONDict, name: str) -> str | None:
    """An optional String field; an uploaded file there is a 400."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, Upload):
        raise bad(f'field "{name}" must be of type String')
    return str(value)


async def read_params(request: web.Request) -> JSONDict:
    """A Bot API call's parameters: query string plus form, multipart or JSON body."""
    params: JSONDict = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad("JSON object expected")
            params.update(body)
        else:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    params[key] = Upload(value.file.read(), value.filename, value.content_type)
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
                    raise bad("can't parse reply keyboard markup JSON object") from None
                raise bad(f"can't parse {key} JSON object") from None
    return params
