"""Fault injection: the plan of failures the next matching Bot API calls meet (a 429 with
retry_after, a 5xx, a slow answer, or a dropped connection)."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal, TypeAlias, get_args

from emulator.api import ApiError, JSONDict

FaultKind: TypeAlias = Literal["429", "5xx", "slow", "drop"]


@dataclass
class Fault:
    """One injected failure and how many more calls it applies to."""

    method: str | None
    kind: FaultKind
    remaining: int
    retry_after: int
    delay: float
    status: int
    chat_id: int | None = None

    def matches(self, method: str, params: JSONDict) -> bool:
        """Whether a call of `method` with `params` meets this fault."""
        if self.chat_id is not None and str(params.get("chat_id")) != str(self.chat_id):
            return False
        if self.method is None:
            return method.lower() != "getupdates"
        return self.method.lower() == method.lower()

    def error(self) -> ApiError | None:
        """The error answer of a 429 or 5xx fault; None for a slow answer or a dropped one."""
        if self.kind == "429":
            return ApiError(
                429,
                f"Too Many Requests: retry after {self.retry_after}",
                {"retry_after": self.retry_after},
            )
        if self.kind == "5xx":
            return ApiError(self.status, HTTPStatus(self.status).phrase)
        return None


class FaultPlan:
    """The faults waiting for their calls, first injected first applied."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def __len__(self) -> int:
        return len(self._faults)

    def add(
        self,
        method: str | None,
        kind: FaultKind,
        *,
        times: int = 1,
        retry_after: int = 1,
        delay: float = 2.0,
        status: int = 502,
        chat_id: int | None = None,
    ) -> None:
        """Make the next `times` calls of `method` (None: any but getUpdates) fail this way;
        with `chat_id`, only calls addressed to that chat."""
        if kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {kind!r}")
        if kind == "5xx" and not 500 <= status <= 599:
            raise ValueError("a 5xx fault needs a status from 500 to 599")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.append(Fault(method, kind, times, retry_after, delay, status, chat_id))

    def clear(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()

    def take(self, method: str, params: JSONDict) -> Fault | None:
        """The fault this call meets, if any, counting the call against it."""
        for fault in self._faults:
            if fault.matches(method, params):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None
