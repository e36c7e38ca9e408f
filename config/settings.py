"""The one settings object, read from the environment and an optional `.env` file."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain import budget as budget_rules
from domain import eligibility, lifecycle

IdList = Annotated[frozenset[int], NoDecode]
# What Telegram accepts as a webhook secret_token (setWebhook): 1-256 of these characters.
WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# A PROGRAM_PREMIUM_IDR this high is a yearly premium (the old meaning): no monthly BPU premium
# comes near it (JKK+JKM for the highest income bracket is under Rp60.000).
YEARLY_PREMIUM_FROM = 100_000


class SettingsError(Exception):
    """A configuration value is missing or wrong; the message names the variable."""


def _year_of_next_month() -> int:
    today = budget_rules.local_today(datetime.now(UTC))
    return budget_rules.add_months(budget_rules.month_of(today), 1).year


class Settings(BaseSettings):
    """Every knob an operator can turn; names match the environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    # Messages a second the bot sends into chats, all processes together (Telegram's cap is
    # about 30); one a second per chat on top. Several webhook processes on PostgreSQL share
    # this budget through the database; one process keeps it in memory.
    telegram_max_messages_per_s: float = Field(default=30.0, gt=0, le=1000)
    database_url: str = "sqlite+aiosqlite:///rentan.db"
    # NORMAL: a power cut may lose the last commits before it (never corrupts, in WAL mode);
    # FULL: every commit is on disk when it returns, at an fsync per commit.
    sqlite_synchronous: str = Field(default="NORMAL", pattern=r"^(NORMAL|FULL)$")
    admin_ids: IdList = frozenset()
    reviewer_ids: IdList = frozenset()

    program_region_code: str = "3275"
    program_quota: int = Field(default=10_000, ge=0)
    program_budget_idr: int = Field(default=2_000_000_000, ge=0)
    # Per person per MONTH (JKK Rp10.000 + JKM Rp6.800). A yearly figure (>= 100.000, the old
    # default 201600) is still accepted and divided by 12, with a deprecation line at start-up.
    program_premium_idr: int = Field(default=16_800, gt=0)
    # The programme year, and its months of cover (YYYY-MM; empty: January and December of
    # PROGRAM_YEAR). A place costs the premium of each month from its cover's start to the end.
    # Unset, it is the year next month (WIB) falls in, the year a cover approved today starts
    # in: in December the coming year, so a fresh install never offers zero places by default.
    program_year: int = Field(default_factory=lambda: _year_of_next_month(), ge=2000, le=2100)
    program_coverage_start: str = Field(default="", pattern=r"^(\d{4}-\d{2})?$")
    program_coverage_end: str = Field(default="", pattern=r"^(\d{4}-\d{2})?$")
    program_max_desil: int = Field(default=5, ge=1, le=10)
    program_min_age: int = Field(default=18, ge=0, le=120)
    program_max_age: int = Field(default=65, ge=0, le=120)
    # Above 0: eligibility.Rules refuses 0, which would fail every assessment, not start-up.
    program_name_match_threshold: float = Field(default=0.85, gt=0.0, le=1.0)
    # Last year's participants still eligible come first for places: an admin approves them in
    # bulk with /perpanjang. False: they wait in the normal queue beside new registrations.
    program_renewal_first: bool = True
    # When a place frees: `auto` approves the first waiting worker (desil, then time) at once;
    # `staff` sends admins a one-tap button to approve them.
    program_waitlist_promotion: lifecycle.Promotion = lifecycle.Promotion.AUTO
    # Which DTSEN family ranking PROGRAM_MAX_DESIL is compared with: nasional, provinsi or
    # kabupaten_kota. Read once at start-up, so a change takes effect at the next restart;
    # people from a one-file extract (national desil only) are judged on the national one.
    program_desil_scale: eligibility.DesilScale = eligibility.DesilScale.NASIONAL

    pii_secret: SecretStr | None = None

    application_code_prefix: str = Field(default="BKS", pattern=r"^[A-Z0-9]{1,8}$")
    office_contact: str = "Disnaker Kota Bekasi, Jl. Ir. H. Juanda No. 100, Bekasi"
    # The number a refused or stuck worker can call, also named where workers are told how to
    # ask for a DTSEN update (default: the city's call centre).
    office_phone: str = Field(default="1500444", min_length=1, max_length=40)
    # What the welcome calls the city and the programme.
    city_name: str = Field(default="Kota Bekasi", min_length=1, max_length=60)
    program_name: str = Field(
        default="BPJS Ketenagakerjaan Pekerja Rentan", min_length=1, max_length=80
    )
    # The route a refused worker still has: paying JKK+JKM themselves as a BPU member, at this
    # monthly premium (PP 50/2025's discounted Rp8.400) until this month (YYYY-MM).
    self_pay_premium_idr: int = Field(default=8_400, gt=0)
    self_pay_until: str = Field(default="2027-03", pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    default_language: str = Field(default="id", pattern=r"^(id|en)$")
    # Staff answer an appeal (sanggah) within this many working days (Monday to Friday);
    # unanswered after that it shows red and is escalated to the admins once.
    appeal_deadline_days: int = Field(default=5, ge=1, le=60)

    draft_reminder_minutes: int = Field(default=24 * 60, gt=0)
    draft_expiry_hours: int = Field(default=72, gt=0)
    ineligible_retention_days: int = Field(default=30, gt=0)
    # Audit rows of refused staff actions (who tried what) are kept this long, then deleted.
    denied_retention_days: int = Field(default=90, gt=0)
    housekeeping_interval_seconds: int = Field(default=300, gt=0)
    notification_interval_seconds: int = Field(default=15, gt=0)
    # Per account and day: distinct NIKs tried, and (counted apart) distinct eligibility checks
    # of a NIK, name and birth date; both stop strangers probing DTSEN and the register.
    nik_attempts_per_day: int = Field(default=5, gt=0)
    # Assisted registrations one operator may open per WIB day (/daftarkan); a fraud control.
    operator_daily_limit: int = Field(default=30, gt=0)
    # Per account: more updates than this in the window are dropped (staff in settings exempt).
    flood_max_updates: int = Field(default=20, gt=0)
    flood_window_seconds: int = Field(default=10, gt=0)
    dtsen_max_bad_share: float = Field(default=0.05, ge=0.0, le=1.0)
    # An import may remove at most this share of the rows in service (else --allow-shrink).
    dtsen_max_shrink_share: float = Field(default=0.20, ge=0.0, le=1.0)
    # A KPJ file (sent to the bot or imported with the CLI) is refused before it is parsed
    # when it has more rows than this, or when its XLSX unpacks to more than this many MB: a
    # 0.14 MB XLSX can hold a million rows.
    kpj_max_rows: int = Field(default=100_000, gt=0)
    kpj_max_uncompressed_mb: int = Field(default=50, gt=0)

    # Telegram is 50-200 ms away: throughput comes from having many chats in flight at once.
    concurrent_updates: int = Field(default=128, ge=1, le=512)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    # CPUs the bot process may run on, e.g. "1" (empty: all). The bot is one event loop plus
    # the SQLite driver's thread; kept on one CPU their hand-offs avoid cross-CPU wake-ups,
    # which cost ~40 % of throughput on a 2-vCPU VM (bench_flow, pinned vs not).
    cpu_affinity: IdList = frozenset()

    # Empty: long polling. Set: Telegram POSTs updates to this public URL (a reverse proxy).
    webhook_url: str = ""
    # Checked after webhook_url, so it can tell whether a webhook needs it.
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_path: str = Field(default="/telegram", pattern=r"^/[A-Za-z0-9._~/-]*$")
    # How many webhook processes share the updates (behind a round-robin proxy, on one
    # PostgreSQL): each admits FLOOD_MAX_UPDATES / BOT_PROCESSES of an account's updates per
    # window (handlers.flood). Polling is always one process.
    bot_processes: int = Field(default=1, ge=1, le=64)

    @field_validator("admin_ids", "reviewer_ids", "cpu_affinity", mode="before")
    @classmethod
    def _split_ids(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            try:
                return frozenset(int(p) for p in parts)
            except ValueError:
                if info.field_name == "cpu_affinity":
                    raise ValueError("expected comma-separated CPU numbers, e.g. 1") from None
                raise ValueError("expected comma-separated numeric Telegram user ids") from None
        return value

    @field_validator(
        "program_quota",
        "program_budget_idr",
        "program_premium_idr",
        "program_year",
        "program_max_desil",
        "program_min_age",
        "program_max_age",
        "self_pay_premium_idr",
        mode="before",
    )
    @classmethod
    def _plain_integer(cls, value: object) -> object:
        # Indonesians write 10.000 for ten thousand; pydantic would read "10.000" as 10.
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError("write digits only, without dots or commas (10000, not 10.000)")
        return value

    @field_validator("program_region_code")
    @classmethod
    def _check_region(cls, value: str) -> str:
        digits = value.replace(".", "").strip()
        if not digits.isdigit() or len(digits) not in (2, 4, 6):
            raise ValueError("expected a Kemendagri code of 2, 4 or 6 digits, e.g. 3275")
        return digits

    @field_validator("program_desil_scale", mode="before")
    @classmethod
    def _check_desil_scale(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        scale = value.strip().casefold().replace("/", "_").replace("-", "_").replace(" ", "_")
        if scale not in {str(choice) for choice in eligibility.DesilScale}:
            choices = ", ".join(str(choice) for choice in eligibility.DesilScale)
            raise ValueError(f"expected one of {choices}")
        return scale

    @field_validator("telegram_api_url")
    @classmethod
    def _check_api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper_synchronous(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("expected sqlite+aiosqlite:///FILE or postgresql+asyncpg://...")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        parts = urlsplit(value)
        # Telegram only calls https URLs; plain http is for a local emulator on this machine.
        local = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
        if not parts.hostname or not (parts.scheme == "https" or local):
            raise ValueError("expected the public https:// URL Telegram should call")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        secret = value.get_secret_value() if value is not None else ""
        if secret and not WEBHOOK_SECRET_RE.fullmatch(secret):
            raise ValueError("expected 1-256 characters of A-Z, a-z, 0-9, _ and -")
        if not secret and info.data.get("webhook_url"):
            raise ValueError(
                "required when WEBHOOK_URL is set: generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return value if secret else None

    @field_validator("webhook_path")
    @classmethod
    def _check_webhook_path(cls, value: str, info: ValidationInfo) -> str:
        # PTB's own default path is the token; a path in proxy logs must not be a credential.
        token = info.data.get("telegram_bot_token")
        if isinstance(token, SecretStr) and token.get_secret_value():
            secret = token.get_secret_value()
            tail = secret.rpartition(":")[2]
            if secret in value or (tail and tail in value):
                raise ValueError("must not contain the bot token")
        return value

    @field_validator("program_coverage_start", "program_coverage_end")
    @classmethod
    def _check_month(cls, value: str) -> str:
        if value:
            budget_rules.parse_month(value)
        return value

    @model_validator(mode="after")
    def _check_processes(self) -> Settings:
        if self.bot_processes > 1 and not self.webhook_url:
            raise ValueError(
                "BOT_PROCESSES above 1 needs WEBHOOK_URL: only one process may poll a token"
            )
        return self

    @model_validator(mode="after")
    def _check_age_range(self) -> Settings:
        if self.program_min_age > self.program_max_age:
            raise ValueError("PROGRAM_MIN_AGE must not exceed PROGRAM_MAX_AGE")
        if self.coverage_start > self.coverage_end:
            raise ValueError("PROGRAM_COVERAGE_START must not be after PROGRAM_COVERAGE_END")
        return self

    @property
    def coverage_start(self) -> date:
        """The first month of cover (the 1st of that month)."""
        if self.program_coverage_start:
            return budget_rules.parse_month(self.program_coverage_start)
        return date(self.program_year, 1, 1)

    @property
    def coverage_end(self) -> date:
        """The last month of cover (the 1st of that month)."""
        if self.program_coverage_end:
            return budget_rules.parse_month(self.program_coverage_end)
        return date(self.program_year, 12, 1)

    @property
    def monthly_premium_idr(self) -> int:
        """The premium per person and month; a yearly PROGRAM_PREMIUM_IDR is divided by 12."""
        if self.program_premium_idr >= YEARLY_PREMIUM_FROM:
            return self.program_premium_idr // 12
        return self.program_premium_idr

    @property
    def deprecations(self) -> tuple[str, ...]:
        """One line per setting given in a form that is still accepted but going away."""
        if self.program_premium_idr < YEARLY_PREMIUM_FROM:
            return ()
        return (
            f"PROGRAM_PREMIUM_IDR={self.program_premium_idr} looks yearly and is read as "
            f"{self.monthly_premium_idr} a month: set the monthly premium instead (deprecated)",
        )

    @property
    def budget(self) -> budget_rules.Budget:
        """The programme's headcount, money, monthly premium and months of cover."""
        return budget_rules.Budget(
            quota=self.program_quota,
            budget_idr=self.program_budget_idr,
            monthly_premium_idr=self.monthly_premium_idr,
            start=self.coverage_start,
            end=self.coverage_end,
        )

    @property
    def effective_quota(self) -> int:
        """Places the budget and the headcount allow when every cover starts in the first
        month (before anything is spent); what is offered today comes from the ledger."""
        return self.budget.places

    @property
    def eligibility_rules(self) -> eligibility.Rules:
        """The programme's criteria as the eligibility check takes them."""
        return eligibility.Rules(
            region_code=self.program_region_code,
            max_desil=self.program_max_desil,
            min_age=self.program_min_age,
            max_age=self.program_max_age,
            name_threshold=self.program_name_match_threshold,
            desil_scale=self.program_desil_scale,
        )

    @property
    def staff_ids(self) -> frozenset[int]:
        """Every id configured as staff in the environment."""
        return self.admin_ids | self.reviewer_ids

    def require_token(self) -> str:
        """The bot token, or a SettingsError naming TELEGRAM_BOT_TOKEN."""
        if self.telegram_bot_token is None or not self.telegram_bot_token.get_secret_value():
            raise SettingsError("TELEGRAM_BOT_TOKEN is not set: get one from @BotFather")
        return self.telegram_bot_token.get_secret_value()

    def require_webhook_secret(self) -> str:
        """The webhook secret_token, or a SettingsError naming WEBHOOK_SECRET."""
        if self.webhook_secret is None:
            raise SettingsError("WEBHOOK_SECRET is not set: it is required when WEBHOOK_URL is")
        return self.webhook_secret.get_secret_value()

    def require_pii_secret(self) -> bytes:
        """The key for blind indexes, or a SettingsError naming PII_SECRET."""
        if self.pii_secret is None or len(self.pii_secret.get_secret_value()) < 16:
            # An operator who already has data must not be sent to make a new key: every NIK
            # hashed with the old one would stop matching.
            raise SettingsError(
                "PII_SECRET is not set or shorter than 16 characters: set the same key as "
                "before (the database's NIK hashes were made with it); only a brand-new "
                "installation generates one, with "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return self.pii_secret.get_secret_value().encode()


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each bad variable, for operators rather than developers."""
    parts = []
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"]).upper() or "settings"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{name}: {message}")
    return "invalid configuration: " + "; ".join(parts)


def load_settings(*, env_file: str | None = ".env", **overrides: Any) -> Settings:
    """Build the settings once, turning validation errors into one-line SettingsErrors."""
    try:
        return Settings(_env_file=env_file, **overrides)
    except ValidationError as error:
        raise SettingsError(describe_validation_error(error)) from None
