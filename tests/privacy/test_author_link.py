"""The author hears what became of their question without the bot keeping who they are.

The adversary holds the database and every log line the bot wrote at DEBUG, taken after the
author was told of an approval, a return (with a note) and a posting. The link that let the
bot tell them lived in its memory only (bot/service/authors.py): neither the database nor
the logs hold the author's id next to anything about a question, nor anything the author
was told."""

from __future__ import annotations

import logging
import re

import pytest
import sqlalchemy as sa

from tests.conftest import Harness

AUTHOR = "zed-the-author"
TEXTS = ("Why is the quiet one always me?", "Can we talk about burnout today?")


async def _dump(harness: Harness) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    async with harness.app.engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        for name in names:
            rows = (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all()
            out[name] = [" | ".join(str(v) for v in row) for row in rows]
    return out


async def test_neither_database_nor_logs_hold_the_link_that_told_the_author(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await harness.setup_cohort(members="@ana @ben @zed-the-author")
    await harness.say("root", "cohort set moderation on")
    for text in TEXTS:
        assert "Your code" in await harness.say(AUTHOR, f"ask {text}", channel=None)
    await harness.say("ben", "ask Should we meet in person sometimes?", channel=None)
    review = await harness.say("fay", "questions review")
    ids = {m[2]: m[1] for m in re.finditer(r"\[(\w+)\] (\w+)", review)}
    await harness.say("fay", f"approve {ids['Why']}")
    await harness.say("fay", f"approve {ids['Should']}")
    await harness.say("fay", f"return {ids['Can']} try a kinder wording")
    await harness.say("fay", "release")
    await harness.advance("1h")

    told = [text for user, _, text in harness.messenger.whispered if user == AUTHOR]
    assert len(told) == 3, told  # (the control: the link did its job)
    assert any("approved" in t for t in told) and any("posted" in t for t in told)
    assert any("kinder wording" in t for t in told)

    dump = await _dump(harness)
    with_author = {name: [r for r in rows if AUTHOR in r] for name, rows in dump.items()}
    # The author is a member, and nothing more: no other table names them, and no outbox
    # row addressed to them or naming them says anything of a question.
    assert {name for name, rows in with_author.items() if rows} <= {"members", "outbox"}
    for row in with_author.get("outbox", []):
        assert "question" not in row.lower(), row
    everything = "\n".join(r for rows in dump.values() for r in rows)
    for said in ("is approved by a facilitator", "was returned by a facilitator",
                 "is posted in the channel as", "Your anonymous"):
        assert said not in everything, said
    # The logs name neither the author nor what they were told.
    assert AUTHOR not in caplog.text
    assert "Your anonymous question" not in caplog.text
    assert "kinder wording" not in caplog.text
