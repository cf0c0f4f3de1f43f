"""A database adversary against anonymous questions and upvotes, on SQLite and PostgreSQL.

Who the adversary is: someone who holds a copy of the bot's database (a database admin, a
backup, a stolen disk). They also know the member list (it is in the database) and what the
platform knows: which event ids, trigger ids and response URLs came from whom. Where a test
says so, they also hold the operator's configured question secret. They do not see the
bot's memory or its traffic. The helpers of the attack are in `tests/privacy/adversary.py`.

Everything runs through the real Slack adapter: an admin creates a weekly cohort linked to
#cohort-1 with five members; Alice asks at 10:26:37 and Bob at 11:05:13 (UTC) with
`/cohort ask`; Ada releases the questions; Carol upvotes #1 with its button.

What each test proves:
1. `test_db_alone_cannot_name_who_asked`: right after the asks, the database alone links no
   member (and no sent event id) to a rate counter, a redelivery guard or a question: no
   stored value is an HMAC-SHA256 or SHA-256 of a message naming someone, under any key the
   database holds.
2. `test_db_alone_cannot_name_who_upvoted`: the same after the upvote: no voter hash (or
   anything else) names the voter.
3. `test_after_the_day_even_the_secret_cannot_name_who_asked`: once the UTC day of the asks
   is over (the planner's purge ran), even with the configured secret, whose HMAC with any
   stored value is tried as a key, no cap counter or guard hash names anyone. A control
   first shows that the same attack does name both askers while the day lasts.
4. `test_after_the_vote_even_the_secret_cannot_name_who_upvoted`: once the voting window of
   the released questions is over (the end of the next session, plus a day), the same holds
   for upvotes; the count stays on the question. A control first shows that the attack
   does name the voter while the vote is open.
5. `test_the_ask_transaction_writes_nothing_that_names_the_asker` (PostgreSQL: `xmin` is
   the id of the transaction that wrote a row): no row written in a question's transaction
   holds an asker's user id, DM channel id, or any id the test sent.
6. `test_no_platform_id_or_exact_time_of_a_secret_command_is_kept`: no event id, trigger id
   or response URL of an ask or upvote is stored anywhere, and no stored time lies within
   60 seconds of an ask or the upvote.
"""

from __future__ import annotations

from datetime import timedelta

from tests.privacy.adversary import (
    Link,
    Snapshot,
    ids_stored,
    keyed_hash_links,
    report,
    timestamps_near,
    xmin_rows,
)
from tests.privacy.conftest import (
    ALICE_ASKS,
    BOB_ASKS,
    CAROL,
    CAROL_UPVOTES,
    ON_BOTH,
    ON_POSTGRES,
    QUESTION_SECRET,
    RELEASE_AT,
    PrivacyBot,
    ask_questions,
    release,
    set_up_cohort,
    upvote,
    voting_closes,
)
from tests.support.slack import WORKSPACE as W

NEAR = timedelta(seconds=60)


def in_upvotes(links: list[Link]) -> list[Link]:
    return [link for link in links if link.found.table == "upvotes"]


def questions_of_the_day(snap: Snapshot) -> str:
    return ", ".join(f"#{q['id']} (day {q['day']})" for q in snap.tables["questions"])


@ON_BOTH
async def test_db_alone_cannot_name_who_asked(bot: PrivacyBot) -> None:
    await set_up_cohort(bot)
    await ask_questions(bot)

    snap = bot.snapshot()
    links = keyed_hash_links(snap, bot.ids())

    assert snap.tables["questions"], "the asks stored no question"
    assert not links, report(
        "The database alone names who asked (their rate counter or guard hash, and through "
        f"its day the questions {questions_of_the_day(snap)}):", links)


@ON_BOTH
async def test_db_alone_cannot_name_who_upvoted(bot: PrivacyBot) -> None:
    await set_up_cohort(bot)
    await ask_questions(bot)
    await upvote(bot, await release(bot))

    snap = bot.snapshot()
    links = keyed_hash_links(snap, bot.ids())

    assert snap.tables["upvotes"], "the upvote stored no row"
    assert not in_upvotes(links), report("The database alone names who upvoted:",
                                         in_upvotes(links))
    assert not links, report("The database alone names someone:", links)


@ON_BOTH
async def test_after_the_day_even_the_secret_cannot_name_who_asked(bot: PrivacyBot) -> None:
    await set_up_cohort(bot)
    await ask_questions(bot)
    # The control: the same day, the database and the secret do name both askers (so the
    # attack below is not blind to how the bot derives its keys).
    named = {link.who for link in keyed_hash_links(bot.snapshot(), bot.ids(),
                                                   secrets=[QUESTION_SECRET])}
    assert {f"slack:{W.alice}", f"slack:{W.bob}"} <= named, named
    next_midnight = (ALICE_ASKS + timedelta(days=1)).replace(hour=0, minute=0, second=0)
    await bot.advance_to(next_midnight + timedelta(hours=3))  # hourly purges ran

    snap = bot.snapshot()
    links = keyed_hash_links(snap, bot.ids(), secrets=[QUESTION_SECRET])

    assert snap.tables["questions"], "the asks stored no question"
    assert not links, report(
        "After the day is over, the database and the secret still name who asked:", links)


@ON_BOTH
async def test_after_the_vote_even_the_secret_cannot_name_who_upvoted(
        bot: PrivacyBot) -> None:
    await set_up_cohort(bot)
    await ask_questions(bot)
    await upvote(bot, await release(bot))
    before = bot.snapshot()
    # The control: while the vote is open, the database and the secret do name the voter.
    named = {link.who for link in keyed_hash_links(before, bot.ids(),
                                                   secrets=[QUESTION_SECRET])}
    assert f"slack:{CAROL}" in named, named
    closes = voting_closes(before, RELEASE_AT)
    await bot.advance_to(closes + timedelta(days=1))

    snap = bot.snapshot()
    links = keyed_hash_links(snap, bot.ids(), secrets=[QUESTION_SECRET])

    assert [q["upvotes"] for q in snap.tables["questions"] if q["number"] == 1] == [1], \
        "the upvote's count must outlive its voter hashes"
    assert not in_upvotes(links), report(
        f"After the voting window closed ({closes.isoformat()}), the database and the secret "
        "still name who upvoted:", in_upvotes(links))
    assert not links, report("After the voting window, the database and the secret still "
                             "name someone:", links)


@ON_POSTGRES
async def test_the_ask_transaction_writes_nothing_that_names_the_asker(
        bot: PrivacyBot) -> None:
    await set_up_cohort(bot)
    await ask_questions(bot)

    rows = xmin_rows(bot.database.url)
    question_xmins = {r.xmin for r in rows if r.table == "questions"}
    assert len(question_xmins) == 2, "each ask should have written its question"
    forbidden = {W.alice: "Alice's user id", W.bob: "Bob's user id"}
    for user in (W.alice, W.bob):
        dm = bot.fake.dm_channel(user)
        assert dm is not None
        forbidden[dm] = f"the DM channel of {user}"
    forbidden |= {s.value: f"{s.what} id of {s.sender}" for s in bot.ids()}

    leaks = [f"{r.table} row {r.text[:160]} (xmin {r.xmin}) holds {what} {value!r}"
             for r in rows if r.xmin in question_xmins
             for value, what in forbidden.items() if value in r.text]
    together = sorted({f"{r.table} (xmin {r.xmin})" for r in rows if r.xmin in question_xmins})
    assert not leaks, ("Rows written in a question's transaction name its asker:\n  "
                       + "\n  ".join(leaks) + "\nRows of the questions' transactions: "
                       + ", ".join(together))


@ON_BOTH
async def test_no_platform_id_or_exact_time_of_a_secret_command_is_kept(
        bot: PrivacyBot) -> None:
    await set_up_cohort(bot)
    await ask_questions(bot)
    await upvote(bot, await release(bot))

    snap = bot.snapshot()
    secret_ids = bot.ids(secret_only=True)
    assert {s.what for s in secret_ids} >= {"ask", "Upvote #1 button"}
    kept = ids_stored(snap, secret_ids)
    near = (timestamps_near(snap, ALICE_ASKS, NEAR, "Alice's ask")
            + timestamps_near(snap, BOB_ASKS, NEAR, "Bob's ask")
            + timestamps_near(snap, CAROL_UPVOTES, NEAR, "Carol's upvote"))

    assert not kept and not near, (
        "Platform ids of secret commands are stored:\n  " + "\n  ".join(map(str, kept))
        + "\nStored times give away when a secret command ran:\n  "
        + "\n  ".join(map(str, near)))
