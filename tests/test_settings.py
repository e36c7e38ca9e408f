"""Settings: names operators rely on, defaults, and one-line errors that name the variable."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.app import apply_cpu_affinity, build_services
from config.settings import SettingsError, load_settings
from domain.budget import add_months, local_today, month_of
from domain.eligibility import DesilScale, Rules
from domain.lifecycle import effective_quota


def test_a_yearly_premium_is_still_read_as_monthly_with_a_deprecation_line() -> None:
    """PROGRAM_PREMIUM_IDR=201600 (the old yearly figure) costs what 16800 a month does, and
    the settings name the deprecation once."""
    yearly = load_settings(env_file=None, program_premium_idr="201600")
    monthly = load_settings(env_file=None, program_premium_idr="16800")
    assert yearly.monthly_premium_idr == monthly.monthly_premium_idr == 16_800
    assert yearly.budget == monthly.budget
    assert monthly.deprecations == ()
    assert len(yearly.deprecations) == 1
    assert "PROGRAM_PREMIUM_IDR" in yearly.deprecations[0]
    assert "deprecated" in yearly.deprecations[0]


def test_cover_from_april_buys_13227_places_when_the_quota_allows() -> None:
    """PROGRAM_COVERAGE_START=2026-04: nine months each, Rp2 miliar buys 13.227 places."""
    settings = load_settings(
        env_file=None, program_quota="20000", program_year="2026", program_coverage_start="2026-04"
    )
    assert settings.budget.months == 9
    assert settings.effective_quota == 13_227


def test_unset_programme_year_is_the_year_a_cover_approved_today_starts_in() -> None:
    """No PROGRAM_YEAR: the year next month falls in (WIB), so a fresh install in December
    plans the coming year instead of offering no place at all."""
    today = local_today(datetime.now(UTC))
    next_month = add_months(month_of(today), 1)
    settings = load_settings(env_file=None)
    assert settings.program_year == next_month.year
    assert settings.budget.places_from(settings.budget.new_cover_start(today)) > 0


def test_program_year_sets_the_default_months_of_cover() -> None:
    """PROGRAM_YEAR=2027 covers January to December 2027 unless the months are given."""
    settings = load_settings(env_file=None, program_year="2027")
    assert (settings.coverage_start, settings.coverage_end) == (
        date(2027, 1, 1),
        date(2027, 12, 1),
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("program_coverage_start", "2026-13"),
        ("program_coverage_end", "April"),
        ("program_coverage_start", "2026-12"),  # after the default end, December... of 2026
    ],
)
def test_bad_months_of_cover_are_refused_naming_the_variable(variable: str, value: str) -> None:
    """A month that is not YYYY-MM, or a start after the end, stops start-up with one line."""
    overrides = {variable: value}
    if value == "2026-12":
        overrides["program_coverage_end"] = "2026-06"
    with pytest.raises(SettingsError, match="PROGRAM_COVERAGE"):
        load_settings(env_file=None, **overrides)


def test_defaults_describe_kota_bekasi() -> None:
    """Without configuration the programme is Kota Bekasi's, on a local SQLite file."""
    settings = load_settings(env_file=None)
    assert settings.program_region_code == "3275"
    assert settings.program_quota == 10_000
    assert settings.program_budget_idr == 2_000_000_000
    assert settings.program_premium_idr == 16_800
    year = settings.program_year  # the year next month falls in (tested above)
    assert (settings.coverage_start, settings.coverage_end) == (
        date(year, 1, 1),
        date(year, 12, 1),
    )
    assert settings.program_max_desil == 5
    assert settings.program_min_age == 18
    assert settings.program_max_age == 65
    assert settings.database_url == "sqlite+aiosqlite:///rentan.db"
    assert settings.telegram_api_url == "https://api.telegram.org"


def test_budget_not_headcount_limits_the_default_quota() -> None:
    """Rp2 miliar at Rp16.800 a month for 12 months covers 9.920 people, fewer than 10.000."""
    assert load_settings(env_file=None).effective_quota == 9_920


def test_effective_quota_is_the_lifecycle_formula_on_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Settings.effective_quota answers what domain.lifecycle.effective_quota does with the
    cost of a place over the twelve months of cover."""
    monkeypatch.setenv("PROGRAM_QUOTA", "50")
    monkeypatch.setenv("PROGRAM_BUDGET_IDR", "10000000")
    settings = load_settings(env_file=None)
    assert effective_quota(50, 10_000_000, 12 * 16_800) == settings.effective_quota == 49
    monkeypatch.setenv("PROGRAM_QUOTA", "40")
    assert load_settings(env_file=None).effective_quota == 40


def test_eligibility_rules_are_built_from_the_program_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Region, desil, age window and name threshold reach the rules the registration applies."""
    assert load_settings(env_file=None).eligibility_rules == Rules(
        region_code="3275", max_desil=5, min_age=18, max_age=65, name_threshold=0.85
    )
    for variable, value in [
        ("PROGRAM_REGION_CODE", "32.16"),
        ("PROGRAM_MAX_DESIL", "3"),
        ("PROGRAM_MIN_AGE", "21"),
        ("PROGRAM_MAX_AGE", "60"),
        ("PROGRAM_NAME_MATCH_THRESHOLD", "0.9"),
    ]:
        monkeypatch.setenv(variable, value)
    assert load_settings(env_file=None).eligibility_rules == Rules(
        region_code="3216", max_desil=3, min_age=21, max_age=60, name_threshold=0.9
    )


def test_id_lists_are_read_from_comma_separated_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ADMIN_IDS and REVIEWER_IDS are comma-separated numeric Telegram ids."""
    monkeypatch.setenv("ADMIN_IDS", "11, 22")
    monkeypatch.setenv("REVIEWER_IDS", "33")
    settings = load_settings(env_file=None)
    assert frozenset({11, 22}) == settings.admin_ids
    assert frozenset({11, 22, 33}) == settings.staff_ids


def test_usernames_in_admin_ids_fail_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Usernames can be changed by anyone; only numeric ids are accepted."""
    monkeypatch.setenv("ADMIN_IDS", "@kepala_dinas")
    with pytest.raises(SettingsError, match="ADMIN_IDS") as error:
        load_settings(env_file=None)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PROGRAM_QUOTA", "sepuluh ribu"),
        ("PROGRAM_PREMIUM_IDR", "0"),
        ("PROGRAM_MAX_DESIL", "11"),
        ("PROGRAM_REGION_CODE", "32-75"),
        ("DATABASE_URL", "mysql://localhost/rentan"),
        ("TELEGRAM_API_URL", "api.telegram.org"),
        # eligibility.Rules refuses 0: it would fail every assessment instead of start-up.
        ("PROGRAM_NAME_MATCH_THRESHOLD", "0"),
    ],
)
def test_bad_value_fails_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A wrong value is reported as one line that starts the operator at the right variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings(env_file=None)
    message = str(error.value)
    assert variable in message
    assert "\n" not in message


def test_min_age_above_max_age_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An impossible age window is caught at start-up, not at the first worker."""
    monkeypatch.setenv("PROGRAM_MIN_AGE", "70")
    with pytest.raises(SettingsError, match="PROGRAM_MIN_AGE"):
        load_settings(env_file=None)


def test_dotted_region_code_is_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    """Operators may copy the code with Kemendagri's dots."""
    monkeypatch.setenv("PROGRAM_REGION_CODE", "32.16")
    assert load_settings(env_file=None).program_region_code == "3216"


def test_settings_are_read_from_a_dotenv_file(tmp_path: Path) -> None:
    """An optional .env file in the working directory is honoured."""
    (tmp_path / ".env").write_text("PROGRAM_QUOTA=500\n")
    assert load_settings().program_quota == 500


def test_missing_token_is_reported_by_name() -> None:
    """Asking for the token when none is set names TELEGRAM_BOT_TOKEN."""
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN"):
        load_settings(env_file=None).require_token()


def test_short_pii_secret_is_refused() -> None:
    """A guessable key would make the blind index brute-forceable."""
    with pytest.raises(SettingsError, match="PII_SECRET"):
        load_settings(env_file=None, pii_secret="short").require_pii_secret()


def test_cpu_affinity_keeps_the_bot_on_the_listed_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU_AFFINITY=N pins the process (the bot's loop and its SQLite thread share one CPU)."""
    available = sorted(os.sched_getaffinity(0))
    monkeypatch.setenv("CPU_AFFINITY", str(available[-1]))
    settings = load_settings(env_file=None)
    assert frozenset({available[-1]}) == settings.cpu_affinity
    try:
        apply_cpu_affinity(settings)
        assert os.sched_getaffinity(0) == {available[-1]}
    finally:
        os.sched_setaffinity(0, available)


def test_cpu_affinity_is_empty_by_default_and_refuses_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unset: the scheduler decides; a typo names the variable."""
    assert load_settings(env_file=None).cpu_affinity == frozenset()
    monkeypatch.setenv("CPU_AFFINITY", "satu")
    with pytest.raises(SettingsError, match="CPU_AFFINITY"):
        load_settings(env_file=None)


def test_missing_pii_secret_hint_sends_an_existing_installation_to_its_old_key() -> None:
    """Told to generate a new key, an operator with data would break every NIK lookup: the
    hint asks for the same key as before, generating only for a brand-new installation."""
    with pytest.raises(SettingsError, match="PII_SECRET") as raised:
        load_settings(env_file=None).require_pii_secret()
    message = str(raised.value)
    assert "same key as before" in message
    assert "brand-new installation" in message


@pytest.mark.parametrize(("configured", "pragma"), [(None, 1), ("NORMAL", 1), ("full", 2)])
async def test_sqlite_synchronous_setting_reaches_the_bot_connections(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, configured: str | None, pragma: int
) -> None:
    """SQLITE_SYNCHRONOUS=FULL makes every connection of the bot's engine sync each commit
    (PRAGMA synchronous 2); unset or NORMAL keeps 1."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'sync.db'}")
    monkeypatch.setenv("PII_SECRET", "synchronous-test-secret-0123456789")
    if configured is not None:
        monkeypatch.setenv("SQLITE_SYNCHRONOUS", configured)
    services = build_services(load_settings(env_file=None))
    try:
        async with services.database.engine.connect() as connection:
            found = (await connection.exec_driver_sql("PRAGMA synchronous")).scalar_one()
    finally:
        await services.database.dispose()
    assert found == pragma


def test_sqlite_synchronous_refuses_other_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    """OFF could corrupt the database on a power cut: only NORMAL and FULL are offered."""
    monkeypatch.setenv("SQLITE_SYNCHRONOUS", "OFF")
    with pytest.raises(SettingsError, match="SQLITE_SYNCHRONOUS"):
        load_settings(env_file=None)


def test_readme_states_what_a_power_cut_may_lose() -> None:
    """The README says what SQLite's synchronous=NORMAL risks and how to choose FULL."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    sentences = [s for s in readme.replace("\n", " ").split(". ") if "power cut" in s]
    assert any(
        "NORMAL" in s and "FULL" in s and "SQLITE_SYNCHRONOUS" in s and "corrupt" in s
        for s in sentences
    ), sentences


def test_desil_scale_is_read_once_from_the_environment_and_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PROGRAM_DESIL_SCALE defaults to nasional; provinsi and kabupaten_kota (any case, also
    written kabupaten/kota) reach the rules; settings built before a change keep the old scale
    (a restart picks it up); anything else is a one-line error naming the variable."""
    before = load_settings(env_file=None)
    assert before.eligibility_rules.desil_scale is DesilScale.NASIONAL
    for value, scale in [
        ("provinsi", DesilScale.PROVINSI),
        ("Kabupaten/Kota", DesilScale.KABUPATEN_KOTA),
        ("kabupaten_kota", DesilScale.KABUPATEN_KOTA),
    ]:
        monkeypatch.setenv("PROGRAM_DESIL_SCALE", value)
        assert load_settings(env_file=None).eligibility_rules.desil_scale is scale
    assert before.eligibility_rules.desil_scale is DesilScale.NASIONAL
    monkeypatch.setenv("PROGRAM_DESIL_SCALE", "kecamatan")
    with pytest.raises(SettingsError, match="PROGRAM_DESIL_SCALE: expected one of nasional"):
        load_settings(env_file=None)
