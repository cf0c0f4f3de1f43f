"""bot.config: file + environment loading, validation messages, secret hygiene."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
DOCS = ROOT / "docs" / "configuration.md"

SECRET = "xoxb-TOPSECRET-1234567890"
APP_SECRET = "xapp-TOPSECRET-0987654321"
PLAIN_SECRET = "s3cr3t-TOPSECRET-value"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray ./cohortbot.toml from wherever pytest was started."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def write(tmp_path: Path, text: str, name: str = "cohortbot.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None = None, *, environ: Mapping[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ)
    message = str(info.value)
    assert "\n" not in message, message
    return info.value


# ------------------------------------------------------------------ defaults and paths


def test_defaults_without_file_or_environment() -> None:
    s = load_settings(environ={})
    assert s.source_path is None
    assert s.database.url == "sqlite+aiosqlite:///cohortbot.db"
    assert s.bot.admins == []
    assert s.bot.default_timezone == "UTC"
    assert s.bot.command == "cohort"
    assert s.bot.log_level == "INFO"
    assert s.bot.log_format == "text"
    assert s.bot.retention_days == 90
    assert s.bot.questions_per_day == 5
    assert s.scheduler.horizon_days == 2
    assert s.scheduler.sweep_seconds == 60.0
    assert s.scheduler.late_grace_seconds == 120
    assert s.scheduler.batch_size == 100
    assert (s.terminal.user, s.terminal.channel) == ("ana", "general")
    assert s.slack.enabled is False
    assert s.slack.mode == "socket"
    assert s.slack.bot_token is None
    assert (s.slack.http_host, s.slack.http_port) == ("127.0.0.1", 3000)
    assert s.matrix.enabled is False
    assert s.matrix.device_name == "cohortbot"
    assert s.matrix.store_path == "matrix-store"
    assert s.matrix.command_prefix == "!"
    assert s.matrix.admin_power_level == 100
    assert s.enabled_platforms() == []


def test_settings_constructor_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTBOT_SCHEDULER__HORIZON_DAYS", "30")
    assert Settings().scheduler.horizon_days == 2


def test_implicit_cohortbot_toml_in_working_directory() -> None:
    Path("cohortbot.toml").write_text("[bot]\ncommand = 'mentors'\n", encoding="utf-8")
    s = load_settings(environ={})
    assert s.bot.command == "mentors"
    assert s.source_path == Path("cohortbot.toml")


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[terminal]\nuser = 'bea'\n", name="elsewhere.toml")
    s = load_settings(environ={"COHORTBOT_CONFIG": str(path)})
    assert s.terminal.user == "bea"
    assert s.source_path == path


def test_explicit_path_beats_config_env_and_cwd_file(tmp_path: Path) -> None:
    Path("cohortbot.toml").write_text("[terminal]\nuser = 'cwd'\n", encoding="utf-8")
    via_env = write(tmp_path, "[terminal]\nuser = 'env'\n", name="env.toml")
    explicit = write(tmp_path, "[terminal]\nuser = 'arg'\n", name="arg.toml")
    s = load_settings(explicit, environ={"COHORTBOT_CONFIG": str(via_env)})
    assert s.terminal.user == "arg"


def test_missing_explicit_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    err = config_error(missing, environ={})
    assert str(err) == f"config file not found: {missing}"


def test_missing_file_named_by_config_env(tmp_path: Path) -> None:
    missing = tmp_path / "gone.toml"
    err = config_error(environ={"COHORTBOT_CONFIG": str(missing)})
    assert str(err) == f"config file not found: {missing}"


def test_directory_is_not_a_config_file(tmp_path: Path) -> None:
    err = config_error(tmp_path, environ={})
    assert str(err) == f"config path is not a file: {tmp_path}"


@pytest.mark.parametrize(
    ("text", "line"),
    [("[bot]\ncommand = 'x'\nlog_level = = 'INFO'\n", 3), ("[slack\nenabled = true\n", 1)],
)
def test_malformed_toml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    err = config_error(path, environ={})
    assert str(err).startswith(f"invalid TOML in {path} at line {line}, column ")


def test_malformed_toml_does_not_echo_file_content(tmp_path: Path) -> None:
    path = write(tmp_path, f'[slack]\nbot_token = "{SECRET}\n')  # unterminated string
    err = config_error(path, environ={})
    assert SECRET not in str(err)
    assert "at line 2" in str(err)


def test_explicit_environ_ignores_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTBOT_CONFIG", str(tmp_path / "does-not-exist.toml"))
    monkeypatch.setenv("COHORTBOT_SLACK__HTTP_PORT", "4444")
    s = load_settings(environ={})
    assert s.slack.http_port == 3000
    assert s.source_path is None


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHORTBOT_SLACK__HTTP_PORT", "4444")
    assert load_settings().slack.http_port == 4444


# ------------------------------------------------------------------ example file


def test_example_file_loads_and_equals_defaults() -> None:
    example = load_settings(EXAMPLE, environ={})
    assert example.model_dump() == load_settings(environ={}).model_dump()
    assert example.enabled_platforms() == []


def _documented_keys(text: str) -> dict[str, set[str]]:
    """Keys per section in a TOML text, counting commented-out `# key = ...` lines too."""
    keys: dict[str, set[str]] = {}
    section = ""
    for line in text.splitlines():
        if m := re.fullmatch(r"\[(\w+)\]", line.strip()):
            section = m.group(1)
            keys[section] = set()
        elif section and (m := re.match(r"#?\s?(\w+) = ", line)):
            keys[section].add(m.group(1))
    return keys


def test_example_file_shows_every_setting() -> None:
    expected = {
        name: set(field.annotation.model_fields)  # type: ignore[union-attr]
        for name, field in Settings.model_fields.items()
    }
    assert _documented_keys(EXAMPLE.read_text(encoding="utf-8")) == expected


def test_example_file_has_no_live_secrets_and_platforms_off() -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for secret in ("bot_token", "app_token", "signing_secret", "client_id", "client_secret"):
        assert secret not in data["slack"]
    assert "password" not in data["matrix"]
    assert "access_token" not in data["matrix"]
    assert data["slack"]["enabled"] is False
    assert data["matrix"]["enabled"] is False


def test_docs_mention_every_key() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert f"[{name}]" in text
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            assert f"`{key}`" in text, f"{name}.{key} undocumented"


# ------------------------------------------------------------------ environment overrides


def test_environment_overrides_with_nesting_and_lists() -> None:
    s = load_settings(
        environ={
            "COHORTBOT_DATABASE__URL": "postgres://bot@db/cohorts",
            "COHORTBOT_BOT__ADMINS": '["terminal:ana", "matrix:@bea:example.org"]',
            "COHORTBOT_BOT__LOG_LEVEL": "debug",
            "COHORTBOT_SCHEDULER__SWEEP_SECONDS": "7.5",
            "COHORTBOT_SLACK__ENABLED": "true",
            "COHORTBOT_SLACK__BOT_TOKEN": SECRET,
            "COHORTBOT_SLACK__APP_TOKEN": APP_SECRET,
            "COHORTBOT_TEST_POSTGRES_URL": "postgresql://unrelated",  # not a config key
        }
    )
    assert s.database.url == "postgresql+psycopg://bot@db/cohorts"
    assert s.bot.admins == ["terminal:ana", "matrix:@bea:example.org"]
    assert s.bot.log_level == "DEBUG"
    assert s.scheduler.sweep_seconds == 7.5
    assert s.slack.bot_token is not None
    assert s.slack.bot_token.get_secret_value() == SECRET
    assert s.enabled_platforms() == ["slack"]


def test_environment_beats_file_and_merges_per_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[scheduler]\nhorizon_days = 30\nbatch_size = 7\n[bot]\nadmins = ['slack:U1']\n",
    )
    s = load_settings(
        path,
        environ={"COHORTBOT_SCHEDULER__HORIZON_DAYS": "60", "COHORTBOT_BOT__ADMINS": "[]"},
    )
    assert s.scheduler.horizon_days == 60
    assert s.scheduler.batch_size == 7  # same section, untouched by the environment
    assert s.bot.admins == []


def test_empty_environment_variable_counts_as_unset(tmp_path: Path) -> None:
    path = write(tmp_path, "[terminal]\nuser = 'bea'\n")
    s = load_settings(path, environ={"COHORTBOT_TERMINAL__USER": "", "COHORTBOT_CONFIG": ""})
    assert s.terminal.user == "bea"


def test_environment_list_must_be_json() -> None:
    err = config_error(environ={"COHORTBOT_BOT__ADMINS": "slack:U1"})
    assert str(err) == (
        "config error: bot.admins: COHORTBOT_BOT__ADMINS must be a JSON list "
        """like '["slack:U0123"]'"""
    )
    assert err.key == "bot.admins"


def test_environment_section_must_be_json_object() -> None:
    err = config_error(environ={"COHORTBOT_SLACK": f"bot_token={SECRET}"})
    assert str(err) == "config error: slack: COHORTBOT_SLACK must be a JSON object"


def test_environment_error_names_the_variable() -> None:
    err = config_error(environ={"COHORTBOT_SLACK__HTTP_PORT": "eighty"})
    assert str(err) == (
        "config error: slack.http_port: must be an integer (got 'eighty') "
        "(from COHORTBOT_SLACK__HTTP_PORT)"
    )


# ------------------------------------------------------------------ unknown keys


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, "[slak]\nenabled = true\n"), environ={})
    assert str(err) == "config error: unknown key 'slak' (did you mean 'slack'?)"
    assert err.key == "slak"


def test_unknown_nested_key_does_not_show_its_value(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, f"[slack]\nbot_tokn = '{SECRET}'\n"), environ={})
    assert str(err) == ("config error: unknown key 'slack.bot_tokn' "
                        "(did you mean 'slack.bot_token'?)")


def test_unknown_nested_key_from_environment() -> None:
    err = config_error(environ={"COHORTBOT_SLACK__BOT_TOKN": SECRET})
    assert str(err) == ("config error: unknown key 'slack.bot_tokn' "
                        "(from COHORTBOT_SLACK__BOT_TOKN) (did you mean 'slack.bot_token'?)")


def test_file_cannot_pass_basesettings_init_options(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, "_cli_parse_args = true\n"), environ={})
    assert str(err) == "config error: unknown key '_cli_parse_args'"


# ------------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[bot]\ndefault_timezone = 'Mars/Olympus'",
            "config error: bot.default_timezone: unknown time zone 'Mars/Olympus' "
            "(use an IANA name like 'Europe/Lisbon')",
        ),
        (
            "[slack]\nhttp_port = 'eighty'",
            "config error: slack.http_port: must be an integer (got 'eighty')",
        ),
        (
            "[slack]\nhttp_port = 70000",
            "config error: slack.http_port: must be ≤ 65535 (got 70000)",
        ),
        (
            "[bot]\nlog_level = 'verbose'",
            "config error: bot.log_level: must be one of DEBUG, INFO, WARNING, ERROR "
            "(got 'verbose')",
        ),
        (
            "[bot]\nlog_format = 'xml'",
            "config error: bot.log_format: must be 'text' or 'json' (got 'xml')",
        ),
        (
            "[bot]\ncommand = 'Cohort Bot'",
            "config error: bot.command: must be one word of lowercase letters, digits and '-', "
            "starting with a letter (got 'Cohort Bot')",
        ),
        (
            "[bot]\nadmins = ['slack:U1', 'ana']",
            "config error: bot.admins[1]: expected 'platform:id' like 'slack:U0123' or "
            "'matrix:@ana:example.org'",
        ),
        (
            "[bot]\nretention_days = 0",
            "config error: bot.retention_days: must be ≥ 1 (got 0)",
        ),
        (
            "[scheduler]\nhorizon_days = 400",
            "config error: scheduler.horizon_days: must be ≤ 90 (got 400)",
        ),
        (
            "[scheduler]\nsweep_seconds = 1",
            "config error: scheduler.sweep_seconds: must be ≥ 5 (got 1)",
        ),
        (
            "[matrix]\nuser_id = 'cohortbot'",
            "config error: matrix.user_id: expected '@name:server' like "
            "'@cohortbot:example.org' (got 'cohortbot')",
        ),
        (
            "[matrix]\nhomeserver = 'matrix.example.org'",
            "config error: matrix.homeserver: expected an http:// or https:// URL "
            "(got 'matrix.example.org')",
        ),
        ("database = 'sqlite:///x.db'", "config error: database: must be a table"),
    ],
)
def test_bad_value_names_the_key(tmp_path: Path, toml: str, message: str) -> None:
    err = config_error(write(tmp_path, toml + "\n"), environ={})
    assert str(err) == message


def test_further_errors_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "[scheduler]\nhorizon_days = 400\nbatch_size = 0\n[bot]\ncommand = ''\n")
    err = config_error(path, environ={})
    assert str(err) == "config error: bot.command: " + (
        "must be one word of lowercase letters, digits and '-', starting with a letter "
        "(got '') (+2 more)"
    )


def test_unknown_admin_platform(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, "[bot]\nadmins = ['discord:ana']\n"), environ={})
    assert str(err).startswith("config error: bot.admins[0]: unknown platform 'discord'")


TOKEN_KEY = "q0bX3kT2l9sLwq0nR8m6Jc1Yb4Vd7Hf2Ue5Kp8Zs3Ao="
OAUTH = (f"[slack]\nclient_id = '1.2'\nclient_secret = 'sh'\ntoken_key = '{TOKEN_KEY}'\n")


def test_with_oauth_installs_a_slack_admin_names_the_workspace(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, OAUTH + "[bot]\nadmins = ['matrix:@a:x.org', "
                             "'slack:U0ADA']\n"), environ={})
    assert str(err) == ("config error: bot.admins[1]: with OAuth installs, name the admin's "
                        "workspace: 'slack:T0123:U0ADA'")
    assert err.key == "bot.admins[1]"


@pytest.mark.parametrize(("oauth", "entry", "tenant"), [
    (False, "slack:U0ADA", "slack"),
    (False, "slack:T0ONE:U0ADA", "slack"),  # one bot token: its one workspace
    (True, "slack:T0ONE:U0ADA", "slack:T0ONE"),
    (True, "slack:E0ORG:T0ONE:U0ADA", "slack:E0ORG:T0ONE"),
    (True, "matrix:@ana:example.org", "matrix"),
    (False, "terminal:ana", "terminal"),
])
def test_a_configured_admin_rules_one_tenant(tmp_path: Path, oauth: bool, entry: str,
                                             tenant: str) -> None:
    from bot.bootstrap import policy_from
    from bot.domain.refs import UserRef
    from bot.service.api import Admin

    s = load_settings(write(tmp_path, (OAUTH if oauth else "") + f"[bot]\nadmins = "
                            f"['{entry}']\n"), environ={})
    [admin] = policy_from(s).admins
    ident = entry.rsplit(":", 1)[-1] if entry.startswith("slack:") else entry.split(":", 1)[1]
    assert admin == Admin(UserRef(entry.split(":", 1)[0], ident), tenant)
    assert policy_from(s).is_admin(admin.user, tenant)
    assert not policy_from(s).is_admin(admin.user, "slack:T0OTHER")


# ------------------------------------------------------------------ database URL


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite+aiosqlite:///cohortbot.db", "sqlite+aiosqlite:///cohortbot.db"),
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("sqlite:////data/cohortbot.db", "sqlite+aiosqlite:////data/cohortbot.db"),
        ("postgresql://bot@db:5432/cohorts", "postgresql+psycopg://bot@db:5432/cohorts"),
        ("postgres://bot@db/cohorts", "postgresql+psycopg://bot@db/cohorts"),
        ("postgresql+psycopg://bot@db/cohorts", "postgresql+psycopg://bot@db/cohorts"),
    ],
)
def test_database_url_is_normalised(given: str, expected: str) -> None:
    assert load_settings(environ={"COHORTBOT_DATABASE__URL": given}).database.url == expected


@pytest.mark.parametrize(
    "url", [f"mysql://bot:{PLAIN_SECRET}@db/x", f"postgresql+asyncpg://bot:{PLAIN_SECRET}@db/x"]
)
def test_unsupported_database_url_never_shows_the_url(url: str) -> None:
    err = config_error(environ={"COHORTBOT_DATABASE__URL": url})
    assert str(err).startswith("config error: database.url: unsupported scheme ")
    assert PLAIN_SECRET not in str(err)


def test_database_url_without_scheme() -> None:
    err = config_error(environ={"COHORTBOT_DATABASE__URL": "cohortbot.db"})
    assert str(err).startswith("config error: database.url: expected a URL like ")


# ------------------------------------------------------------------ platforms


def test_slack_socket_mode_requires_bot_token(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, "[slack]\nenabled = true\n"), environ={})
    assert str(err) == (
        "config error: slack.bot_token: required when slack.enabled = true "
        "(set it in the file or COHORTBOT_SLACK__BOT_TOKEN) (+1 more)"
    )
    assert err.key == "slack.bot_token"


def test_slack_socket_mode_requires_app_token() -> None:
    err = config_error(
        environ={"COHORTBOT_SLACK__ENABLED": "1", "COHORTBOT_SLACK__BOT_TOKEN": SECRET}
    )
    assert str(err).startswith("config error: slack.app_token: required when slack.enabled")
    assert "COHORTBOT_SLACK__APP_TOKEN" in str(err)
    assert SECRET not in str(err)


def test_slack_http_mode_requires_signing_secret() -> None:
    err = config_error(
        environ={
            "COHORTBOT_SLACK__ENABLED": "true",
            "COHORTBOT_SLACK__MODE": "http",
            "COHORTBOT_SLACK__BOT_TOKEN": SECRET,
        }
    )
    assert str(err).startswith("config error: slack.signing_secret: required when")
    assert "slack.mode = 'http'" in str(err)


def test_slack_http_mode_complete() -> None:
    s = load_settings(
        environ={
            "COHORTBOT_SLACK__ENABLED": "true",
            "COHORTBOT_SLACK__MODE": "http",
            "COHORTBOT_SLACK__BOT_TOKEN": SECRET,
            "COHORTBOT_SLACK__SIGNING_SECRET": PLAIN_SECRET,
            "COHORTBOT_SLACK__HTTP_PORT": "8080",
            "COHORTBOT_SLACK__API_BASE_URL": "http://127.0.0.1:9999/api",
        }
    )
    assert s.slack.mode == "http"
    assert s.slack.http_port == 8080
    assert s.slack.api_base_url == "http://127.0.0.1:9999/api/"
    assert s.slack.app_token is None


def test_slack_oauth_replaces_bot_token() -> None:
    s = load_settings(
        environ={
            "COHORTBOT_SLACK__ENABLED": "true",
            "COHORTBOT_SLACK__MODE": "http",
            "COHORTBOT_SLACK__SIGNING_SECRET": PLAIN_SECRET,
            "COHORTBOT_SLACK__CLIENT_ID": "123.456",
            "COHORTBOT_SLACK__CLIENT_SECRET": PLAIN_SECRET,
            "COHORTBOT_SLACK__TOKEN_KEY": TOKEN_KEY,
        }
    )
    assert s.slack.bot_token is None
    assert s.slack.oauth is True


def test_slack_oauth_needs_a_token_key_named_with_its_variable() -> None:
    err = config_error(environ={"COHORTBOT_SLACK__CLIENT_ID": "1.2",
                                "COHORTBOT_SLACK__CLIENT_SECRET": PLAIN_SECRET})
    assert str(err).startswith("config error: slack.token_key: required when slack.client_id "
                               "is set")
    assert "COHORTBOT_SLACK__TOKEN_KEY" in str(err) and "cohortbot new-key" in str(err)
    err = config_error(environ={"COHORTBOT_SLACK__TOKEN_KEY": "not-a-key"})
    assert str(err).startswith("config error: slack.token_key: is not a key made by "
                               "'cohortbot new-key'")
    assert "not-a-key" not in str(err)


def test_slack_client_id_needs_client_secret() -> None:
    err = config_error(environ={"COHORTBOT_SLACK__CLIENT_ID": "123.456"})
    assert str(err) == ("config error: slack.client_secret: required when slack.client_id is set")


@pytest.mark.parametrize(
    ("var", "value", "key", "prefix"),
    [
        ("COHORTBOT_SLACK__BOT_TOKEN", "xoxp-TOPSECRET-user-token", "slack.bot_token", "xoxb-"),
        ("COHORTBOT_SLACK__APP_TOKEN", SECRET, "slack.app_token", "xapp-"),
    ],
)
def test_slack_token_prefix_checked_without_echo(
    var: str, value: str, key: str, prefix: str
) -> None:
    err = config_error(environ={var: value})
    assert str(err) == f"config error: {key}: must start with {prefix!r} (from {var})"
    assert "TOPSECRET" not in str(err)


def test_matrix_requires_homeserver_user_and_credentials(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, "[matrix]\nenabled = true\n"), environ={})
    assert str(err) == (
        "config error: matrix.homeserver: required when matrix.enabled = true "
        "(set it in the file or COHORTBOT_MATRIX__HOMESERVER) (+3 more)"
    )
    assert [line.split(":")[1] for line in err.problems] == [
        " matrix.homeserver", " matrix.user_id", " matrix.access_token", " matrix.store_key"]
    err = config_error(
        write(tmp_path, "[matrix]\nenabled = true\nhomeserver = 'https://m.example.org'\n"),
        environ={},
    )
    assert str(err).startswith("config error: matrix.user_id: required when matrix.enabled")
    err = config_error(
        write(
            tmp_path,
            "[matrix]\nenabled = true\nhomeserver = 'https://m.example.org'\n"
            "user_id = '@cohortbot:example.org'\n",
        ),
        environ={},
    )
    assert str(err).startswith("config error: matrix.access_token: required when")
    assert "matrix.password" in str(err)


STORE_KEY = "0123456789abcdef-store"
MATRIX_ON = ("[matrix]\nenabled = true\nhomeserver = 'https://m.example.org'\n"
             "user_id = '@cohortbot:example.org'\n")


def test_matrix_requires_a_store_key(tmp_path: Path) -> None:
    err = config_error(write(tmp_path, MATRIX_ON),
                       environ={"COHORTBOT_MATRIX__PASSWORD": PLAIN_SECRET})
    assert str(err) == (
        "config error: matrix.store_key: required when matrix.enabled = true: the encryption "
        "store is sealed with it (make one with 'cohortbot new-key'; set it in the file or "
        "COHORTBOT_MATRIX__STORE_KEY)"
    )
    assert "\n" not in str(err)


def test_check_config_names_the_missing_store_key(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import main

    path = write(tmp_path, MATRIX_ON + f"password = '{PLAIN_SECRET}'\n")
    result = CliRunner().invoke(main, ["--config", str(path), "check-config"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "config error: matrix.store_key: required when matrix.enabled = true: the encryption "
        "store is sealed with it (make one with 'cohortbot new-key'; set it in the file or "
        "COHORTBOT_MATRIX__STORE_KEY)"]


@pytest.mark.parametrize("key", ["short", "0123456789abcdef,short", " , "])
def test_matrix_store_key_at_least_16_characters_each(tmp_path: Path, key: str) -> None:
    err = config_error(write(tmp_path, MATRIX_ON), environ={
        "COHORTBOT_MATRIX__PASSWORD": PLAIN_SECRET, "COHORTBOT_MATRIX__STORE_KEY": key})
    assert str(err).startswith("config error: matrix.store_key: ")
    assert "cohortbot new-key" in str(err) and "COHORTBOT_MATRIX__STORE_KEY" in str(err)


def test_matrix_store_keys_while_rotating(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, MATRIX_ON), environ={
        "COHORTBOT_MATRIX__PASSWORD": PLAIN_SECRET,
        "COHORTBOT_MATRIX__STORE_KEY": f"{STORE_KEY}-new, {STORE_KEY}-old"})
    assert s.matrix.store_key is not None
    assert s.redacted()["matrix"]["store_key"] == "***"


def test_matrix_enabled_with_password(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[matrix]\nenabled = true\nhomeserver = 'https://m.example.org/'\n"
        "user_id = '@cohortbot:example.org'\n",
    )
    s = load_settings(path, environ={"COHORTBOT_MATRIX__PASSWORD": PLAIN_SECRET,
                                     "COHORTBOT_MATRIX__STORE_KEY": STORE_KEY})
    assert s.matrix.homeserver == "https://m.example.org"
    assert s.enabled_platforms() == ["matrix"]


# ------------------------------------------------------------------ secrets


def _all_secrets_env() -> dict[str, str]:
    return {
        "COHORTBOT_DATABASE__URL": f"postgresql://bot:{PLAIN_SECRET}@db/cohorts",
        "COHORTBOT_SLACK__ENABLED": "true",
        "COHORTBOT_SLACK__BOT_TOKEN": SECRET,
        "COHORTBOT_SLACK__APP_TOKEN": APP_SECRET,
        "COHORTBOT_SLACK__SIGNING_SECRET": PLAIN_SECRET,
        "COHORTBOT_SLACK__CLIENT_ID": PLAIN_SECRET + "-id",
        "COHORTBOT_SLACK__CLIENT_SECRET": PLAIN_SECRET + "-cs",
        "COHORTBOT_SLACK__STATE_SECRET": PLAIN_SECRET + "-ss",
        "COHORTBOT_SLACK__TOKEN_KEY": TOKEN_KEY,
        "COHORTBOT_MATRIX__ENABLED": "true",
        "COHORTBOT_MATRIX__HOMESERVER": "https://m.example.org",
        "COHORTBOT_MATRIX__USER_ID": "@cohortbot:example.org",
        "COHORTBOT_MATRIX__PASSWORD": PLAIN_SECRET + "-pw",
        "COHORTBOT_MATRIX__ACCESS_TOKEN": PLAIN_SECRET + "-at",
        "COHORTBOT_MATRIX__STORE_KEY": PLAIN_SECRET + "-store-key",
    }


def test_redacted_hides_every_secret() -> None:
    s = load_settings(environ=_all_secrets_env())
    data = s.redacted()
    assert "TOPSECRET" not in repr(data)
    assert data["database"]["url"] == "postgresql+psycopg://bot:***@db/cohorts"
    for key in ("bot_token", "app_token", "signing_secret", "client_id", "client_secret"):
        assert data["slack"][key] == "***"
    assert data["slack"]["state_secret"] == "***"
    assert data["slack"]["token_key"] == "***"
    assert TOKEN_KEY not in repr(data)
    assert data["matrix"]["password"] == "***"
    assert data["matrix"]["access_token"] == "***"
    assert data["matrix"]["store_key"] == "***"
    assert data["matrix"]["user_id"] == "@cohortbot:example.org"
    assert s.enabled_platforms() == ["slack", "matrix"]
    # the real values are still there for the adapters
    assert isinstance(s.slack.bot_token, SecretStr)
    assert s.slack.bot_token.get_secret_value() == SECRET


def test_redacted_unset_secrets_are_none() -> None:
    data = load_settings(environ={}).redacted()
    assert data["slack"]["bot_token"] is None
    assert data["matrix"]["password"] is None
    assert data["scheduler"] == {
        "horizon_days": 2,
        "sweep_seconds": 60.0,
        "late_grace_seconds": 120,
        "batch_size": 100,
    }


def test_repr_of_settings_hides_secrets() -> None:
    s = load_settings(environ=_all_secrets_env())
    assert SECRET not in repr(s)
    assert SECRET not in str(s)


@pytest.mark.parametrize(
    "override",
    [
        {"COHORTBOT_SLACK__MODE": "carrier-pigeon"},  # error elsewhere in the same section
        {"COHORTBOT_SLACK__HTTP_PORT": "x"},
        {"COHORTBOT_SLACK__BOT_TOKN": SECRET},
        {"COHORTBOT_SLACK__BOT_TOKEN": "wrong-" + SECRET},
        {"COHORTBOT_SLACK__APP_TOKEN": "wrong-" + APP_SECRET},
        {"COHORTBOT_SLACK__SIGNING_SECRET": '{"not": "a string"}', "COHORTBOT_SLACK": "{"},
        {"COHORTBOT_MATRIX__PASSWORD": "", "COHORTBOT_MATRIX__ACCESS_TOKEN": ""},
        {"COHORTBOT_MATRIX__USER_ID": "nobody"},
        {"COHORTBOT_DATABASE__URL": f"oracle://bot:{PLAIN_SECRET}@db/x"},
    ],
)
def test_secrets_never_in_error_messages(override: dict[str, str]) -> None:
    env = {**_all_secrets_env(), **override}
    err = config_error(environ=env)
    assert "TOPSECRET" not in str(err)
    assert err.__cause__ is None  # nothing carrying raw input chained onto the error
    assert err.__suppress_context__


def test_secret_of_wrong_type_in_file_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "[matrix]\npassword = 1234567890\n")
    err = config_error(path, environ={})
    assert str(err) == "config error: matrix.password: must be a string"


def test_a_short_question_secret_is_refused_without_showing_it() -> None:
    err = config_error(environ={"COHORTBOT_BOT__QUESTION_SECRET": "tooshort"})
    assert str(err) == ("config error: bot.question_secret: must be at least 16 characters "
                        "(make one with 'cohortbot new-key') (from COHORTBOT_BOT__QUESTION_SECRET)")
    assert "tooshort" not in str(err)
