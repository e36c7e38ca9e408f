"""Per-chat ordered concurrency: chats never wait for each other, one chat never reorders."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from telegram import Chat, Message, Update, User

from bot.processor import PerChatUpdateProcessor


def _update(update_id: int, chat_id: int) -> Update:
    user = User(id=chat_id, first_name="Uji", is_bot=False)
    chat = Chat(id=chat_id, type=Chat.PRIVATE)
    message = Message(
        message_id=update_id, date=datetime.now(UTC), chat=chat, from_user=user, text="x"
    )
    return Update(update_id=update_id, message=message)


async def test_updates_of_one_chat_are_processed_in_arrival_order() -> None:
    """A later update of the same chat waits for the earlier one, even if it would be faster."""
    processor = PerChatUpdateProcessor(limit=8)
    finished: list[int] = []

    async def handle(update_id: int, delay: float) -> None:
        await asyncio.sleep(delay)
        finished.append(update_id)

    tasks = [
        asyncio.create_task(processor.process_update(_update(i, 42), handle(i, 0.03 - i * 0.01)))
        for i in range(3)
    ]
    await asyncio.gather(*tasks)
    assert finished == [0, 1, 2]


async def test_different_chats_run_concurrently() -> None:
    """Ten chats with a slow handler each finish in about one handler's time, not ten."""
    processor = PerChatUpdateProcessor(limit=32)
    running = 0
    peak = 0

    async def handle() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await asyncio.gather(
        *(processor.process_update(_update(i, 1000 + i), handle()) for i in range(10))
    )
    assert peak == 10


async def test_concurrency_is_bounded_by_the_limit() -> None:
    """No more than `limit` updates run at once, however many chats are waiting."""
    processor = PerChatUpdateProcessor(limit=4)
    running = 0
    peak = 0

    async def handle() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    await asyncio.gather(
        *(processor.process_update(_update(i, 2000 + i), handle()) for i in range(20))
    )
    assert peak == 4


async def test_a_busy_chat_does_not_block_other_chats() -> None:
    """Many queued updates from one chat leave slots for everybody else."""
    processor = PerChatUpdateProcessor(limit=2)
    order: list[str] = []

    async def handle(label: str, delay: float) -> None:
        await asyncio.sleep(delay)
        order.append(label)

    busy = [processor.process_update(_update(i, 7), handle(f"busy{i}", 0.02)) for i in range(5)]
    other = processor.process_update(_update(99, 8), handle("other", 0.0))
    await asyncio.gather(*busy, other)
    assert order.index("other") <= 1


async def test_idle_chats_are_forgotten() -> None:
    """Lanes are dropped when a chat has nothing in flight, so memory stays flat."""
    processor = PerChatUpdateProcessor(limit=4)

    async def handle() -> None:
        await asyncio.sleep(0)

    await asyncio.gather(
        *(processor.process_update(_update(i, 3000 + i), handle()) for i in range(50))
    )
    assert processor.waiting_chats == 0
