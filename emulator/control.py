"""The control API under `/_emulator/`: another process (a benchmark, `EmulatorClient`) acts as
users, reads transcripts, injects faults and sets latency over HTTP."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from emulator.api import MAX_LONG_POLL, JSONDict, dumps
from emulator.chats import ChatsMixin
from emulator.users import EmulatedUser, Pattern


class ControlMixin(ChatsMixin):
    """The control API's routes and handlers."""

    def _add_control_routes(self, app: web.Application) -> None:
        prefix = "/_emulator"
        users = f"{prefix}/users/{{user_id:-?[0-9]+}}"
        app.router.add_post(f"{users}/send", self._ctl_send)
        app.router.add_post(f"{users}/press", self._ctl_press)
        app.router.add_post(f"{users}/contact", self._ctl_contact)
        app.router.add_post(f"{users}/photo", self._ctl_photo)
        app.router.add_post(f"{users}/sticker", self._ctl_sticker)
        app.router.add_post(f"{users}/voice", self._ctl_voice)
        app.router.add_post(f"{users}/location", self._ctl_location)
        app.router.add_post(f"{users}/edit", self._ctl_edit)
        app.router.add_post(f"{users}/block", self._ctl_block)
        app.router.add_post(f"{users}/unblock", self._ctl_unblock)
        app.router.add_get(f"{prefix}/chats/{{chat_id:-?[0-9]+}}/messages", self._ctl_messages)
        app.router.add_post(f"{prefix}/faults", self._ctl_faults)
        app.router.add_delete(f"{prefix}/faults", self._ctl_clear_faults)
        app.router.add_post(f"{prefix}/latency", self._ctl_latency)
        app.router.add_get(f"{prefix}/stats", self._ctl_stats)
        app.router.add_post(f"{prefix}/caps", self._ctl_caps)

    async def _ctl_body(self, request: web.Request) -> JSONDict:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="body must be JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return body

    async def _ctl_user(self, request: web.Request) -> tuple[EmulatedUser, JSONDict]:
        body = await self._ctl_body(request)
        user_id = int(request.match_info["user_id"])
        user = self._users.get(user_id)
        if user is None:
            user = self.user(
                user_id,
                first_name=str(body.get("first_name") or "Budi"),
                username=body.get("username"),
                language_code=body.get("language_code", "id"),
            )
        else:
            if body.get("first_name"):
                user.first_name = str(body["first_name"])
            if "language_code" in body:
                user.language_code = body["language_code"]
        return user, body

    async def _ctl_send(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise web.HTTPBadRequest(text='"text" is required')
        return _json({"message": await user.send(text)})

    async def _ctl_press(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        message_id = body.get("message_id")
        try:
            if "data" in body:
                query_id = await user.press_data(str(body["data"]), message_id)
            else:
                label = body.get("label")
                if not isinstance(label, str):
                    raise web.HTTPBadRequest(text='"label" or "data" is required')
                pattern: Pattern = re.compile(label) if body.get("regex") else label
                query_id = await user.press(pattern, message_id=message_id)
        except AssertionError as error:
            return _json({"error": str(error)}, status=404)
        return _json({"callback_query_id": query_id})

    async def _ctl_contact(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        phone = body.get("phone_number")
        if not isinstance(phone, str):
            raise web.HTTPBadRequest(text='"phone_number" is required')
        message = await user.share_contact(
            phone, user_id=body.get("user_id"), first_name=body.get("contact_first_name")
        )
        return _json({"message": message})

    async def _ctl_photo(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        return _json({"message": await user.send_photo()})

    async def _ctl_sticker(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        return _json({"message": await user.send_sticker()})

    async def _ctl_voice(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        return _json({"message": await user.send_voice()})

    async def _ctl_location(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        message = await user.send_location(float(body["latitude"]), float(body["longitude"]))
        return _json({"message": message})

    async def _ctl_edit(self, request: web.Request) -> web.Response:
        user, body = await self._ctl_user(request)
        try:
            message = await user.edit(int(body["message_id"]), str(body["text"]))
        except AssertionError as error:
            return _json({"error": str(error)}, status=404)
        return _json({"message": message})

    async def _ctl_block(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        await user.block()
        return _json({"blocked": True})

    async def _ctl_unblock(self, request: web.Request) -> web.Response:
        user, _ = await self._ctl_user(request)
        await user.unblock()
        return _json({"blocked": False})

    async def _ctl_messages(self, request: web.Request) -> web.Response:
        chat = self._chats.get(int(request.match_info["chat_id"]))
        if chat is None:
            return _json({"error": "chat not found"}, status=404)
        try:
            after = int(request.query.get("after", "-1"))
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_LONG_POLL)
        except ValueError:
            raise web.HTTPBadRequest(text="after and wait must be numbers") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while len(chat.events) <= after + 1 and not self._closing.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await chat.signal.wait(remaining)
        events = chat.events[max(after + 1, 0) :]
        return _json({"events": [e.to_json() for e in events], "last_index": len(chat.events) - 1})

    async def _ctl_faults(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        try:
            self._faults.add(
                body.get("method"),
                body["kind"],
                times=int(body.get("times", 1)),
                retry_after=int(body.get("retry_after", 1)),
                delay=float(body.get("delay", 2.0)),
                status=int(body.get("status", 502)),
            )
        except (KeyError, ValueError) as error:
            raise web.HTTPBadRequest(text=f"bad fault: {error}") from None
        return _json({"faults": len(self._faults)})

    async def _ctl_clear_faults(self, _request: web.Request) -> web.Response:
        self._faults.clear()
        return _json({"faults": 0})

    async def _ctl_latency(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        try:
            self.latency = max(float(body["seconds"]), 0.0)
        except (KeyError, TypeError, ValueError):
            raise web.HTTPBadRequest(text='"seconds" must be a number') from None
        return _json({"latency": self.latency})

    async def _ctl_caps(self, request: web.Request) -> web.Response:
        body = await self._ctl_body(request)
        if "enabled" in body:
            self.caps.enabled = bool(body["enabled"])
        if body.get("reset"):
            self.caps.reset()
        return _json(self.caps.stats())

    async def _ctl_stats(self, _request: web.Request) -> web.Response:
        return _json(
            {
                "calls": dict(self.calls),
                "pending_updates": len(self._updates),
                "next_update_id": self._next_update_id,
                "in_flight": self._in_flight,
                "latency": self.latency,
                "faults": len(self._faults),
                "chats": len(self._chats),
                "last_token_seen": self.last_token is not None,
                "webhook": self.webhook_url is not None,
                "webhook_deliveries": self.webhook_deliveries,
                "webhook_failures": self.webhook_failures,
                "caps": self.caps.stats(),
            }
        )


def _json(body: JSONDict, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)
