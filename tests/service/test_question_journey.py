"""An anonymous question's journey after it is asked: junk refused, withdrawal after
posting, the author told of the outcome, votes shown (bot/service/questions.py)."""

from __future__ import annotations

import re

import sqlalchemy as sa

from tests.conftest import Harness, running_harness


def _code(reply: str) -> str:
    found = re.search(r"Your code: (\S+)", reply)
    assert found is not None, reply
    return found[1]


def _anonymous(posts: list[str]) -> list[str]:
    return [p for p in posts if p.startswith("Anonymous question")]


async def test_junk_is_refused_with_the_reason_and_changes_nothing(harness: Harness) -> None:
    await harness.setup_cohort()
    for text in ("ok", "Why not?", "Help me please"):  # one word; two; three but 14 chars ok
        reply = await harness.say("ana", f"ask {text}", channel=None)
        if text == "Help me please":
            assert "Your code" in reply
            continue
        assert "at least 3 words and 10 characters" in reply, reply
        assert "Usage:" in reply and "Your code" not in reply
    assert "at least 3 words" in await harness.say("ana", "ask a b c", channel=None)
    # Refusals used none of the day's five questions.
    for i in range(4):
        assert "Your code" in await harness.say("ana", f"ask Question number {i} here?",
                                                channel=None)
    assert "at most 5 questions a day" in await harness.say(
        "ana", "ask One more question now?", channel=None)


async def test_a_question_already_posted_is_refused_but_a_pending_twin_is_not(
        harness: Harness) -> None:
    await harness.setup_cohort()
    codes = {"ana": _code(await harness.say("ana", "ask How do I say no to my PI?", None))}
    # Only released questions count: a pending twin is accepted, so that a refusal tells
    # nobody what waits ...
    codes["ben"] = _code(await harness.say("ben", "ask how do I say NO to my PI", None))
    await harness.say("cleo", "ask Is it fine to skip the retreat?", channel=None)
    assert "Released 2 questions in random order. 1 other asked the same as a posted " \
        "question and was not posted again." in await harness.say("fay", "release")
    # ... and the group sees it once: its second author is pointed at the post.
    posts = _anonymous(harness.channel_posts())
    assert len(posts) == 2 and sum("say no to my pi" in p.casefold() for p in posts) == 1
    [(twin, _, told)] = [w for w in harness.messenger.whispered if "asks the same" in w[2]]
    assert twin in codes
    number = re.search(r"asks the same as #(\d), which is posted", told)
    assert number is not None and "upvote that one" in told, told
    assert "say no to my pi" in posts[int(number[1]) - 1].casefold()
    status = await harness.say(twin, f"question {codes[twin]}", None)
    assert f"the same as anonymous question #{number[1]}" in status
    assert f"/cohort upvote {number[1]}" in status
    for twin in ("How do I say no to my PI?", "  how do  i say no to my pi!! ",
                 "HOW DO I SAY NO TO MY PI"):
        reply = await harness.say("dev", f"ask {twin}", channel=None)
        assert "already posted, as #" in reply and "upvote" in reply, reply
        assert "Your code" not in reply
    assert "Your code" in await harness.say("dev", "ask How do I say no to my boss?", None)


async def test_approving_a_twin_of_a_posted_question_does_not_post_it_again(
        harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("root", "cohort set moderation on")
    await harness.say("root", "cohort set question-release immediate")
    await harness.say("ana", "ask Why is the quiet one always me?", channel=None)
    await harness.say("ben", "ask why is the quiet one ALWAYS me", channel=None)
    ids = await _review_ids(harness)
    assert "being posted now" in await harness.say("fay", f"approve {ids['Why']}")
    reply = await harness.say("fay", f"approve {ids['why']}")
    assert reply == f"Approved {ids['why']}; it asks the same as #1, which is posted, so " \
        "it is not posted again."
    assert len(_anonymous(harness.channel_posts())) == 1


async def test_the_author_alone_withdraws_a_posted_question_and_its_post_goes(
        harness: Harness) -> None:
    await harness.setup_cohort()
    code = _code(await harness.say("ana", "ask How do I say no to my PI?", channel=None))
    await harness.say("ben", "ask Is it fine to skip the retreat?", channel=None)
    await harness.say("fay", "release")
    posts = _anonymous(harness.channel_posts())
    assert len(posts) == 2
    mine = next(p for p in posts if "say no" in p)
    number = int(mine.split("#")[1].split("\n")[0])
    await harness.say("cleo", f"upvote {number}")
    # A wrong code removes nothing; the right one removes the post and the listing.
    assert "No question has that code" in await harness.say("ben", "retract ZZZZ-ZZZZ-ZZZZ",
                                                             None)
    assert len(_anonymous(harness.channel_posts())) == 2
    reply = await harness.say("ana", f"retract {code}", channel=None)
    assert reply == (f"Your question #{number} is withdrawn: its post is being removed from "
                     "the channel and its text deleted.")
    assert [p for p in _anonymous(harness.channel_posts())] == [
        p for p in posts if "say no" not in p]
    assert [d.text for d in harness.messenger.deleted] == [mine]
    listing = await harness.say("dev", "questions")
    assert "say no" not in listing and "skip the retreat" in listing
    assert "already withdrawn" in await harness.say("ana", f"retract {code}", None)
    assert "withdrawn by you" in await harness.say("ana", f"question {code}", None)
    assert "There is no anonymous question" in await harness.say("dev", f"upvote {number}")
    # Nothing of its text is left in the database, in the question or in the outbox.
    async with harness.app.engine.connect() as conn:
        for table in ("questions", "outbox"):
            dump = str((await conn.execute(sa.text(f"SELECT * FROM {table}"))).all())
            assert "say no to my PI" not in dump, table
    assert harness.messenger.deleted and len(harness.messenger.deleted) == 1


async def _review_ids(harness: Harness) -> dict[str, str]:
    """Pending questions' review ids by the first word of their text."""
    review = await harness.say("fay", "questions review")
    return {m[2]: m[1] for m in re.finditer(r"\[(\w+)\] (\w+)", review)}


async def test_the_author_is_told_privately_of_approval_return_and_posting(
        harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("root", "cohort set moderation on")
    await harness.say("ana", "ask Why is the quiet one always me?", channel=None)
    await harness.say("ana", "ask Can we talk about burnout today?", channel=None)
    code3 = _code(await harness.say("ben", "ask Should we meet in person sometimes?", None))
    ids = await _review_ids(harness)
    told = harness.messenger.whispered
    assert told == []

    await harness.say("fay", f"approve {ids['Why']}")
    assert told == [("ana", "peer-a", "Your anonymous question in Peer A, “Why is the quiet "
                     "one always me?”, is approved by a facilitator. It will be posted with "
                     "the next batch.")]
    reply = await harness.say("fay", f"return {ids['Can']} please rephrase @here")
    assert "Its author is told" in reply
    assert told[1] == ("ana", "peer-a", "Your anonymous question in Peer A, “Can we talk "
                       "about burnout today?”, was returned by a facilitator and will not be "
                       "posted. You can ask again, changed: /cohort ask <question>.\n"
                       "The facilitator's note: please rephrase @here")
    assert "question" not in " ".join(harness.dms("ana"))  # (nothing went through the outbox)

    await harness.say("fay", f"approve {ids['Should']}")
    await harness.say("fay", "release")
    posted = {p.split("\n")[1]: p.split("\n")[0] for p in _anonymous(harness.channel_posts())}
    number = posted["Why is the quiet one always me?"].split("#")[1]
    assert sorted(t[0] for t in told[3:]) == ["ana", "ben"]
    assert ("ana", "peer-a", "Your anonymous question in Peer A, “Why is the quiet one always "
            f"me?”, is posted in the channel as #{number}.") in told
    assert [t[0] for t in told].count("ben") == 2  # approved, posted
    # Nothing more once the journey is over.
    count = len(told)
    await harness.say("ben", f"retract {code3}", None)
    await harness.say("fay", "release confirm")
    assert len(told) == count


async def test_a_link_lasts_seven_days_and_dies_with_the_process(
        harness: Harness, db_url: str) -> None:
    await harness.setup_cohort()
    await harness.say("root", "cohort set moderation on")
    code = _code(await harness.say("ana", "ask Why is the quiet one always me?", None))
    await harness.say("ana", "ask Can we talk about burnout today?", channel=None)
    await harness.say("ana", "ask Do others also doubt their work?", channel=None)
    ids = await _review_ids(harness)
    # Another process on the same database (a restart, a second instance) never had the
    # link: its facilitator's decision reaches nobody, and the author learns it with the code.
    async with running_harness(db_url, COHORTBOT_BOT__COMMANDS_PER_MINUTE="1000000") as other:
        other.clock.set(harness.clock.now())
        assert "Returned" in await other.say("fay", f"return {ids['Why']} not for us")
        assert other.messenger.whispered == [] and harness.messenger.whispered == []
    status = await harness.say("ana", f"question {code}", None)
    assert "returned by a facilitator and will not be posted" in status
    assert "not for us" in status
    # Within seven days this process still tells the author; after them it does not.
    await harness.advance("6d23h")
    await harness.say("fay", f"approve {ids['Can']}")
    assert [t[0] for t in harness.messenger.whispered] == ["ana"]
    await harness.advance("2h")
    await harness.say("fay", f"approve {ids['Do']}")
    assert [t[0] for t in harness.messenger.whispered] == ["ana"]


async def test_votes_show_on_the_post_every_ten_minutes_at_most_and_when_voting_closes(
        harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("ana", "ask How do I say no to my PI?", channel=None)
    await harness.say("ben", "ask Is it fine to skip the retreat?", channel=None)
    await harness.say("fay", "release")
    posts = {s.text.split("\n")[1]: s for s in harness.messenger.sent
             if s.text.startswith("Anonymous question")}
    say_no, retreat = posts["How do I say no to my PI?"], posts["Is it fine to skip the retreat?"]
    n_no = say_no.text.split("#")[1].split("\n")[0]
    n_retreat = retreat.text.split("#")[1].split("\n")[0]

    for who in ("cleo", "dev", "eli"):
        assert "Upvoted" in await harness.say(who, f"upvote {n_no}")
    await harness.say("ana", f"upvote {n_retreat}")
    # Nothing changes per vote; the count shows at the next ten-minute mark, in one edit each.
    assert say_no.edits == [] and retreat.edits == []
    listing = await harness.say("ben", "questions")
    assert listing.index(f"#{n_no} (3 ▲)") < listing.index(f"#{n_retreat} (1 ▲)")
    await harness.advance("12m")
    assert len(say_no.edits) == 1 and len(retreat.edits) == 1
    assert say_no.shown.plain().endswith("\n▲ 3 upvotes")
    assert retreat.shown.plain().endswith("\n▲ 1 upvote")
    assert say_no.shown.actions  # (still open: the button stays)

    # Two more votes within ten minutes: one more edit, at the next mark, not before.
    await harness.say("ben", f"upvote {n_retreat}")
    await harness.say("cleo", f"upvote {n_retreat}")
    await harness.advance("1m")
    assert len(retreat.edits) == 1
    await harness.advance("10m")
    assert len(retreat.edits) == 2 and retreat.shown.plain().endswith("\n▲ 3 upvotes")
    assert "most upvoted first" in await harness.say("ben", "questions")
    await harness.say("dev", f"upvote {n_retreat}")
    listing = await harness.say("ben", "questions")
    assert listing.index(f"#{n_retreat} (4 ▲)") < listing.index(f"#{n_no} (3 ▲)")

    # Voting closes at the end of the session (Tue 14:00 for 90 minutes): one last edit.
    await harness.advance("2d")
    assert say_no.shown.plain().endswith("\n▲ 3 upvotes · voting closed")
    assert retreat.shown.plain().endswith("\n▲ 4 upvotes · voting closed")
    assert not say_no.shown.actions and not retreat.shown.actions
    assert len(say_no.edits) == 2 and len(retreat.edits) == 4
    assert "closed" in await harness.say("eli", f"upvote {n_retreat}")


async def test_a_scheduled_release_tells_each_author_it_is_posted(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("ana", "ask How do I say no to my PI?", channel=None)
    await harness.say("ben", "ask Is it fine to skip the retreat?", channel=None)
    assert harness.messenger.whispered == []
    await harness.advance("1d4h")  # Tue 13:00: the batch goes out an hour before the session
    assert len(_anonymous(harness.channel_posts())) == 2
    told = sorted(harness.messenger.whispered)
    assert [(who, place) for who, place, _ in told] == [("ana", "peer-a"), ("ben", "peer-a")]
    assert all(re.search(r"is posted in the channel as #[12]\.$", text) for _, _, text in told)
