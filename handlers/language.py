"""The current language of a user: the one rule (`domain.i18n.choose_language`) applied to the
stored preference, read through this process's cache of preferences.

The cache is a polling process's only: it is the token's one consumer, so every /bahasa goes
through it. Several webhook processes (`Services.shared`) each see only some of a user's
updates, so a choice made through one must be read by the others: they read the preference on
every update (one primary-key read: 0.9 ms on PostgreSQL, measured on a busy 2-core machine)
and keep the cache only for the flood guard and the error handler, which must not touch the
database."""

from __future__ import annotations

from enum import Enum

from config.catalogs import Translator
from handlers.context import Services


class Lookup(Enum):
    """Where the stored preference is looked up."""

    # The cache only: the flood guard and the error handler must not touch the database.
    MEMORY = "memory"
    # The cache, else the database (and the answer is cached): a user's own updates. With
    # several processes (`Services.shared`) always the database (and the answer is cached).
    CACHED = "cached"
    # The database: messages sent outside the user's own update (reminders, decisions), which
    # another process may have seen the user change.
    STORED = "stored"


async def translator_for(
    services: Services,
    user_id: int,
    telegram_code: str | None = None,
    *,
    lookup: Lookup = Lookup.CACHED,
) -> Translator:
    """The translator of a user's language: stored choice, else Telegram's, else the default."""
    if lookup is Lookup.STORED:
        stored = await services.preferences.language_of(user_id=user_id)
    elif lookup is Lookup.MEMORY or (user_id in services.languages and not services.shared):
        stored = services.languages.get(user_id)
    else:
        stored = await services.preferences.language_of(user_id=user_id)
        services.languages[user_id] = stored
    return services.catalogs.pick(stored, telegram_code)


def remember_language(services: Services, user_id: int, language: str | None) -> None:
    """Cache a user's choice (after storing it), so their next update needs no read."""
    services.languages[user_id] = language


def forget_language(services: Services, user_id: int) -> None:
    """Drop a user's cached choice (their data was erased)."""
    services.languages.pop(user_id, None)
