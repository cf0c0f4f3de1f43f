"""The setup commands of the CLI: `slack-manifest` and `check-config` (without --live)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main

TOKEN_KEY = "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg="  # 32 bytes, url-safe base64


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray ./cohortbot.toml or COHORTBOT_* variable from wherever pytest was started."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    import os

    for name in list(os.environ):
        if name.startswith("COHORTBOT_"):
            monkeypatch.delenv(name)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def oauth_config(tmp_path: Path) -> Path:
    path = tmp_path / "oauth.toml"
    path.write_text(f"[slack]\nclient_id = '123.456'\nclient_secret = 'abc'\n"
                    f"token_key = '{TOKEN_KEY}'\n")
    return path


# ------------------------------------------------------------------ slack-manifest


@pytest.mark.parametrize(("url", "reason"), [
    ("http://bot.example.org", "'http://bot.example.org' is not HTTPS: Slack calls only "
                               "https:// URLs"),
    ("bot.example.org", "'bot.example.org' is not an https:// URL (e.g. https://bot.example.org)"),
    ("https://", "'https://' has no valid host (e.g. https://bot.example.org)"),
    ("https://bot.example.org:port", "'https://bot.example.org:port' is not a URL "
                                     "(e.g. https://bot.example.org)"),
    ("https://bot.example.org/?a=b", "'https://bot.example.org/?a=b' must have no query (?…) "
                                     "or fragment (#…)"),
])
def test_slack_manifest_refuses_a_url_slack_would_not_call(url: str, reason: str) -> None:
    code, out, err = cli("slack-manifest", "--mode", "http", "--url", url)
    assert code == 2
    assert out == ""
    assert err.splitlines() == [f"cohortbot slack-manifest: --url: {reason}"]


def test_slack_manifest_takes_an_https_url() -> None:
    code, out, _ = cli("slack-manifest", "--mode", "http", "--url", "https://bot.example.org/")
    assert code == 0
    assert "      url: \"https://bot.example.org/slack/events\"" in out.splitlines()
    assert "redirect_urls" not in out  # no OAuth configured


def test_slack_manifest_with_oauth_lists_the_redirect_url(tmp_path: Path) -> None:
    from adapters.slack.manifest import REDIRECT_PATH

    config = oauth_config(tmp_path)
    code, out, _ = cli("--config", str(config), "slack-manifest", "--url",
                       "https://bot.example.org")
    assert code == 0
    lines = out.splitlines()
    i = lines.index("oauth_config:")
    assert lines[i + 1:i + 3] == [
        "  redirect_urls:", f'    - "https://bot.example.org{REDIRECT_PATH}"']
    assert REDIRECT_PATH == "/slack/oauth_redirect"
    # Socket Mode: still no request URL, but the redirect is there.
    assert "  socket_mode_enabled: true" in lines
    assert not any("request_url" in line for line in lines)


def test_slack_manifest_with_oauth_needs_the_url(tmp_path: Path) -> None:
    code, out, err = cli("--config", str(oauth_config(tmp_path)), "slack-manifest")
    assert code == 2
    assert out == ""
    assert err == ("cohortbot slack-manifest: --url: required with OAuth installs "
                   "(slack.client_id is set): Slack sends installers back to "
                   "<url>/slack/oauth_redirect.\n")
    # HTTP mode needs it too, and says so in one line.
    code, out, err = cli("slack-manifest", "--mode", "http")
    assert (code, out) == (2, "")
    assert err == ("cohortbot slack-manifest: --url: required with --mode http (where Slack "
                   "sends requests, e.g. https://bot.example.org).\n")


# ------------------------------------------------------------------ check-config


def test_check_config_lists_every_problem_at_once(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("[slak]\nenabled = true\n[bot]\ncomand = 'x'\nlog_level = 'loud'\n"
                      "[slack]\nbot_tokn = 'xoxb-TOPSECRET'\n[matrix]\nenabled = true\n"
                      "homeserver = 'https://m.example.org'\n")
    code, out, err = cli("--config", str(config), "check-config")
    assert code == 2
    assert out == ""
    assert sorted(err.splitlines()) == sorted([
        "config error: unknown key 'slak' (did you mean 'slack'?)",
        "config error: unknown key 'bot.comand' (did you mean 'bot.command'?)",
        "config error: bot.log_level: must be one of DEBUG, INFO, WARNING, ERROR (got 'loud')",
        "config error: unknown key 'slack.bot_tokn' (did you mean 'slack.bot_token'?)",
        "config error: matrix.user_id: required when matrix.enabled = true (set it in the file "
        "or COHORTBOT_MATRIX__USER_ID)",
        "config error: matrix.access_token: required when matrix.enabled = true, unless "
        "matrix.password is set (set one in the file or COHORTBOT_MATRIX__ACCESS_TOKEN / "
        "COHORTBOT_MATRIX__PASSWORD)",
        "config error: matrix.store_key: required when matrix.enabled = true: the encryption "
        "store is sealed with it (make one with 'cohortbot new-key'; set it in the file or "
        "COHORTBOT_MATRIX__STORE_KEY)",
    ])
    assert "TOPSECRET" not in err


def test_rules_between_keys_are_listed_beside_bad_values(tmp_path: Path) -> None:
    config = tmp_path / "slack.toml"
    config.write_text("[slack]\nenabled = true\nbot_tokn = 'xoxb-TOPSECRET'\n"
                      "http_port = 'eighty'\n")
    code, _, err = cli("--config", str(config), "check-config")
    assert code == 2
    assert err.splitlines() == [
        "config error: slack.http_port: must be an integer (got 'eighty')",
        "config error: unknown key 'slack.bot_tokn' (did you mean 'slack.bot_token'?)",
        "config error: slack.app_token: required when slack.enabled = true and slack.mode = "
        "'socket' (set it in the file or COHORTBOT_SLACK__APP_TOKEN)",
    ]


def test_an_unknown_key_far_from_any_gets_no_guess(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[bot]\nzzzzzz = 1\n")
    code, _, err = cli("--config", str(config), "check-config")
    assert code == 2
    assert err.splitlines() == ["config error: unknown key 'bot.zzzzzz'"]
