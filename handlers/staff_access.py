"""Who may use a staff command or button: the caller's role, checked on every update.

A caller who is not staff gets exactly the answer an unknown command gets, and the attempt is
written to the audit log; callback data is untrusted and re-validated by each handler.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update

from domain.roles import Role, StaffMember
from handlers import account
from handlers.common import answer_query, message_of, user_of
from handlers.context import Context
from storage.models import Application
from usecases.roles import staff_member

Handler = Callable[[Update, Context, StaffMember], Coroutine[Any, Any, None]]
Callback = Callable[[Update, Context], Coroutine[Any, Any, None]]


async def member_by_id(user_id: int, context: Context) -> StaffMember | None:
    """The staff membership of a numeric Telegram id (the only place roles are resolved)."""
    return await staff_member(user_id, settings=context.settings, staff=context.services.staff)


async def member_of(update: Update, context: Context) -> StaffMember | None:
    """The caller's staff membership, looked up by numeric id on every update."""
    user = update.effective_user
    if user is None or update.effective_chat is None or update.effective_chat.type != "private":
        return None
    return await member_by_id(user.id, context)


def staff_command(needed: Role, handler: Handler) -> Callback:
    """Wrap a command so non-staff get the unknown-command answer and an audit entry."""

    async def guarded(update: Update, context: Context) -> None:
        member = await member_of(update, context)
        if member is None or not member.can(needed):
            user = user_of(update)
            text = (update.effective_message.text or "") if update.effective_message else ""
            await context.services.review.record_denied(
                actor_id=user.id, action="command", detail=text.split(" ")[0][:40]
            )
            await account.unknown_command(update, context)
            return
        await handler(update, context, member)

    return guarded


def staff_button(needed: Role, handler: Handler) -> Callback:
    """Wrap a button so a forged or stale press by non-staff changes nothing and is audited."""

    async def guarded(update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        member = await member_of(update, context)
        if member is None or not member.can(needed):
            await context.services.review.record_denied(
                actor_id=user_of(update).id, action="button", detail=(query.data or "")[:60]
            )
            await answer_query(query, context._("This button is no longer active."))
            return
        await handler(update, context, member)

    return guarded


def in_scope(member: StaffMember, application: Application) -> bool:
    """Whether the application lies in the kecamatan this member reviews (admins: all)."""
    return not member.kecamatan or (application.kecamatan_code or "") in member.kecamatan


async def named_application(
    update: Update, context: Context, member: StaffMember
) -> Application | None:
    """The application a command's first argument names, if the caller may see it; otherwise
    the caller is told and None comes back."""
    args = context.args or []
    if not args:
        await message_of(update).reply_text(
            context._("Give the application number, e.g. BKS-4F7K2Q.")
        )
        return None
    application = await context.services.review.find(code=args[0])
    if application is None or not in_scope(member, application):
        await message_of(update).reply_text(context._("No application with that number."))
        return None
    return application
