"""The staff command menu (a chat scope per staff member) and the staff part of /bantuan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import BotCommand, BotCommandScopeChat
from telegram.error import BadRequest

from emulator import BotApiEmulator
from testkit.harness import Harness

ADMIN = 900001
REVIEWER = 900002
NEW_STAFF = 900010
WORKER = 210001


def names(commands: list[dict[str, str]]) -> list[str]:
    """The command names of a menu."""
    return [command["command"] for command in commands]


@pytest.fixture
async def staffed(
    emulator: BotApiEmulator, tmp_path: Path, database_url: str
) -> AsyncIterator[Harness]:
    """The bot started after the staff from settings have opened their chat with it."""
    for user_id in (ADMIN, REVIEWER, WORKER, NEW_STAFF):
        emulator.user(user_id, language_code="en" if user_id == REVIEWER else "id")
    harness = Harness(emulator, tmp_path, database_url=database_url)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_staff_see_a_menu_of_their_role_and_workers_the_default_one(
    staffed: Harness,
) -> None:
    """At start-up each staff member's chat gets the commands of their role, in both languages;
    a worker's chat keeps the default worker menu."""
    emulator = staffed.emulator
    admin_menu = names(emulator.menu_of(ADMIN, "id"))
    assert {"antrian", "tinjau", "ekspor", "staf", "bantuan"} <= set(admin_menu)
    reviewer_menu = emulator.menu_of(REVIEWER, "en")
    assert "antrian" in names(reviewer_menu)
    assert "ekspor" not in names(reviewer_menu)
    assert {"command": "antrian", "description": "The queue and the counts"} in reviewer_menu
    assert "Antrean dan jumlah pendaftaran" in [c["description"] for c in emulator.menu_of(ADMIN)]
    worker_menu = names(emulator.menu_of(WORKER, "id"))
    assert "start" in worker_menu
    assert "antrian" not in worker_menu


async def test_staff_added_or_removed_with_staf_get_or_lose_the_staff_menu(
    staffed: Harness,
) -> None:
    """/staf tambah sets the new member's menu at once; /staf hapus gives the worker menu back."""
    admin = staffed.user(ADMIN)
    emulator = staffed.emulator
    assert "antrian" not in names(emulator.menu_of(NEW_STAFF, "id"))
    await admin.send(f"/staf tambah {NEW_STAFF} reviewer")
    await admin.expect(rf"{NEW_STAFF}")
    assert "antrian" in names(emulator.menu_of(NEW_STAFF, "id"))
    assert "staf" not in names(emulator.menu_of(NEW_STAFF, "id"))
    await admin.send(f"/staf hapus {NEW_STAFF}")
    await admin.expect(r"dihapus")
    assert "antrian" not in names(emulator.menu_of(NEW_STAFF, "id"))
    assert "start" in names(emulator.menu_of(NEW_STAFF, "id"))


async def test_help_has_a_staff_section_for_staff_only(staffed: Harness) -> None:
    """/bantuan lists the staff commands to a reviewer, and not to a worker."""
    reviewer = staffed.user(REVIEWER)
    await reviewer.send("/bantuan")
    text = (await reviewer.expect(r"/start")).text
    assert "/antrian" in text
    assert "/ekspor" not in text
    worker = staffed.user(WORKER)
    await worker.send("/bantuan")
    text = (await worker.expect(r"/start")).text
    assert "/antrian" not in text


async def test_emulator_checks_a_command_scope_as_the_bot_api_does(
    staffed: Harness,
) -> None:
    """A chat scope names a known chat; an unknown scope type or chat is a 400."""
    bot = staffed.app.bot if staffed.app is not None else None
    assert bot is not None
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.set_my_commands([BotCommand("x", "y")], scope=BotCommandScopeChat(424242))
    assert await bot.set_my_commands([BotCommand("x", "y")], scope=BotCommandScopeChat(WORKER))
    assert staffed.emulator.menu_of(WORKER) == [{"command": "x", "description": "y"}]


async def test_staff_who_never_opened_the_bot_get_the_menu_with_bantuan(
    staffed: Harness,
) -> None:
    """Telegram refuses a menu for a chat it does not know; their first /bantuan sets it."""
    admin = staffed.user(ADMIN)
    await admin.send("/staf tambah 900077 reviewer")
    await admin.expect(r"900077")
    assert "antrian" not in names(staffed.emulator.menu_of(900077, "id"))
    newcomer = staffed.user(900077)
    await newcomer.send("/bantuan")
    await newcomer.expect(r"/antrian")
    assert "antrian" in names(staffed.emulator.menu_of(900077, "id"))
