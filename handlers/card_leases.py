"""Which reviewer has which application card open, so two reviewers are not shown the same one.

A hint, not a lock: the decision itself is guarded in the database (a second decision on the
same application is refused and says who decided). Without it, every reviewer asking for the
next card gets the head of the queue and most of their decisions collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CardLeases:
    """Applications recently shown to a reviewer, each for `seconds` or until released."""

    def __init__(self, seconds: float = 120.0, clock: Callable[[], float] = time.monotonic):
        self._seconds = seconds
        self._clock = clock
        self._holders: dict[int, tuple[int, float]] = {}

    def held_by_others(self, reviewer_id: int) -> list[int]:
        """Applications another reviewer has open right now (expired leases are dropped)."""
        now = self._clock()
        for application_id, (_holder, until) in list(self._holders.items()):
            if until <= now:
                del self._holders[application_id]
        return [a for a, (holder, _until) in self._holders.items() if holder != reviewer_id]

    def take(self, application_id: int, reviewer_id: int) -> None:
        """Mark a card as open by this reviewer (their previous card is released)."""
        self.release_all_of(reviewer_id)
        self._holders[application_id] = (reviewer_id, self._clock() + self._seconds)

    def release_all_of(self, reviewer_id: int) -> None:
        """Forget the cards this reviewer had open."""
        for application_id, (holder, _until) in list(self._holders.items()):
            if holder == reviewer_id:
                del self._holders[application_id]
