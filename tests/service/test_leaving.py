"""Leaving the cohort's channel suspends a membership until the person is back (the core's
side; tests/slack and tests/matrix drive it from the platforms' own leave events)."""

from __future__ import annotations

from bot.domain.refs import ChannelRef, UserRef
from tests.conftest import Harness

PLACE = ChannelRef("terminal", "peer-a")


async def _moved(harness: Harness, who: str, *, present: bool) -> None:
    await harness.app.bot.moved(UserRef("terminal", who), PLACE, "terminal", present=present)
    await harness.app.dispatcher.run_due()


async def test_who_leaves_gets_nothing_until_back_and_facilitators_are_told(
        harness: Harness) -> None:
    await harness.setup_cohort(members="@ana @ben")
    await harness.say("root", "cohort set reminders-to both")
    await harness.say("ben", "action add Call the lab manager")
    await _moved(harness, "ben", present=False)
    assert harness.dms("fay") == ["@ben left the channel of Peer A: until they are back, they "
                                  "get no roles, reminders, messages or questions from it."]
    for command in ("next", "questions", "action list", "ask Why?"):
        reply = await harness.say("ben", command, channel=None)
        assert reply.startswith("You left the channel of Peer A, so its commands wait"), reply
    assert "Time zone you set" in await harness.say("ben", "my-data", channel=None)
    await _moved(harness, "ben", present=False)  # (a second leave changes nothing)
    assert len(harness.dms("fay")) == 1

    harness.clear()
    await harness.advance("1d6h")  # through Tuesday's session
    assert harness.dms("ben") == []  # no check-in, no DM reminder
    assert any(d.startswith("Reminder") for d in harness.dms("ana"))
    posts = "\n".join(harness.channel_posts())
    # No role for ben; (with reminders to both, the roles are in each one's DM reminder.)
    assert "@ben" not in posts and "Reminder: Peer A" in posts
    assert not any("Your role: consultant" in d for d in harness.dms("ana"))

    await _moved(harness, "ben", present=True)
    assert harness.dms("fay")[-1] == ("@ben is back in the channel of Peer A: they take part "
                                      "again.")
    assert (await harness.say("ben", "next")).startswith("Next session of Peer A")


async def test_a_place_that_is_no_cohorts_or_a_stranger_changes_nothing(
        harness: Harness) -> None:
    await harness.setup_cohort(members="@ana")
    await harness.app.bot.moved(UserRef("terminal", "ana"), ChannelRef("terminal", "random"),
                                "terminal", present=False)
    await harness.app.bot.moved(UserRef("terminal", "zed"), PLACE, "terminal", present=False)
    await harness.app.bot.moved(UserRef("terminal", "ana"), PLACE, "slack:T0OTHER",
                                present=False)
    await harness.app.dispatcher.run_due()
    assert harness.dms("fay") == []
    assert (await harness.say("ana", "next")).startswith("Next session of Peer A")
