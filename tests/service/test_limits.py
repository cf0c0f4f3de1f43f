"""Nobody can flood: per-person limits on commands and on messages to other people, timed by
the bot's clock (bot/service/limits.py)."""

from __future__ import annotations

from tests.conftest import Harness

SLOW = "You are sending commands faster than I can take them"


async def test_a_burst_is_fine_a_flood_is_refused_and_does_nothing(
        limited_harness: Harness) -> None:
    harness = limited_harness
    await harness.setup_cohort()
    replies = [await harness.say("ana", "next") for _ in range(30)]
    assert all(r.startswith("Next session of Peer A") for r in replies)
    refused = await harness.say("ana", "tz Asia/Tokyo", channel=None)
    assert refused.startswith(SLOW)
    assert "Usage" not in refused
    assert await harness.say("ben", "next") != refused  # others go on
    await harness.advance("61s")
    assert "Asia/Tokyo" not in await harness.say("ana", "tz", channel=None)  # nothing was done
    assert "Asia/Tokyo" in await harness.say("ana", "tz Asia/Tokyo", channel=None)


async def test_messages_to_others_are_limited_per_hour(limited_harness: Harness) -> None:
    harness = limited_harness
    await harness.setup_cohort()
    # ana holds a role in the next session (the rotation's first: case-giver).
    asked = [await harness.say("ana", f"swap case-giver @{who}")
             for who in ("ben", "cleo", "dev", "eli", "ben")]
    assert all(a.startswith("Asked @") for a in asked), asked
    assert len([d for who in ("ben", "cleo", "dev", "eli") for d in harness.dms(who)
                if "asks you to take" in d]) == 5
    sixth = await harness.say("ana", "swap case-giver @cleo")
    assert "messaged other people 5 times in the last hour" in sixth
    assert len([d for d in harness.dms("cleo") if "asks you to take" in d]) == 1
    # The refused request changed nothing: ben's (the fifth) is still the pending one.
    assert (await harness.say("ben", "swap accept")).startswith("You take case-giver")
    await harness.advance("1h1m")
    assert (await harness.say("ben", "swap case-giver @cleo")).startswith("Asked @")
