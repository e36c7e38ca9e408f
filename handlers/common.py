"""Helpers every handler module shares: narrow accessors and the per-update language."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import html
import logging
import time
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from telegram import CallbackQuery, Chat, Message, Update, User
from telegram.error import BadRequest, TelegramError
from telegram.ext import ApplicationHandlerStop

from handlers.context import Context, Services
from handlers.flood import FloodGate, Verdict
from handlers.language import Lookup, translator_for
from storage.updates import REDELIVERY_WINDOW

log = logging.getLogger(__name__)


def message_of(update: Update) -> Message:
    """The update's message; raises if the handler was wired to an update without one."""
    message = update.effective_message
    if message is None:
        raise ValueError("update carries no message")
    return message


def user_of(update: Update) -> User:
    """The update's sender; raises if there is none (channel posts have none)."""
    user = update.effective_user
    if user is None:
        raise ValueError("update carries no user")
    return user


def chat_of(update: Update) -> Chat:
    """The update's chat; raises if there is none."""
    chat = update.effective_chat
    if chat is None:
        raise ValueError("update carries no chat")
    return chat


async def answer_query(query: CallbackQuery, text: str | None = None) -> None:
    """Answer a button press. A press handled after Telegram's answer window (the bot was
    down, or the update came again after a crash) cannot be answered any more, but its work
    must still be done: that refusal is logged, not raised."""
    try:
        await query.answer(text)
    except BadRequest as error:
        if "query is too old" not in error.message.lower():
            raise
        log.info("callback query answered too late: %s", error.message)


def escape(text: str) -> str:
    """Escape user-provided text for messages sent with parse_mode HTML."""
    return html.escape(text, quote=False)


async def set_language(update: object, context: Context) -> None:
    """Pick this update's language: stored preference, else the client's, else the default."""
    if not isinstance(update, Update) or update.effective_user is None:
        return
    user = update.effective_user
    context.translator = await translator_for(context.services, user.id, user.language_code)


async def refuse_non_private(update: Update, context: Context) -> None:
    """Outside a private chat: say so once (never in channels) and stop; nothing is stored."""
    chat = update.effective_chat
    if chat is not None and chat.type in (Chat.GROUP, Chat.SUPERGROUP):
        message = update.effective_message
        if message is not None and message.text is not None and message.text.startswith("/"):
            await message.reply_text(
                context._("This bot only works in a private chat. Open a chat with me directly.")
            )
    raise ApplicationHandlerStop


class DuplicateGuard:
    """Drops updates that were handled before and delivered again.

    Telegram redelivers what a bot did not confirm (polling, after a crash) or did not answer
    with 2xx (webhooks), with the same update_id, within 24 hours. Ids are compared for
    equality only: after a week without updates Telegram restarts the sequence at a random,
    often much lower id, so "not newer than the last one" says nothing. Ids seen by this
    process are remembered for the redelivery window (bounded in number).

    A `shared` guard (webhooks, where several processes may share the updates) looks every id
    it has not seen up in the log of handled updates, which every write records. A polling
    guard is the token's only consumer (Telegram allows one getUpdates at a time), so what
    other processes handled is what this one's predecessors handled: `preload` reads the
    newest handled ids once at start-up, which is where a crash's unconfirmed updates come
    from, and no update costs a database read afterwards.
    """

    # Ids read at start-up: far more than the unconfirmed updates a crash can leave (one
    # getUpdates batch of at most 100 per restart).
    PRELOAD = 10_000

    def __init__(self, window: int = 10_000, *, shared: bool = True) -> None:
        self._seen: set[int] = set()
        self._order: collections.deque[tuple[datetime, int]] = collections.deque()
        self._window = window
        self.shared = shared

    def _remember(self, update_id: int, now: datetime) -> bool:
        """Record an id; False when it was already seen within the redelivery window."""
        order = self._order
        while order and (len(order) >= self._window or order[0][0] < now - REDELIVERY_WINDOW):
            self._seen.discard(order.popleft()[1])
        if update_id in self._seen:
            return False
        self._seen.add(update_id)
        order.append((now, update_id))
        return True

    async def preload(self, services: Services) -> None:
        """Remember the newest ids handled within the redelivery window (polling only)."""
        if self.shared:
            return
        now = services.clock()
        handled = await services.updates.recent(
            since=now - REDELIVERY_WINDOW, limit=min(self.PRELOAD, self._window)
        )
        for update_id in reversed(handled):
            self._remember(update_id, now)

    async def __call__(self, update: object, context: Context) -> None:
        """Stop processing when the update was already handled."""
        if not isinstance(update, Update):
            return
        services = context.services
        if not self._remember(update.update_id, services.clock()):
            raise ApplicationHandlerStop
        if self.shared and await services.updates.was_processed(update_id=update.update_id):
            raise ApplicationHandlerStop


class FloodGuard:
    """Drops an account's updates beyond FLOOD_MAX_UPDATES per FLOOD_WINDOW_SECONDS.

    Runs before every other group and touches no database: a flooding account costs a dict
    lookup per update, while other chats are processed as usual (the per-chat processor keeps
    the flood in its own lane). The first dropped update of a window gets one short message;
    staff configured in ADMIN_IDS/REVIEWER_IDS are exempt.
    """

    def __init__(self, *, limit: int, window: float, exempt: frozenset[int]) -> None:
        self._gate = FloodGate(limit=limit, window=window)
        self._exempt = exempt

    async def __call__(self, update: object, context: Context) -> None:
        """Let the update through, or stop it (after one slow-down message per window)."""
        if not isinstance(update, Update) or update.effective_user is None:
            return
        user = update.effective_user
        if user.id in self._exempt:
            return
        verdict = self._gate.check(user.id, time.monotonic())
        if verdict is Verdict.ADMIT:
            return
        chat = update.effective_chat
        if verdict is Verdict.DROP_AND_WARN and chat is not None and chat.type == Chat.PRIVATE:
            log.info("throttling user %s: too many updates", user.id)
            # The language pre-handler has not run: use what is cached, never the database.
            translator = await translator_for(
                context.services, user.id, user.language_code, lookup=Lookup.MEMORY
            )
            try:
                await context.bot.send_message(
                    chat.id,
                    translator._(
                        "Slow down a little, please: you are sending messages very fast. "
                        "Wait a moment, then send your answer again."
                    ),
                )
            except TelegramError as error:
                log.warning("could not send the slow-down message: %s", error)
        raise ApplicationHandlerStop


def query_of(update: Update) -> CallbackQuery:
    query = update.callback_query
    if query is None:
        raise ValueError("update carries no callback query")
    return query


async def drop_buttons(query: CallbackQuery) -> None:
    # A double tap finds the buttons already gone: nothing to remove.
    with contextlib.suppress(BadRequest):
        await query.edit_message_reply_markup(reply_markup=None)


async def alongside_answer(query: CallbackQuery, work: Coroutine[Any, Any, None]) -> None:
    """Answer a press while doing its work: the worker waits one Telegram round trip less.

    Both always finish; a failure of either is raised afterwards, for the error handler.
    """
    results = await asyncio.gather(answer_query(query), work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
