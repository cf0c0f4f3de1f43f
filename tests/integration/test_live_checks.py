"""`cohortbot check-config --live` against the real things: PostgreSQL and SQLite, the fake
Slack Web API the tests own, and the suite's Synapse. Each check passes on good values and
fails, in one line without the secret, on a bad one."""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.db.engine import pending_migrations, revisions_after, upgrade
from tests.conftest import PG_URL
from tests.support.slack import WORKSPACE, FakeSlack
from tests.support.synapse import RegisteredUser, SynapseServer

STORE_KEY = "0123456789abcdef-store"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("COHORTBOT_"):
            monkeypatch.delenv(name)


def live(env: dict[str, str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["check-config", "--live"], env=env)
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    return result.exit_code, lines[lines.index("config OK") + 1:]


def matrix_env(server: SynapseServer, user: RegisteredUser, store: Path,
               **more: str) -> dict[str, str]:
    return {"COHORTBOT_MATRIX__HOMESERVER": server.base_url,
            "COHORTBOT_MATRIX__USER_ID": user.user_id,
            "COHORTBOT_MATRIX__STORE_PATH": str(store),
            "COHORTBOT_MATRIX__STORE_KEY": STORE_KEY, **more}


def save_login(server: SynapseServer, user: RegisteredUser, store: Path) -> None:
    store.mkdir(exist_ok=True)
    (store / "session.json").write_text(json.dumps({
        "homeserver": server.base_url, "user_id": user.user_id, "device_id": user.device_id,
        "access_token": user.access_token}))


def devices(server: SynapseServer, user: RegisteredUser) -> list[str]:
    req = urllib.request.Request(f"{server.base_url}/_matrix/client/v3/devices",
                                 headers={"Authorization": f"Bearer {user.access_token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return sorted(d["device_id"] for d in json.load(resp)["devices"])


def test_every_check_passes_on_good_values(tmp_path: Path, fake_slack_thread: FakeSlack,
                                           synapse: SynapseServer) -> None:
    user = synapse.register_user()
    save_login(synapse, user, tmp_path / "store")
    before = devices(synapse, user)
    code, lines = live({
        "COHORTBOT_DATABASE__URL": PG_URL,
        "COHORTBOT_SLACK__BOT_TOKEN": WORKSPACE.bot_token,
        "COHORTBOT_SLACK__MODE": "socket",
        "COHORTBOT_SLACK__APP_TOKEN": WORKSPACE.app_token,
        "COHORTBOT_SLACK__API_BASE_URL": fake_slack_thread.api_url,
        **matrix_env(synapse, user, tmp_path / "store"),
    })
    assert code == 0, lines
    assert lines[0].startswith("database: ok: PostgreSQL test on 127.0.0.1:5432")
    assert lines[1].startswith("slack: ok: bot ")
    assert f"({WORKSPACE.team_id})" in lines[1]
    assert lines[2] == "slack app token: ok: Socket Mode accepts the app-level token"
    assert lines[3].startswith(f"matrix homeserver: ok: {synapse.base_url}, Matrix v1.")
    assert lines[4] == (f"matrix account: ok: {user.user_id}, device {user.device_id}, token "
                        f"from the saved login in {tmp_path / 'store' / 'session.json'}")
    assert len(lines) == 5
    assert devices(synapse, user) == before  # whoami only: no login, no new device
    assert user.access_token not in "\n".join(lines)


def test_every_check_fails_on_a_bad_value(tmp_path: Path, fake_slack_thread: FakeSlack,
                                          synapse: SynapseServer) -> None:
    user = synapse.register_user()
    bad_pg = PG_URL.replace("postgres@", "postgres:hunter22@").replace("/test", "/nosuchdb")
    code, lines = live({
        "COHORTBOT_DATABASE__URL": bad_pg,
        "COHORTBOT_SLACK__BOT_TOKEN": "xoxb-not-a-real-token",
        "COHORTBOT_SLACK__MODE": "socket",
        "COHORTBOT_SLACK__APP_TOKEN": "xapp-not-a-real-token",
        "COHORTBOT_SLACK__API_BASE_URL": fake_slack_thread.api_url,
        **matrix_env(synapse, user, tmp_path / "store",
                     COHORTBOT_MATRIX__ACCESS_TOKEN="syt_not_a_real_token"),
    })
    assert code == 1
    assert lines[0].startswith("database: FAILED: cannot use PostgreSQL nosuchdb on ")
    assert 'database "nosuchdb" does not exist' in lines[0]
    assert lines[1] == "slack: FAILED: Slack refused the bot token (invalid_auth)"
    assert lines[2] == "slack app token: FAILED: Slack refused the app-level token (invalid_auth)"
    assert lines[3].startswith("matrix homeserver: ok: ")
    assert lines[4] == ("matrix account: FAILED: the access token from matrix.access_token "
                        "was refused (M_UNKNOWN_TOKEN)")
    out = "\n".join(lines)
    for secret in ("hunter22", "xoxb-not-a-real-token", "xapp-not-a-real-token",
                   "syt_not_a_real_token"):
        assert secret not in out


def test_unreachable_servers_fail_in_one_line(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    code, lines = live({
        "COHORTBOT_DATABASE__URL": PG_URL.replace(":5432", ":9"),
        "COHORTBOT_SLACK__BOT_TOKEN": "xoxb-anything",
        "COHORTBOT_SLACK__API_BASE_URL": dead + "/api/",
        "COHORTBOT_MATRIX__HOMESERVER": dead, "COHORTBOT_MATRIX__USER_ID": "@bot:example.org",
    })
    assert code == 1
    assert lines[0].startswith("database: FAILED: cannot use PostgreSQL test on 127.0.0.1:9 (")
    assert lines[1] == f"slack: FAILED: cannot reach Slack at {dead}/api/ (ClientConnectorError)"
    assert lines[2] == f"matrix homeserver: FAILED: cannot reach {dead} (ClientConnectorError)"
    assert lines[3] == "matrix account: not checked: the homeserver did not answer"


def test_a_server_that_is_not_a_homeserver_fails(fake_slack_thread: FakeSlack) -> None:
    code, lines = live({"COHORTBOT_MATRIX__HOMESERVER": fake_slack_thread.url,
                        "COHORTBOT_MATRIX__USER_ID": "@bot:example.org"})
    assert code == 1
    assert lines[2].startswith(f"matrix homeserver: FAILED: {fake_slack_thread.url} is not a "
                               "Matrix homeserver (HTTP ")


def test_a_token_of_another_account_or_none_at_all(tmp_path: Path,
                                                   synapse: SynapseServer) -> None:
    bot, other = synapse.register_user(), synapse.register_user()
    save_login(synapse, other, tmp_path / "elsewhere")
    code, lines = live(matrix_env(synapse, bot, tmp_path / "store",
                                  COHORTBOT_MATRIX__ACCESS_TOKEN=other.access_token))
    assert code == 1
    assert lines[-1] == (f"matrix account: FAILED: the access token from matrix.access_token "
                         f"belongs to {other.user_id}, not {bot.user_id}")
    # Never logged in and only a password: nothing is tried (a login would make a device).
    before = devices(synapse, bot)
    code, lines = live(matrix_env(synapse, bot, tmp_path / "store",
                                  COHORTBOT_MATRIX__PASSWORD=bot.password))
    assert code == 0
    assert lines[-1].startswith("matrix account: not checked: never logged in: no saved login "
                                f"in {tmp_path / 'store' / 'session.json'}")
    assert devices(synapse, bot) == before


def _at_revision(path: Path, revision: str) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num TEXT)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    conn.close()
    return path


def test_sqlite_ok_missing_or_not_a_database(tmp_path: Path) -> None:
    head = revisions_after(None)
    assert head
    good = _at_revision(tmp_path / "good.db", head[-1])
    code, lines = live({"COHORTBOT_DATABASE__URL": f"sqlite:///{good}"})
    assert code == 0
    assert lines[0] == f"database: ok: SQLite {good}, schema revision {head[-1]} (up to date)"
    # An older schema is fine (the next start migrates it), and the line says how far behind.
    old = _at_revision(tmp_path / "old.db", head[-3])
    code, lines = live({"COHORTBOT_DATABASE__URL": f"sqlite:///{old}"})
    assert code == 0
    assert lines[0] == (f"database: ok: SQLite {old}, schema revision {head[-3]}, 2 migrations "
                        "to apply (the next start or `cohortbot migrate` applies them)")
    # One a newer version made is not: this version cannot run on it.
    newer = _at_revision(tmp_path / "newer.db", "0042")
    code, lines = live({"COHORTBOT_DATABASE__URL": f"sqlite:///{newer}"})
    assert code == 1
    assert lines[0] == (f"database: FAILED: SQLite {newer}, schema revision 0042, which is "
                        "newer than this version of cohortbot")
    result = CliRunner().invoke(main, ["migrate"], env={
        "COHORTBOT_DATABASE__URL": f"sqlite:///{newer}"})
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "the database's schema (revision 0042) is newer than this version of cohortbot: "
        "upgrade cohortbot, or use a backup made before the newer version ran")
    code, lines = live({"COHORTBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'new.db'}"})
    assert code == 0
    assert lines[0] == (f"database: ok: SQLite {tmp_path / 'new.db'} does not exist yet; the "
                        "first start creates it")
    assert not (tmp_path / "new.db").exists()  # trying it made nothing
    (tmp_path / "junk.db").write_text("not a database\n" * 100)
    code, lines = live({"COHORTBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'junk.db'}"})
    assert code == 1
    assert lines[0] == (f"database: FAILED: SQLite {tmp_path / 'junk.db'} cannot be read "
                        "(file is not a database)")
    code, lines = live({"COHORTBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'no' / 'x.db'}"})
    assert code == 1
    assert lines[0] == (f"database: FAILED: SQLite {tmp_path / 'no' / 'x.db'} does not exist "
                        f"and {tmp_path / 'no'} is not a writable folder")


def test_a_platform_whose_extra_is_missing_fails_in_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "adapters.slack.probe", None)  # import fails
    monkeypatch.setitem(sys.modules, "adapters.matrix.probe", None)
    code, lines = live({"COHORTBOT_SLACK__BOT_TOKEN": "xoxb-anything",
                        "COHORTBOT_MATRIX__HOMESERVER": "http://127.0.0.1:9",
                        "COHORTBOT_MATRIX__USER_ID": "@bot:example.org"})
    assert code == 1
    assert lines[1:] == [
        "slack: FAILED: cannot be tried: install the slack extra (pip install "
        "'cohortbot[slack]')",
        "matrix: FAILED: cannot be tried: install the matrix extra (pip install "
        "'cohortbot[matrix]')",
    ]


def test_pending_migrations_are_those_after_the_database_revision(tmp_path: Path) -> None:
    head = revisions_after(None)
    assert head and len(head) >= 3
    url = f"sqlite:///{tmp_path / 'partly.db'}"
    upgrade(url, head[-3])
    assert pending_migrations(url) == head[-2:]
    result = CliRunner().invoke(main, ["migrate"], env={"COHORTBOT_DATABASE__URL": url})
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "applied 2 migrations"
    assert pending_migrations(url) == []
