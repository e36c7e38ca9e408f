"""The bot's sends stay within Telegram's caps when many workers write at once (reference test).

Telegram answers 429 past about 30 messages a second overall and about one a second in one
chat. Production (`build_application`'s default) gives its SendLimiter the settings' rate
(`TELEGRAM_MAX_MESSAGES_PER_S`, 30): messages go evenly spaced, so any window of `w` seconds
holds at most 30 + 30 * w (the bound PTB's leaky-bucket AIORateLimiter kept before), and one
chat gets at most one a second.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

from bot.app import build_application
from config.settings import Settings
from emulator import BotApiEmulator
from testkit.harness import Harness

WORKERS = 100
# Send times are taken when a request reaches the emulator, not when the limiter lets it go:
# the trip in between varies, which can bunch arrivals up by this much.
JITTER = 0.25


def _production_rate() -> float:
    """Messages a second that production's limiter allows (build_application's default)."""
    assert inspect.signature(build_application).parameters["rate_limit"].default == "settings"
    return float(Settings.model_fields["telegram_max_messages_per_s"].default)


def _most_in_a_window(times: list[float], width: float) -> int:
    """The largest number of sends within any window of `width` seconds."""
    ordered = sorted(times)
    most = start = 0
    for end, at in enumerate(ordered):
        while at - ordered[start] > width:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_a_burst_of_workers_stays_within_telegrams_send_caps(
    emulator: BotApiEmulator, tmp_path: Path
) -> None:
    """100 workers send /start at the same moment: the answers go out at the limiter's pace
    (its burst, then 30 a second), and no chat gets more than one message a second."""
    rate = _production_rate()
    harness = Harness(emulator, tmp_path)
    harness.rate_limit = rate
    await harness.start()
    try:
        users = [harness.user(960_000 + index) for index in range(WORKERS)]
        await asyncio.gather(*(user.send("/start") for user in users))
        for user in users:
            await user.expect(r"Selamat datang", timeout=15)
        await emulator.wait_idle(timeout=10)
    finally:
        await harness.stop()
    per_chat = {
        user.id: [e.at for e in user.transcript() if e.from_bot and e.kind == "message"]
        for user in users
    }
    sent = [at for times in per_chat.values() for at in times]

    assert len(sent) >= WORKERS
    # Overall: the bucket's promise, for every span of the burst.
    ordered = sorted(sent)
    for first in range(len(ordered)):
        for last in range(first, len(ordered)):
            span = ordered[last] - ordered[first]
            assert last - first + 1 <= rate + rate * (span + JITTER)
    assert _most_in_a_window(sent, 1.0) <= 2 * rate + rate * JITTER
    # Per chat: one answer to one update.
    assert max(_most_in_a_window(times, 1.0) for times in per_chat.values()) == 1
