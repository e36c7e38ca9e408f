"""The staff command menu: set per staff member's chat (BotCommandScopeChat), in every language,
at start-up and when /staf adds or removes someone; workers keep the default menu."""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import TelegramError

from config.catalogs import LANGUAGES, Catalogs
from domain.i18n import N_
from domain.roles import Role, StaffMember

log = logging.getLogger(__name__)

# (command, description, least role), in the order staff use them.
STAFF_COMMANDS: tuple[tuple[str, str, Role], ...] = (
    ("antrian", N_("The queue and the counts"), Role.REVIEWER),
    ("tinjau", N_("Review the next application"), Role.REVIEWER),
    ("cari", N_("Find an application by NIK or number"), Role.REVIEWER),
    ("riwayat", N_("History of an application"), Role.REVIEWER),
    ("perbaiki", N_("Ask the worker to correct a field"), Role.REVIEWER),
    ("statistik", N_("Statistics"), Role.REVIEWER),
    ("deregistrasi", N_("Deregistrations waiting"), Role.REVIEWER),
    ("tarik", N_("Withdraw an approved worker"), Role.ADMIN),
    ("ekspor", N_("Export the list for BPJS"), Role.ADMIN),
    ("perpanjang", N_("Renewals of last year's participants"), Role.ADMIN),
    ("staf", N_("Staff list, add or remove staff"), Role.ADMIN),
    ("bahasa", N_("Change the language"), Role.REVIEWER),
    ("bantuan", N_("Help and contact"), Role.REVIEWER),
)


def staff_commands(catalogs: Catalogs, language: str, role: Role) -> list[BotCommand]:
    """The menu of a staff member with `role`, in one language."""
    _ = catalogs.get(language)._
    member = StaffMember(0, role)
    return [
        BotCommand(name, _(description))
        for name, description, needed in STAFF_COMMANDS
        if member.can(needed)
    ]


async def publish_staff_menu(
    bot: Bot, catalogs: Catalogs, user_id: int, member: StaffMember | None
) -> bool:
    """Set (or, for someone no longer staff, delete) the menu of one staff member's chat.

    Telegram refuses a chat the bot has never seen (the person has not started the bot yet):
    that is logged and False comes back; the menu is set again at the next start-up or change.
    """
    scope = BotCommandScopeChat(user_id)
    try:
        for language in LANGUAGES:
            code = None if language == catalogs.default else language
            if member is None:
                await bot.delete_my_commands(scope=scope, language_code=code)
            else:
                await bot.set_my_commands(
                    staff_commands(catalogs, language, member.role),
                    scope=scope,
                    language_code=code,
                )
    except TelegramError as error:
        log.info("staff menu for %s not set: %s", user_id, error)
        return False
    return True
