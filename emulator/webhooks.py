"""Webhooks: setWebhook / deleteWebhook / getWebhookInfo, and the delivery loop that POSTs each
update to the bot in order, retrying a failed delivery after a growing pause as Telegram does."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import logging
import re
import time
from typing import Final

import aiohttp

from emulator.api import MAX_LONG_POLL, JSONDict, bad, dumps
from emulator.params import opt_int, opt_str, truthy
from emulator.updates import UpdatesMixin

log = logging.getLogger(__name__)

# setWebhook's secret_token: 1-256 characters of A-Z, a-z, 0-9, _ and -.
_SECRET_TOKEN_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class WebhooksMixin(UpdatesMixin):
    """Webhook registration and delivery; while a webhook is set, getUpdates is refused."""

    async def _set_webhook(self, params: JSONDict) -> bool:
        url = opt_str(params, "url") or ""
        schemes = ("https://",) if self.require_https else ("https://", "http://")
        if url and not url.startswith(schemes):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = opt_str(params, "secret_token")
        if secret and not _SECRET_TOKEN_RE.fullmatch(secret):
            raise bad("secret token contains unallowed characters")
        max_connections = opt_int(params, "max_connections", 40)
        if not 1 <= max_connections <= 100:
            raise bad("bad webhook: max_connections must be between 1 and 100")
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            if not isinstance(allowed, list):
                raise bad("can't parse allowed_updates JSON object")
            self._allowed_updates = frozenset(map(str, allowed)) if allowed else None
        self.webhook_url = url or None
        self.webhook_secret = secret or None
        self.webhook_max_connections = max_connections
        self.webhook_last_error = None
        if truthy(params.get("drop_pending_updates")):
            self._updates.clear()
        # A new address deserves an attempt now, not after the old one's backoff.
        self._webhook_signal.fire()
        if self.webhook_url and (self._webhook_task is None or self._webhook_task.done()):
            self._webhook_task = asyncio.create_task(
                self._deliver_webhooks(), name="emulator-webhook-delivery"
            )
        return True

    async def _delete_webhook(self, params: JSONDict) -> bool:
        self.webhook_url = None
        self.webhook_secret = None
        if truthy(params.get("drop_pending_updates")):
            self._updates.clear()
        # The delivery loop notices the missing URL and ends; pending updates wait for getUpdates.
        self._webhook_signal.fire()
        self._updates_signal.fire()
        return True

    async def _get_webhook_info(self, _params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_url:
            info["max_connections"] = self.webhook_max_connections
        if self.webhook_last_error is not None:
            info["last_error_date"] = self._webhook_last_error_at
            info["last_error_message"] = self.webhook_last_error
        if self._allowed_updates is not None:
            info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    async def _deliver_webhooks(self) -> None:
        """POST pending updates to the webhook one at a time in update_id order until it is
        deleted; a failed delivery is retried (same update) after a growing, capped pause."""
        # One POST in flight (max_connections is only reported): it keeps update_id order, which
        # tests can then rely on, and PTB answers as soon as an update is queued anyway.
        delay = self.webhook_retry_initial
        async with aiohttp.ClientSession() as session:
            while self.webhook_url and not self._closing.is_set():
                batch = self._deliverable(1)
                if not batch:
                    await self._updates_signal.wait(MAX_LONG_POLL)
                    continue
                update = batch[0]
                if await self._post_update(session, self.webhook_url, update):
                    delay = self.webhook_retry_initial
                    self._webhook_delivered(update)
                    continue
                # Woken early by setWebhook/deleteWebhook, so a fixed endpoint is tried at once.
                await self._webhook_signal.wait(delay)
                delay = min(delay * 2, self.webhook_retry_max)

    async def _post_update(
        self, session: aiohttp.ClientSession, url: str, update: JSONDict
    ) -> bool:
        """One delivery attempt; True when the bot answered 2xx."""
        headers = {"Content-Type": "application/json"}
        if self.webhook_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook_secret
        body = dumps(update).encode()
        timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
        try:
            async with session.post(url, data=body, headers=headers, timeout=timeout) as answer:
                await answer.read()
                if 200 <= answer.status < 300:
                    return True
                error = f"Wrong response from the webhook: {answer.status} {answer.reason}"
        except (aiohttp.ClientError, OSError, TimeoutError) as failure:
            error = f"Connection failed: {type(failure).__name__} {failure}".strip()
        self.webhook_failures += 1
        self.webhook_last_error = error
        self._webhook_last_error_at = int(time.time())
        log.debug("webhook delivery of update %s failed: %s", update["update_id"], error)
        self._touch()
        return False

    def _webhook_delivered(self, update: JSONDict) -> None:
        update_id = update["update_id"]
        if self._updates and self._updates[0]["update_id"] == update_id:
            self._updates.popleft()
        else:
            # redeliver() or allowed_updates reshaped the queue while the POST was in flight.
            self._updates = collections.deque(
                u for u in self._updates if u["update_id"] != update_id
            )
        if update_id > self._delivered_up_to:
            self._delivered.append(copy.deepcopy(update))
        self._delivered_up_to = max(self._delivered_up_to, update_id)
        self.webhook_deliveries += 1
        self._touch()

    async def _stop_webhook_delivery(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
