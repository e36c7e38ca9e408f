"""What every part of the emulator shares: the JSON object type, the Bot API's error answer and
the size limits Telegram enforces."""

from __future__ import annotations

import json
from typing import Any, Final, TypeAlias

JSONDict: TypeAlias = dict[str, Any]

MAX_TEXT: Final = 4096
MAX_CAPTION: Final = 1024
MAX_CALLBACK_DATA_BYTES: Final = 64
MAX_UPLOAD_BYTES: Final = 50 * 1024 * 1024
MAX_LONG_POLL: Final = 50.0


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


def bad(description: str) -> ApiError:
    """A 400 "Bad Request: ..." error, the most common refusal."""
    return ApiError(400, f"Bad Request: {description}")


def dumps(value: Any) -> str:
    """JSON as Telegram writes it: UTF-8 text, not \\u escapes."""
    return json.dumps(value, ensure_ascii=False)
