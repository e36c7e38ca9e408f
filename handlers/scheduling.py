"""Repeating jobs that run once across processes: every process schedules them, the first to
claim a tick runs it (storage.jobs), the others skip it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from functools import wraps
from typing import Any

from handlers.context import Context

log = logging.getLogger(__name__)

JobCallback = Callable[[Context], Coroutine[Any, Any, None]]


def once_across_processes(job: JobCallback, *, name: str, interval: float) -> JobCallback:
    """`job`, run only by the process that claims this tick.

    The claim lasts one interval: the claiming process keeps the job (it may claim again),
    the others skip it, and when that process dies its claim runs out and the next tick of
    another process runs the job. What the job sends is claimed row by row as well, so a
    run outlasting its interval (another process then starts one too) sends nothing twice.
    """
    ttl = timedelta(seconds=interval)

    @wraps(job)
    async def run(context: Context) -> None:
        services = context.services
        if not await services.jobs.claim(name=name, now=services.clock(), ttl=ttl):
            log.debug("job %s is run by another process this time", name)
            return
        await job(context)

    return run
