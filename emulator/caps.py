"""Telegram's send caps, enforced when switched on: messages into chats per bot, per private
chat and per group, each over a sliding window; a call over a cap is answered 429 with
`parameters.retry_after` (whole seconds), as the Bot API does, and counted.

Strict on purpose: real Telegram tolerates short bursts now and then, but a bot that relies on
that meets 429s on a busy morning. Here a window is exactly its length and every accepted
message counts, whatever the method answers afterwards (a 400 still used its turn)."""

from __future__ import annotations

import collections
import math
import time
from dataclasses import dataclass, field

from emulator.api import ApiError, JSONDict

# Methods that put or change a message in a chat (answerCallbackQuery, sendChatAction and
# deleteMessage do not count).
COUNTED_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendSticker",
        "sendLocation",
        "sendContact",
        "sendMediaGroup",
        "copyMessage",
        "forwardMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "editMessageMedia",
    }
)


@dataclass(frozen=True)
class CapLimits:
    """The caps: messages per window (seconds), per bot, per private chat, per group."""

    per_bot: int = 30
    per_bot_window: float = 1.0
    per_chat: int = 1
    per_chat_window: float = 1.0
    per_group: int = 20
    per_group_window: float = 60.0


@dataclass(frozen=True)
class Refusal:
    """One 429, for finding its cause: when, which cap, which chat, and how far the refused call
    came after the previous message counted in that chat (None: the chat's first) and the
    oldest one in the bot's window."""

    at: float
    cap: str
    chat_id: str | None
    since_chat: float | None
    bot_window: int


@dataclass
class SendCaps:
    """The send times of the recent windows and the 429s given; off until `enabled`."""

    limits: CapLimits = field(default_factory=CapLimits)
    enabled: bool = False
    refused: int = 0
    accepted: int = 0
    # The 429s by the cap that gave them: "bot", "chat" or "group".
    refused_by: collections.Counter[str] = field(default_factory=collections.Counter)
    refusals: list[Refusal] = field(default_factory=list)
    _bot: collections.deque[float] = field(default_factory=collections.deque)
    _chats: dict[str, collections.deque[float]] = field(default_factory=dict)

    def admit(self, method: str, params: JSONDict, now: float | None = None) -> ApiError | None:
        """None when this call may go (it is counted), else the 429 it gets."""
        if not self.enabled or method not in COUNTED_METHODS:
            return None
        now = time.time() if now is None else now
        limits = self.limits
        waits = [("bot", _wait(self._bot, limits.per_bot, limits.per_bot_window, now))]
        chat_id = params.get("chat_id")
        chat_times: collections.deque[float] | None = None
        if chat_id is not None:
            key = str(chat_id)
            chat_times = self._chats.setdefault(key, collections.deque())
            # Negative ids are groups and channels (the emulator's channels count as groups).
            if key.startswith("-"):
                group = _wait(chat_times, limits.per_group, limits.per_group_window, now)
                waits.append(("group", group))
            else:
                waits.append(
                    ("chat", _wait(chat_times, limits.per_chat, limits.per_chat_window, now))
                )
        cap, wait = max(waits, key=lambda pair: pair[1])
        if wait > 0:
            self.refused += 1
            self.refused_by[cap] += 1
            since = now - chat_times[-1] if chat_times else None
            chat = None if chat_id is None else str(chat_id)
            self.refusals.append(Refusal(now, cap, chat, since, len(self._bot)))
            retry_after = max(1, math.ceil(wait))
            return ApiError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        self.accepted += 1
        self._bot.append(now)
        if chat_times is not None:
            chat_times.append(now)
        return None

    def stats(self) -> JSONDict:
        """What the control API reports."""
        return {
            "enabled": self.enabled,
            "refused": self.refused,
            "accepted": self.accepted,
            "refused_by": dict(self.refused_by),
        }

    def reset(self) -> None:
        """Forget the windows and the counts."""
        self.refused = self.accepted = 0
        self.refused_by.clear()
        self.refusals.clear()
        self._bot.clear()
        self._chats.clear()


def _wait(times: collections.deque[float], cap: int, window: float, now: float) -> float:
    """Seconds until one more message fits in the window ending now (0: it fits)."""
    while times and times[0] <= now - window:
        times.popleft()
    if len(times) < cap:
        return 0.0
    return times[len(times) - cap] + window - now
