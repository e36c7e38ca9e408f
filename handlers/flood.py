"""Per-account flood throttling: a fixed window of updates per account, kept in memory."""

from __future__ import annotations

import math
from enum import Enum


def per_process_limit(limit: int, processes: int) -> int:
    """The updates one of `processes` webhook processes admits per account and window.

    Each process counts in its own memory what it sees, and a round-robin proxy hands every
    process about 1/N of an account's updates, so each admits its share of FLOOD_MAX_UPDATES
    and the account as a whole about the limit. Not a counter in the database: that is one
    upsert before every update, on the hot path, for a guard against floods (a flood is
    exactly when writes hurt most; 0.6 ms per insert measured on PostgreSQL, more than the
    0.4 ms of CPU a whole echo update costs), while the share costs nothing and errs by at most
    N - 1 updates per window. Rounded up, so no process admits less than one update.
    """
    return max(1, math.ceil(limit / processes))


class Verdict(Enum):
    """What to do with one update."""

    ADMIT = "admit"
    # The first update over the limit in a window: drop it and say once to slow down.
    DROP_AND_WARN = "drop_and_warn"
    DROP = "drop"


class FloodGate:
    """Admits at most `limit` updates per account per `window` seconds.

    Pure and in-process (no database): a flooding account costs a dict lookup per update.
    One bot process per token (polling) sees every update, so memory is the right place;
    entries of accounts whose window ended are pruned when the table grows.
    """

    __slots__ = ("_counts", "_limit", "_prune_at", "_window")

    def __init__(self, *, limit: int, window: float, prune_at: int = 10_000) -> None:
        self._limit = limit
        self._window = window
        self._prune_at = prune_at
        # account -> [window start, updates in the window, warned in this window]
        self._counts: dict[int, list[float]] = {}

    def check(self, account: int, now: float) -> Verdict:
        """Count one update of `account` at time `now` (monotonic seconds)."""
        entry = self._counts.get(account)
        if entry is None or now - entry[0] >= self._window:
            if entry is None and len(self._counts) >= self._prune_at:
                self._prune(now)
            self._counts[account] = [now, 1.0, 0.0]
            return Verdict.ADMIT
        entry[1] += 1
        if entry[1] <= self._limit:
            return Verdict.ADMIT
        if entry[2]:
            return Verdict.DROP
        entry[2] = 1.0
        return Verdict.DROP_AND_WARN

    def _prune(self, now: float) -> None:
        stale = [key for key, entry in self._counts.items() if now - entry[0] >= self._window]
        for key in stale:
            del self._counts[key]

    def __len__(self) -> int:
        return len(self._counts)
