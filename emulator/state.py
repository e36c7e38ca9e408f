"""The emulator's state in one place: chats and their people, the update queue, files, webhook
settings, injected faults, and the activity signal `wait_idle` waits on."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools

from aiohttp import web

from emulator.api import JSONDict
from emulator.caps import CapLimits, SendCaps
from emulator.faults import FaultPlan
from emulator.records import Chat, Signal, StoredFile
from emulator.users import ChatView, EmulatedUser


class EmulatorState:
    """Every piece of the emulator's state, set up in one place; the mixins that make up
    `BotApiEmulator` each act on their part of it."""

    def __init__(
        self,
        *,
        bot_id: int = 7000000001,
        bot_username: str = "rentan_test_bot",
        bot_name: str = "Rentan Bot",
        latency: float = 0.0,
        require_https: bool = False,
        enforce_caps: bool = False,
        cap_limits: CapLimits | None = None,
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
        self._webhook_signal = Signal()
        self.commands: dict[tuple[str, str], list[JSONDict]] = {}
        self.menu_buttons: dict[int | None, JSONDict] = {}
        self._chats: dict[int, Chat] = {}
        # Where each chat's message ids continue (resume_numbering), for chats not yet created.
        self._resumed_message_ids: dict[int, int] = {}
        self._users: dict[int, EmulatedUser] = {}
        self._views: dict[int, ChatView] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
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
        self._updates_signal = Signal()
        self._activity = Signal()
        self._activity_count = 0
        self._open_queries: dict[str, JSONDict] = {}
        self._query_counter = itertools.count(4_200_000_000_000_000_001)
        self._faults = FaultPlan()
        # Telegram's send caps (30/s per bot, 1/s per chat, 20/min per group): off unless asked.
        self.caps = SendCaps(limits=cap_limits or CapLimits(), enabled=enforce_caps)
        self._in_flight = 0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def bot_user(self) -> JSONDict:
        """The bot's Bot API User object."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.bot_username,
        }

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        # Interruptible so that stop() is never held up by a simulated delay.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()

    def _touch(self) -> None:
        """Note activity: wakes `wait_idle`, which waits for a quiet moment."""
        self._activity_count += 1
        self._activity.fire()
