"""docs/deploy.md stays true: its compose file parses and starts the bot after `migrate`,
its systemd unit is well formed, every `cohortbot` command it names exists, and every
`COHORTBOT_…` variable it names is a real setting."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.config import CONFIG_PATH_ENV, ENV_NESTED_DELIMITER, ENV_PREFIX, Settings
from tests.e2e.conftest import COHORTBOT

DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"
README = DOC.parents[1] / "README.md"


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _fences(lang: str) -> list[str]:
    return re.findall(rf"^[ \t]*```{lang}\n(.*?)^[ \t]*```", _text(), re.S | re.M)


def _block(lang: str, marker: str) -> str:
    blocks = [b for b in _fences(lang) if marker in b]
    assert len(blocks) == 1, f"expected one ```{lang} block with {marker!r}"
    return blocks[0]


# ------------------------------------------------------------------ a little YAML


def _scalar(text: str) -> Any:
    text = text.strip()
    if text.startswith(("[", "{")):
        return json.loads(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return None if text in ("", "~", "null") else text


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def _parse_block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    """Block mappings and sequences of the plain kind the document uses (no anchors, no
    multi-line scalars): enough to check its structure when PyYAML is not installed."""
    if lines[i][1].startswith("- "):
        items: list[Any] = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
            items.append(_scalar(lines[i][1][2:]))
            i += 1
        return items, i
    mapping: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent:
        key, sep, rest = lines[i][1].partition(":")
        assert sep and " " not in key.strip(), f"not a mapping line: {lines[i][1]!r}"
        i += 1
        if rest.strip():
            mapping[key.strip()] = _scalar(rest)
        elif i < len(lines) and lines[i][0] > indent:
            mapping[key.strip()], i = _parse_block(lines, i, lines[i][0])
        else:
            mapping[key.strip()] = None
    assert i == len(lines) or lines[i][0] < indent, f"bad indentation: {lines[i][1]!r}"
    return mapping, i


def _load_yaml(text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        lines = [(len(s) - len(s.lstrip(" ")), s.strip())
                 for s in map(_strip_comment, text.splitlines()) if s.strip()]
        value, end = _parse_block(lines, 0, 0)
        assert end == len(lines)
        return value
    return yaml.safe_load(text)


def test_the_little_yaml_reader_reads_what_it_is_given() -> None:
    text = ('a:\n  b: "x: y"  # note\n  c: [1, "two"]\n  d:\n    - p\n    - "q"\n'
            "e:\nf: 'z'\ng: 3\nh: true\ni: \"true\"\n")
    lines = [(len(s) - len(s.lstrip(" ")), s.strip())
             for s in map(_strip_comment, text.splitlines()) if s.strip()]
    assert _parse_block(lines, 0, 0)[0] == {
        "a": {"b": "x: y", "c": [1, "two"], "d": ["p", "q"]}, "e": None, "f": "z", "g": 3,
        "h": True, "i": "true"}


# ------------------------------------------------------------------ compose


def _compose() -> dict[str, Any]:
    data = _load_yaml(_block("yaml", "services:"))
    assert isinstance(data, dict)
    return data


def test_the_compose_file_runs_postgres_migrate_then_the_bot() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"db", "migrate", "bot"}
    db, migrate, bot = services["db"], services["migrate"], services["bot"]
    assert re.fullmatch(r"postgres:1[56](\.\d+)?(-\w+)?", db["image"])
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert "POSTGRES_PASSWORD" in db["environment"]
    assert migrate["command"] == ["cohortbot", "migrate"]
    assert bot["command"] == ["cohortbot", "run"]
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert bot["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert any(str(v).endswith(":/data") for v in bot["volumes"])
    # Both named volumes are declared; the database URL points at the db service.
    for service in (db, bot):
        for volume in service["volumes"]:
            assert volume.split(":")[0] in compose["volumes"]
    for service in (migrate, bot):
        assert "@db/" in service["environment"]["COHORTBOT_DATABASE__URL"]
    # Secrets come from the environment (.env), never written into the file.
    for name, value in bot["environment"].items():
        if any(w in name for w in ("TOKEN", "SECRET", "PASSWORD", "KEY")):
            assert str(value).startswith("${"), name


# ------------------------------------------------------------------ systemd


def test_the_systemd_unit_is_well_formed() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(_block("ini", "[Service]"))
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert service["User"] == "cohortbot"
    assert service["WorkingDirectory"].startswith("/")
    assert service["EnvironmentFile"].startswith("/etc/")
    assert service["Restart"] == "on-failure"
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert service[hardening] in ("yes", "strict", "true"), hardening
    exec_start = service["ExecStart"].split()
    assert exec_start[0].endswith("/cohortbot")
    assert exec_start[1] in _subcommands()
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    # The environment file is made 0600 before anything goes into it.
    env_file = service["EnvironmentFile"]
    assert re.search(rf"install -m 0600 .*/dev/null {re.escape(env_file)}", _text())


# ------------------------------------------------------------------ commands


def _subcommands() -> set[str]:
    from bot.cli import main

    return set(main.commands)


def _code() -> list[str]:
    """Every code span and fenced block of the document."""
    text = _text()
    fenced = re.findall(r"^[ \t]*```[a-z]*\n(.*?)^[ \t]*```", text, re.S | re.M)
    prose = re.sub(r"^[ \t]*```[a-z]*\n.*?^[ \t]*```", "", text, flags=re.S | re.M)
    return fenced + re.findall(r"`([^`\n]+)`", prose)


def _named_commands() -> set[tuple[str, ...]]:
    """`cohortbot <command>` wherever the executable is run (not where `cohortbot` is the
    value of an option, a user or a database name)."""
    from bot.cli import main

    found: set[tuple[str, ...]] = set()
    for code in _code():
        for line in code.splitlines():
            tokens = line.split()
            for i, token in enumerate(tokens[:-1]):
                word = token.lstrip("'\"$(")
                if word != "cohortbot" and not word.endswith("/bin/cohortbot"):
                    continue
                if i and (tokens[i - 1].startswith("-") or tokens[i - 1].endswith("=")):
                    continue
                cmd = tokens[i + 1].rstrip("'\")`,.")
                if not re.fullmatch(r"[a-z][a-z-]*", cmd):
                    continue
                group = main.commands.get(cmd)
                sub = tokens[i + 2].rstrip("'\")`,.") if i + 2 < len(tokens) else ""
                found.add((cmd, sub) if hasattr(group, "commands") else (cmd,))
    for service in _compose()["services"].values():
        command = service.get("command")
        if isinstance(command, list) and command[0] == "cohortbot":
            found.add(tuple(command[1:2]))
    return found


def test_the_document_names_the_commands_an_operator_needs() -> None:
    named = _named_commands()
    for needed in [("run",), ("migrate",), ("check-config",), ("new-key",), ("db", "copy")]:
        assert needed in named


@pytest.mark.parametrize("command", sorted(_named_commands()))
def test_every_command_the_document_names_exists(command: tuple[str, ...]) -> None:
    result = subprocess.run([COHORTBOT, *command, "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"cohortbot {' '.join(command)}: {result.stderr}"


# ------------------------------------------------------------------ variables


def test_every_variable_the_document_names_is_a_setting() -> None:
    names = set(re.findall(rf"\b{ENV_PREFIX}[A-Z][A-Z0-9_]*", _text()))
    assert len(names) > 10
    for name in sorted(names - {CONFIG_PATH_ENV}):
        section, sep, key = name[len(ENV_PREFIX):].lower().partition(ENV_NESTED_DELIMITER)
        assert sep, f"{name}: not {ENV_PREFIX}<SECTION>{ENV_NESTED_DELIMITER}<KEY>"
        assert section in Settings.model_fields, f"{name}: no section {section!r}"
        model: Any = Settings.model_fields[section].annotation
        assert key in model.model_fields, f"{name}: no key {section}.{key}"


def test_the_readme_links_the_guide() -> None:
    assert "](docs/deploy.md)" in README.read_text(encoding="utf-8")
