"""Deletion reaches everything, and files are the bot's own.

The adversary holds a copy of the database after a member ran `forget-me`, or after the
retention of an archived cohort ran out, and searches every row of every table for the
person and for what they wrote. On SQLite they also read the database's files as they lie on
disk (main file and write-ahead log) after a question was withdrawn.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.bootstrap import build, ensure_schema
from bot.config import load_settings
from bot.db.tables import metadata
from bot.scheduling.clock import SimulatedClock
from tests.conftest import START, Harness, RecordingMessenger
from tests.e2e.conftest import COHORTBOT, env_for

SECRET_ACTION = "tell my boss about my depression diagnosis"
SECRET_NOTE = "told HR instead they were awful"


async def _every_row(engine: AsyncEngine) -> list[tuple[str, str]]:
    """(table, row as text) for every row of every table."""
    out: list[tuple[str, str]] = []
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(sa.select(table))).all():
                out.append((table.name, " | ".join(str(v) for v in row)))
    return out


async def _cai_shares_a_hard_action(harness: Harness) -> None:
    await harness.setup_cohort(members="@ana @ben @cai @dev")
    await harness.say("cai", "tz Europe/Berlin", channel=None)
    await harness.say("cai", f"action add {SECRET_ACTION}")
    await harness.say("cai", "checkin share")
    await harness.say("cai", "away 2026-12-15")
    await harness.say("ben", "swap moderator @cai")
    await harness.advance("1d")  # the check-in DM quotes the action to cai
    assert any(SECRET_ACTION in d for d in harness.dms("cai"))
    await harness.say("cai", f"action partly 1 {SECRET_NOTE}")
    for i, who in enumerate(("cai", "ana")):
        await harness.say(who, f"ask Something one wonders, number {i}?", channel=None)


async def test_forget_me_leaves_nothing_of_the_person_in_any_table(harness: Harness) -> None:
    await _cai_shares_a_hard_action(harness)
    await harness.advance("5h1m")  # Tuesday 14:01: the summary quotes cai's note by name
    assert any(SECRET_NOTE in p for p in harness.channel_posts())
    assert "Upvoted" in await harness.say("cai", "upvote 1")
    rows = await _every_row(harness.app.engine)
    assert any("cai" in r for _, r in rows)  # (the attack finds them before)

    assert "deleted" in await harness.say("cai", "forget-me confirm", channel=None)
    rows = await _every_row(harness.app.engine)
    leaks = [(t, r) for t, r in rows
             if "cai" in r or SECRET_ACTION in r or SECRET_NOTE in r or "Europe/Berlin" in r]
    assert leaks == []
    # Keyed records too: their count of today's questions, their open upvote.
    keys = harness.app.bot.keys
    now = harness.clock.now()
    async with harness.app.engine.connect() as conn:
        salts = {s for (s,) in await conn.execute(sa.text(
            "SELECT vote_salt FROM questions WHERE vote_salt IS NOT NULL"))}
        voters = {v for (v,) in await conn.execute(sa.text("SELECT voter_hash FROM upvotes"))}
        counts = {h for (h,) in await conn.execute(sa.text("SELECT key_hash FROM rate_counts"))}
        upvotes = (await conn.execute(sa.text("SELECT sum(upvotes) FROM questions"))).scalar()
    assert salts and not voters & {keys.voter(s, "terminal:cai") for s in salts}
    async with harness.app.uow() as uow:
        day_key = await keys.of_day(uow, now)
    assert keys.digest(day_key, "terminal:cai") not in counts
    assert keys.digest(day_key, "terminal:ana") in counts  # (others' stay)
    assert upvotes == 1  # the count stays: it names no one
    # The facilitator is told, with no name.
    told = [d for d in harness.dms("fay") if "had their data deleted" in d]
    assert told == ["A member left Peer A and had their data deleted. The rotation goes on "
                    "without them."]


async def test_retention_leaves_no_text_of_an_archived_cohort(harness: Harness) -> None:
    await _cai_shares_a_hard_action(harness)
    await harness.advance("5h1m")
    texts = [SECRET_ACTION, SECRET_NOTE, "Something one wonders"]
    rows = await _every_row(harness.app.engine)
    assert any(any(x in r for x in texts) for _, r in rows)
    assert "archived" in await harness.say("root", "cohort archive confirm")
    await harness.advance("90d")
    await harness.advance("2h")  # past the hour's purge
    rows = await _every_row(harness.app.engine)
    assert [(t, r) for t, r in rows if any(x in r for x in texts)] == []
    assert [t for t, _ in rows if t in ("outbox", "notifications", "questions", "actions",
                                        "action_reviews", "upvotes")] == []


async def test_a_sent_message_is_gone_a_day_after_it_was_sent(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("ana", f"action add {SECRET_ACTION}")
    await harness.advance("1d")  # the check-in DM quotes the action
    assert any(SECRET_ACTION in d for d in harness.dms("ana"))
    rows = [r for t, r in await _every_row(harness.app.engine) if t == "outbox"]
    assert any(SECRET_ACTION in r for r in rows)
    await harness.advance("1d")
    rows = [r for t, r in await _every_row(harness.app.engine) if t == "outbox"]
    assert not any(SECRET_ACTION in r for r in rows)


def _files(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())


async def test_withdrawn_text_leaves_the_sqlite_files_at_once(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    url = f"sqlite+aiosqlite:///{db}"
    ensure_schema(url)
    settings = load_settings(environ={"COHORTBOT_DATABASE__URL": url,
                                      "COHORTBOT_BOT__ADMINS": '["terminal:root"]'})
    clock = SimulatedClock(START)
    app = build(settings, clock=clock, messengers={"terminal": RecordingMessenger()})
    try:
        harness = Harness(app, RecordingMessenger(), clock)
        await harness.setup_cohort()
        reply = await harness.say("ana", "ask ZEBRA-SECRET-MARKER what do I do?", channel=None)
        code = re.search(r"Your code: (\S+)", reply)
        assert code is not None and b"ZEBRA-SECRET-MARKER" in _files(db)
        await harness.say("ana", f"retract {code[1]}", channel=None)
        # While the bot runs, as a backup or another local user would read them:
        assert b"ZEBRA-SECRET-MARKER" not in _files(db)
    finally:
        await app.close()


def _shell(db: Path, script: str) -> str:
    env = {**env_for(db), "COHORTBOT_BOT__ADMINS": '["terminal:root"]'}
    result = subprocess.run([COHORTBOT, "shell", "--user", "root"], input=script, env=env,
                            capture_output=True, text=True, cwd=db.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_database_and_its_secret_are_the_bots_users_alone(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    db.write_bytes(b"")  # an older version's database, readable by everyone
    os.chmod(db, 0o644)
    db.unlink()
    _shell(db, ":as root\n:in #peer-a\n/cohort cohort create Peer A\n")
    made = sorted(p for p in tmp_path.iterdir() if p.name.startswith(db.name))
    assert "cohortbot.db" in {p.name for p in made}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in made} == \
        {p.name: 0o600 for p in made}
    os.chmod(db, 0o644)  # (a copy restored by hand)
    _shell(db, ":as root\n/cohort next\n")
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


async def test_my_data_shows_what_is_kept_and_never_a_question(harness: Harness) -> None:
    await _cai_shares_a_hard_action(harness)
    reply = await harness.say("cai", "my-data", channel=None)
    assert "Time zone you set: Europe/Berlin." in reply
    assert "Peer A (peer-a): joined 2026-11-30" in reply and "check-in lines shared: yes" in reply
    assert "away 2026-12-15 to 2026-12-15" in reply
    assert f"action 1: {SECRET_ACTION} [open]" in reply
    assert f"your answer for the next check-in: partly ({SECRET_NOTE})" in reply
    assert "swap of moderator" in reply
    assert "wonders" not in reply and "Not kept: anonymous questions and upvotes" in reply
    assert "Only" not in await harness.say("stranger", "my-data", channel=None)
    # Another person's data is never in it.
    assert SECRET_ACTION not in await harness.say("ana", "my-data", channel=None)


def test_an_operator_exports_a_person_as_json(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    _shell(db, ":as root\n:in #peer-a\n/cohort cohort create Peer A\n"
               "/cohort cohort members add @cai\n:as cai\n/cohort tz Asia/Tokyo\n"
               f"/cohort action add {SECRET_ACTION}\n:dm\n/cohort ask Hidden forever, is it?\n")
    env = {**env_for(db)}
    result = subprocess.run([COHORTBOT, "export-person", "terminal:cai"], env=env, text=True,
                            capture_output=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["person"] == "terminal:cai"
    assert data["profiles"][0]["time_zone"] == "Asia/Tokyo"
    assert [a["text"] for a in data["memberships"][0]["actions"]] == [SECRET_ACTION]
    assert "Hidden forever" not in result.stdout
    bad = subprocess.run([COHORTBOT, "export-person", "cai"], env=env, text=True,
                         capture_output=True, cwd=tmp_path, timeout=60)
    assert bad.returncode == 2 and "not platform:id" in bad.stderr
    assert "Traceback" not in bad.stderr
