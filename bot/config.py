"""Configuration: one TOML file plus ``COHORTBOT_*`` environment overrides.

The only entry point is :func:`load_settings`. It resolves the config file, reads it with
pydantic-settings' ``TomlConfigSettingsSource``, reads environment overrides (prefix
``COHORTBOT_``, ``__`` between nesting levels) from an explicit mapping, lets the
environment win, and validates everything at once. Any problem becomes a
:class:`ConfigError` whose text is one line naming the offending key and never containing
a secret.

``Settings()`` on its own reads nothing (no file, no process environment): it is the
all-defaults configuration. Nothing in this module runs at import time.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

__all__ = [
    "BotSettings",
    "ConfigError",
    "DatabaseSettings",
    "MatrixSettings",
    "SchedulerSettings",
    "Settings",
    "SlackSettings",
    "TerminalSettings",
    "load_settings",
]

ENV_PREFIX = "COHORTBOT_"
ENV_NESTED_DELIMITER = "__"
CONFIG_PATH_ENV = "COHORTBOT_CONFIG"
DEFAULT_CONFIG_FILE = "cohortbot.toml"
PLATFORMS = ("slack", "matrix", "terminal")
REDACTED = "***"

# Every section forbids unknown keys (a typo is an error, not a silently ignored line) and
# keeps input values out of pydantic's own error text, in case anything ever prints it.
_SECTION_CONFIG = ConfigDict(extra="forbid", hide_input_in_errors=True)


class ConfigError(Exception):
    """The configuration cannot be used. ``str(error)`` is one line, safe to print: the
    first problem, and how many more there are.

    ``key`` is the dotted config key at fault (``"slack.bot_token"``) when there is one.
    ``problems`` holds every problem found, one safe line each (the first is ``message``
    without the count).
    """

    def __init__(self, message: str, *, key: str | None = None,
                 problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.problems = problems or (message,)


def _rule(field: str, reason: str) -> PydanticCustomError:
    """A cross-field rule broken in a section; reported as ``<section>.<field>: <reason>``."""
    return PydanticCustomError(
        "config_rule", "{field}: {reason}", {"field": field, "reason": reason}
    )


def _broken(rules: list[PydanticCustomError]) -> None:
    """Raise every broken rule of a section at once (pydantic takes one error per
    validator: the others ride along in its context, see `_lines`)."""
    if rules:
        first = dict(rules[0].context or {})
        raise PydanticCustomError("config_rule", "{field}: {reason}", {
            **first, "more": [dict(r.context or {}) for r in rules[1:]]})


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.replace(".", ENV_NESTED_DELIMITER).upper()


def _required_when_enabled(section: str, field: str) -> PydanticCustomError:
    key = f"{section}.{field}"
    return _rule(
        field,
        f"required when {section}.enabled = true (set it in the file or {_env_name(key)})",
    )


# --------------------------------------------------------------------------- [database]

_SQLITE_ASYNC = "sqlite+aiosqlite"
_POSTGRES_ASYNC = "postgresql+psycopg"
_SCHEME_REWRITES = {
    "sqlite": _SQLITE_ASYNC,
    _SQLITE_ASYNC: _SQLITE_ASYNC,
    "postgres": _POSTGRES_ASYNC,
    "postgresql": _POSTGRES_ASYNC,
    _POSTGRES_ASYNC: _POSTGRES_ASYNC,
}


def normalise_database_url(url: str) -> str:
    """Rewrite a SQLite/PostgreSQL URL to the async driver cohortbot uses.

    The error text names the scheme only: a database URL may carry a password.
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        raise ValueError(
            "expected a URL like 'sqlite:///cohortbot.db' or 'postgresql://user@host/db'"
        )
    target = _SCHEME_REWRITES.get(scheme.lower())
    if target is None:
        raise ValueError(
            f"unsupported scheme {scheme!r}: use sqlite:///path.db, "
            "sqlite+aiosqlite:///path.db or postgresql://user@host/db"
        )
    return f"{target}://{rest}"


def _mask_url_password(url: str) -> str:
    """``postgresql+psycopg://ana:pw@db/x`` → ``postgresql+psycopg://ana:***@db/x``."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{hostinfo}"))


class DatabaseSettings(BaseModel):
    model_config = _SECTION_CONFIG

    #: Normalised async SQLAlchemy URL (``sqlite+aiosqlite://…`` or ``postgresql+psycopg://…``).
    url: str = "sqlite+aiosqlite:///cohortbot.db"

    @field_validator("url")
    @classmethod
    def _normalise(cls, value: str) -> str:
        return normalise_database_url(value)


# --------------------------------------------------------------------------- [bot]


def _check_admin(value: str) -> str:
    example = "expected 'platform:id' like 'slack:U0123' or 'matrix:@ana:example.org'"
    platform, sep, ident = value.strip().partition(":")
    if not sep or not platform or not ident:
        raise ValueError(example)
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; {example}")
    return f"{platform}:{ident}"


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_COMMAND_RE = re.compile(r"[a-z][a-z0-9-]*")


class BotSettings(BaseModel):
    model_config = _SECTION_CONFIG

    admins: list[Annotated[str, AfterValidator(_check_admin)]] = Field(default_factory=list)
    default_timezone: str = "UTC"
    command: str = "cohort"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    #: Days after a cohort is archived before its actions and check-in notes are deleted.
    retention_days: int = Field(default=90, ge=1, le=3650)
    questions_per_day: int = Field(default=5, ge=1, le=100)
    #: The secret behind the keyed hashes of anonymous questions (bot/service/anonymity.py).
    #: Keep it out of database backups; several instances must share it. Unset: read from
    #: `question_secret_file`, else from a file beside the SQLite database (made on first
    #: start, mode 0600), else (PostgreSQL) a new one each start.
    question_secret: SecretStr | None = None
    question_secret_file: str | None = None
    #: Commands one person may send a minute; more get "slow down" and are not run.
    commands_per_minute: int = Field(default=30, ge=1, le=1_000_000)
    #: Messages one person's commands may send to other people an hour (swap requests, …).
    messages_to_others_per_hour: int = Field(default=5, ge=1, le=1000)

    @field_validator("question_secret")
    @classmethod
    def _check_question_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (make one with 'cohortbot "
                             "new-key')")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like 'Europe/Lisbon')"
            ) from None
        return value

    @field_validator("command")
    @classmethod
    def _check_command(cls, value: str) -> str:
        if not _COMMAND_RE.fullmatch(value):
            raise ValueError(
                f"must be one word of lowercase letters, digits and '-', starting with a "
                f"letter (got {value!r})"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)} (got {value!r})")
        return level


# --------------------------------------------------------------------------- [scheduler]


class SchedulerSettings(BaseModel):
    model_config = _SECTION_CONFIG

    #: How many days ahead notifications are planned (each session's next step is stored
    #: once it falls due within this horizon; planning runs hourly).
    horizon_days: int = Field(default=2, ge=1, le=90)
    #: Seconds between sweeps for due notifications.
    sweep_seconds: float = Field(default=60.0, ge=5, le=3600)
    #: A notification sent more than this many seconds after its due time is marked late.
    late_grace_seconds: int = Field(default=120, ge=0)
    #: Most due notifications handled per sweep.
    batch_size: int = Field(default=100, ge=1, le=10_000)


# --------------------------------------------------------------------------- [terminal]


class TerminalSettings(BaseModel):
    model_config = _SECTION_CONFIG

    user: str = Field(default="ana", min_length=1)
    channel: str = Field(default="general", min_length=1)


# --------------------------------------------------------------------------- [slack]


def _check_prefix(value: SecretStr | None, prefix: str) -> SecretStr | None:
    if value is not None and not value.get_secret_value().startswith(prefix):
        # Never echo the value: it is (probably) a real credential, just the wrong kind.
        raise ValueError(f"must start with {prefix!r}")
    return value


def _check_http_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL (got {value!r})")
    return value


def _check_fernet_keys(keys: str) -> None:
    """Each comma-separated key must be a Fernet key (what `cohortbot new-key` prints)."""
    try:
        from cryptography.fernet import Fernet
    except ImportError:
        raise ValueError("needs the 'cryptography' package (pip install 'cohortbot[slack]')"
                         ) from None
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    if not parts:
        raise ValueError("is empty (make a key with 'cohortbot new-key')")
    for part in parts:
        try:
            Fernet(part.encode())
        except (ValueError, TypeError):
            raise ValueError("is not a key made by 'cohortbot new-key' (32 random bytes, "
                             "url-safe base64)") from None


class SlackSettings(BaseModel):
    model_config = _SECTION_CONFIG

    enabled: bool = False
    mode: Literal["socket", "http"] = "socket"
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=3000, ge=1, le=65535)
    api_base_url: str | None = None
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    state_secret: SecretStr | None = None
    #: Seals the OAuth installs' bot tokens in the database (Fernet; `cohortbot new-key`
    #: makes one). Several, comma-separated, while rotating: the first seals, any opens.
    token_key: SecretStr | None = None

    @field_validator("token_key")
    @classmethod
    def _check_token_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_fernet_keys(value.get_secret_value())
        return value

    @field_validator("bot_token")
    @classmethod
    def _check_bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_prefix(value, "xoxb-")

    @field_validator("app_token")
    @classmethod
    def _check_app_token(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_prefix(value, "xapp-")

    @field_validator("api_base_url")
    @classmethod
    def _check_api_base_url(cls, value: str | None) -> str | None:
        # slack_sdk joins method names onto this with urljoin: it must end with "/".
        checked = _check_http_url(value)
        return checked if checked is None or checked.endswith("/") else checked + "/"

    @property
    def oauth(self) -> bool:
        """True when OAuth (multi-workspace install) is configured."""
        return self.client_id is not None and self.client_secret is not None

    @model_validator(mode="after")
    def _required_when_enabled(self) -> Self:
        broken: list[PydanticCustomError] = []
        if self.client_id is not None and self.client_secret is None:
            broken.append(_rule("client_secret", "required when slack.client_id is set"))
        if self.client_secret is not None and self.client_id is None:
            broken.append(_rule("client_id", "required when slack.client_secret is set"))
        if self.oauth and self.token_key is None:
            broken.append(_rule(
                "token_key",
                "required when slack.client_id is set: installs' tokens are stored sealed "
                f"with it (make one with 'cohortbot new-key'; set it in the file or "
                f"{_env_name('slack.token_key')})"))
        if self.enabled and self.bot_token is None and not self.oauth:
            broken.append(_required_when_enabled("slack", "bot_token"))
        if self.enabled and self.mode == "socket" and self.app_token is None:
            broken.append(_rule(
                "app_token",
                "required when slack.enabled = true and slack.mode = 'socket' "
                f"(set it in the file or {_env_name('slack.app_token')})",
            ))
        if self.enabled and self.mode == "http" and self.signing_secret is None:
            broken.append(_rule(
                "signing_secret",
                "required when slack.enabled = true and slack.mode = 'http' "
                f"(set it in the file or {_env_name('slack.signing_secret')})",
            ))
        _broken(broken)
        return self


# --------------------------------------------------------------------------- [matrix]

_MATRIX_USER_RE = re.compile(r"@[^:\s]+:\S+")


class MatrixSettings(BaseModel):
    model_config = _SECTION_CONFIG

    enabled: bool = False
    homeserver: str | None = None
    user_id: str | None = None
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    device_name: str = Field(default="cohortbot", min_length=1)
    store_path: str = Field(default="matrix-store", min_length=1)
    command_prefix: str = Field(default="!", min_length=1, max_length=8)
    admin_power_level: int = 100
    #: Seals the encryption keys in matrix-nio's store under `store_path` (at least 16
    #: characters; `cohortbot new-key` makes one). Several, comma-separated, while rotating:
    #: the first seals, the others open a store sealed before (re-sealed at start).
    store_key: SecretStr | None = None
    #: Share room keys only with members' devices their owner signed (cross-signing), as
    #: Element does by default; false also sends to devices nobody vouched for.
    exclude_insecure_devices: bool = True

    @field_validator("store_key")
    @classmethod
    def _check_store_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if not keys:
            raise ValueError("is empty (make a key with 'cohortbot new-key')")
        if any(len(k) < 16 for k in keys):
            raise ValueError("each key must be at least 16 characters (make one with "
                             "'cohortbot new-key')")
        return value

    @field_validator("homeserver")
    @classmethod
    def _check_homeserver(cls, value: str | None) -> str | None:
        checked = _check_http_url(value)
        return None if checked is None else checked.rstrip("/")

    @field_validator("user_id")
    @classmethod
    def _check_user_id(cls, value: str | None) -> str | None:
        if value is not None and not _MATRIX_USER_RE.fullmatch(value):
            raise ValueError(
                f"expected '@name:server' like '@cohortbot:example.org' (got {value!r})"
            )
        return value

    @field_validator("command_prefix")
    @classmethod
    def _check_command_prefix(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise ValueError(f"must not contain spaces (got {value!r})")
        return value

    @model_validator(mode="after")
    def _required_when_enabled(self) -> Self:
        if not self.enabled:
            return self
        broken: list[PydanticCustomError] = []
        if self.homeserver is None:
            broken.append(_required_when_enabled("matrix", "homeserver"))
        if self.user_id is None:
            broken.append(_required_when_enabled("matrix", "user_id"))
        if self.password is None and self.access_token is None:
            broken.append(_rule(
                "access_token",
                "required when matrix.enabled = true, unless matrix.password is set "
                f"(set one in the file or {_env_name('matrix.access_token')} / "
                f"{_env_name('matrix.password')})",
            ))
        if self.store_key is None:
            broken.append(_rule(
                "store_key",
                "required when matrix.enabled = true: the encryption store is sealed with it "
                f"(make one with 'cohortbot new-key'; set it in the file or "
                f"{_env_name('matrix.store_key')})",
            ))
        _broken(broken)
        return self


# --------------------------------------------------------------------------- Settings


def _redact(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


class OpsSettings(BaseModel):
    """`/healthz` and `/metrics` for operators (off unless enabled)."""

    model_config = _SECTION_CONFIG

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)  # 0: any free port (tests)


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_ignore_empty=True,
        case_sensitive=False,
        extra="forbid",
        hide_input_in_errors=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    bot: BotSettings = Field(default_factory=BotSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    terminal: TerminalSettings = Field(default_factory=TerminalSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    matrix: MatrixSettings = Field(default_factory=MatrixSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)

    _source_path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _admins_name_their_workspace(self) -> Self:
        # With OAuth installs every workspace is a tenant of its own: an admin rules one.
        broken: list[PydanticCustomError] = []
        if self.slack.oauth and self.slack.bot_token is None:
            for i, entry in enumerate(self.bot.admins):
                platform, _, ident = entry.partition(":")
                if platform == "slack" and ":" not in ident:
                    broken.append(_rule(f"bot.admins[{i}]", "with OAuth installs, name the "
                                        f"admin's workspace: 'slack:T0123:{ident}'"))
        _broken(broken)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the values load_settings() passes in. The file and the environment are read
        # there, per call, because this hook has no way to receive a path or a mapping; the
        # default env source would read the real os.environ behind a test's back.
        return (init_settings,)

    @property
    def source_path(self) -> Path | None:
        """The config file these settings were read from (None: defaults/environment only)."""
        return self._source_path

    def enabled_platforms(self) -> list[str]:
        """Chat platforms switched on in the config, in a fixed order (slack, matrix).

        The terminal adapter is not listed: it is started explicitly, never by config.
        """
        return [name for name in ("slack", "matrix") if getattr(self, name).enabled]

    def redacted(self) -> dict[str, Any]:
        """The whole config as plain data; every secret is ``"***"`` if set, else None.

        A password inside ``database.url`` is masked the same way.
        """
        data: dict[str, Any] = _redact(self.model_dump(mode="python"))
        data["database"]["url"] = _mask_url_password(self.database.url)
        return data


# --------------------------------------------------------------------------- loading


class _MappingEnvSettingsSource(EnvSettingsSource):
    """pydantic-settings' env source, reading a given mapping instead of ``os.environ``.

    EnvSettingsSource has no public parameter for this (it always reads os.environ), so the
    one hook it has, ``_load_env_vars``, is overridden; prefix, ``__`` nesting, JSON for
    lists and case-insensitivity all still come from the library.
    """

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # before super().__init__, which calls _load_env_vars()
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        keyed = (
            {k: v for k, v in self._environ.items()}
            if self.case_sensitive
            else {k.lower(): v for k, v in self._environ.items()}
        )
        if self.env_ignore_empty:
            return {k: v for k, v in keyed.items() if v != ""}
        return keyed


def _resolve_path(path: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    if path is not None:
        explicit: Path | None = Path(path).expanduser()
    elif environ.get(CONFIG_PATH_ENV):
        explicit = Path(environ[CONFIG_PATH_ENV]).expanduser()
    else:
        explicit = None
    if explicit is None:
        implicit = Path(DEFAULT_CONFIG_FILE)
        return implicit if implicit.is_file() else None
    if not explicit.exists():
        raise ConfigError(f"config file not found: {explicit}")
    if not explicit.is_file():
        raise ConfigError(f"config path is not a file: {explicit}")
    return explicit


_TOML_POSITION_RE = re.compile(r"\s*\((at line (\d+), column (\d+)|at end of document)\)\s*$")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return TomlConfigSettingsSource(Settings, toml_file=path)()
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError has no lineno attribute; the position is in the text.
        text = str(exc)
        match = _TOML_POSITION_RE.search(text)
        reason = text[: match.start()] if match else text
        if match and match.group(2):
            where = f" at line {match.group(2)}, column {match.group(3)}"
        elif match:
            where = " at end of file"
        else:
            where = ""
        raise ConfigError(f"invalid TOML in {path}{where}: {reason}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"invalid TOML in {path}: the file is not UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (override wins, tables merge)."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def _is_complex(annotation: Any) -> bool:
    return get_origin(annotation) in (list, dict)


def _mentions(annotation: Any, wanted: type) -> bool:
    """Whether ``wanted`` appears anywhere in a (possibly nested/union) annotation."""
    return annotation is wanted or any(_mentions(arg, wanted) for arg in get_args(annotation))


def _bad_json_env(section: str, environ: Mapping[str, str]) -> ConfigError:
    """Name the environment variable pydantic-settings could not JSON-decode."""
    whole = ENV_PREFIX + section.upper()
    section_field = Settings.model_fields.get(section)
    model = section_field.annotation if section_field else None
    for name, value in environ.items():
        upper = name.upper()
        if upper == whole:
            target, key = "a JSON object", section
        elif upper.startswith(whole + ENV_NESTED_DELIMITER) and isinstance(model, type):
            leaf = upper[len(whole) + len(ENV_NESTED_DELIMITER) :].lower()
            fields = getattr(model, "model_fields", {})
            if leaf not in fields or not _is_complex(fields[leaf].annotation):
                continue
            target, key = "a JSON list", f"{section}.{leaf}"
        else:
            continue
        try:
            json.loads(value)
        except ValueError:
            example = " like '[\"slack:U0123\"]'" if key == "bot.admins" else ""
            return ConfigError(f"config error: {key}: {name} must be {target}{example}", key=key)
    return ConfigError(
        f"config error: {section}: an environment override could not be parsed", key=section
    )


# ----------------------------------------------------------------- error formatting

_TYPE_PHRASES = {
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "dict_type": "must be a table",
    "string_too_short": "must not be empty",
}
_BOUNDS = {
    "greater_than_equal": ("≥", "ge"),
    "less_than_equal": ("≤", "le"),
    "greater_than": (">", "gt"),
    "less_than": ("<", "lt"),
}
_SENSITIVE_WORDS = ("token", "secret", "password")


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _is_sensitive(loc: tuple[int | str, ...]) -> bool:
    names = [p for p in loc if isinstance(p, str)]
    if any(word in name.lower() for name in names for word in _SENSITIVE_WORDS):
        return True
    if names[:2] == ["database", "url"]:
        return True  # may carry a password
    if len(names) >= 2:
        section = Settings.model_fields.get(names[0])
        model = section.annotation if section else None
        field = getattr(model, "model_fields", {}).get(names[1])
        if field is not None and _mentions(field.annotation, SecretStr):
            return True
    return False


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys that could stand where ``loc`` ends: a section's settings, or the sections."""
    if len(loc) == 1:
        return list(Settings.model_fields)
    section = Settings.model_fields.get(str(loc[0]))
    model = section.annotation if section else None
    return list(getattr(model, "model_fields", {})) if len(loc) == 2 else []


def _guess(loc: tuple[int | str, ...]) -> str | None:
    """The known key closest to a misspelt one (``slack.bot_token`` for ``slack.bot_tokn``)."""
    if not loc or not isinstance(loc[-1], str):
        return None
    close = difflib.get_close_matches(loc[-1].lower(), _known_keys(loc), n=1, cutoff=0.6)
    return _dotted((*loc[:-1], close[0])) if close else None


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """`` (did you mean 'slack.bot_token'?)`` for a misspelt key, else ``""``."""
    guess = _guess(loc)
    return f" (did you mean {guess!r}?)" if guess else ""


def _describe(error: ErrorDetails) -> tuple[str, str]:
    """(dotted key, one-line reason) for one pydantic error, never with a secret in it."""
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _dotted(loc), ""
    if kind == "config_rule":
        key = _dotted((*loc, str(ctx["field"])))
        return key, str(ctx["reason"])
    key = _dotted(loc)
    if kind == "value_error" and "error" in ctx:
        return key, str(ctx["error"])
    if kind in _BOUNDS:
        sign, bound_key = _BOUNDS[kind]
        bound = ctx.get(bound_key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)  # "≥ 5", not "≥ 5.0", for a float field
        reason = f"must be {sign} {bound}"
    elif kind == "literal_error":
        reason = f"must be {ctx.get('expected')}"
    elif kind == "string_too_long":
        reason = f"must be at most {ctx.get('max_length')} characters"
    elif kind in _TYPE_PHRASES:
        reason = _TYPE_PHRASES[kind]
    else:
        reason = error["msg"].replace("Input should be", "must be")
    value = error.get("input")
    if (
        len([p for p in loc if isinstance(p, str)]) >= 2
        and isinstance(value, str | int | float | bool)
        and not _is_sensitive(loc)
    ):
        reason += f" (got {value!r})"
    return key, reason


def _env_origin(loc: tuple[int | str, ...], environ: Mapping[str, str]) -> str:
    """`` (from COHORTBOT_X__Y)`` when the value at ``loc`` came from that variable."""
    names = [p for p in loc if isinstance(p, str)]
    if len(names) != len(loc) or len(names) < 2:
        return ""
    wanted = _env_name(".".join(names))
    for name, value in environ.items():
        if name.upper() == wanted and value != "":
            return f" (from {name})"
    return ""


def _lines(error: ErrorDetails, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(key, line) for each problem one pydantic error stands for (a section's broken
    rules come as one error, see `_broken`)."""
    if error["type"] == "config_rule":
        ctx = error.get("ctx") or {}
        out = []
        for rule in [ctx, *ctx.get("more", ())]:
            key = _dotted((*tuple(error["loc"]), str(rule["field"])))
            out.append((key, f"config error: {key}: {rule['reason']}"))
        return out
    key, reason = _describe(error)
    loc = tuple(error["loc"])
    origin = _env_origin(loc, environ)
    if error["type"] == "extra_forbidden":
        return [(key, f"config error: unknown key {key!r}{origin}{_did_you_mean(loc)}")]
    return [(key, f"config error: {key}: {reason}{origin}")]


def _without(values: dict[str, Any], loc: tuple[int | str, ...]) -> None:
    """Drop the value at ``loc`` (a list as a whole, for an item of it)."""
    names = [p for p in loc if isinstance(p, str)][:2]
    for name in names[:-1]:
        inner = values.get(name)
        if not isinstance(inner, dict):
            return
        values = inner
    if names:
        values.pop(names[-1], None)


def _rules_beyond(exc: ValidationError, values: dict[str, Any], environ: Mapping[str, str]
                  ) -> list[tuple[str, str]]:
    """The rules between keys that a section breaks besides its bad values: pydantic checks
    them only once a section's values are valid, so check again without the bad ones."""
    pruned = json.loads(json.dumps(values, default=str))  # a deep copy of plain data
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        _without(pruned, loc)
        seen.add(_dotted(loc))
        if error["type"] == "extra_forbidden":
            seen.add(_guess(loc) or "")  # (its guess already names the missing key)
    try:
        Settings(**pruned)
    except ValidationError as again:
        return [(key, line) for error in again.errors(include_url=False)
                if error["type"] == "config_rule" for key, line in _lines(error, environ)
                if key not in seen]
    return []


def _format_validation_error(exc: ValidationError, environ: Mapping[str, str],
                             more: Sequence[tuple[str, str]] = ()) -> ConfigError:
    found = [line for error in exc.errors(include_url=False) for line in _lines(error, environ)]
    found += [line for line in more if line not in found]
    key, message = found[0]
    if len(found) > 1:
        message += f" (+{len(found) - 1} more)"
    return ConfigError(message, key=key, problems=tuple(line for _, line in found))


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read, merge and validate the configuration.

    File: ``path`` if given, else ``$COHORTBOT_CONFIG``, else ``./cohortbot.toml`` if it
    exists, else none (defaults). An explicitly named file must exist.
    Environment: ``COHORTBOT_<SECTION>__<KEY>`` overrides the file; read only from
    ``environ`` when given (default: ``os.environ``).

    Raises ConfigError (one line, no secrets) on any problem.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    source_path = _resolve_path(path, env)
    file_values = _read_toml(source_path) if source_path is not None else {}
    try:
        env_values = _MappingEnvSettingsSource(Settings, env)()
    except SettingsError as exc:
        match = re.search(r'field "([^"]+)"', str(exc))
        raise _bad_json_env(match.group(1) if match else "?", env) from None
    for key in file_values:
        # BaseSettings.__init__ treats `_name` keyword arguments as options for itself
        # (`_env_file`, `_cli_parse_args`, ...): a file must not be able to pass those.
        if key.startswith("_"):
            raise ConfigError(f"config error: unknown key {key!r}", key=key)
    values = _merge(file_values, env_values)
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        # `from None`: the ValidationError may hold secret input values; keep it out of
        # any traceback that gets logged.
        raise _format_validation_error(exc, env, _rules_beyond(exc, values, env)) from None
    settings._source_path = source_path
    return settings
