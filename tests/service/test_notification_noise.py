"""How often a member is pinged per session cycle (bot/service/notices.py): a mention of
them in the channel, or a direct message. By default at most twice (the role announcement
and one reminder), whatever `reminders-to` says; a nudge is one short line.

Counted over the cycle of Tue 8 Dec (from the last session's end to this one's), with the
default reminders 24 h and 1 h before, for members with no open actions and for members who
all have some (the check-in and its nudge are direct messages, so they count too)."""

from __future__ import annotations

from collections import Counter

import pytest

from bot.chat.message import Mention
from tests.conftest import Harness

MEMBERS = ("ana", "ben", "cleo", "dev", "eli")


def _pings(harness: Harness) -> Counter[str]:
    pings: Counter[str] = Counter()
    for sent in harness.messenger.sent:
        if sent.direct:
            pings[sent.target] += 1
            continue
        pings.update({p.user.id for p in sent.message.parts
                      if isinstance(p, Mention) and not p.quiet})
    return pings


@pytest.mark.parametrize("actions", [False, True], ids=["no-actions", "open-actions"])
@pytest.mark.parametrize("to", ["channel", "dm", "both"])
async def test_a_member_is_pinged_at_most_twice_per_session_cycle(
        harness: Harness, to: str, actions: bool) -> None:
    await harness.setup_cohort()
    await harness.say("root", f"cohort set reminders-to {to}")
    await harness.advance("1d6h")  # past the first session (Tue 1 Dec)
    for member in MEMBERS if actions else ():
        await harness.say(member, "action add Try one thing from the session")
    harness.clear()
    await harness.advance("7d")  # the whole cycle of Tue 8 Dec
    pings = _pings(harness)
    assert set(pings) == set(MEMBERS), pings
    assert max(pings.values()) == 2, pings
    assert min(pings.values()) >= 1, pings
    # Both reminders still go out; only the last one pings.
    reminders = [s for s in harness.messenger.sent if s.text.startswith("Reminder")]
    if to != "dm":
        assert sorted(s.text.split(" — ")[0] for s in reminders if not s.direct) == [
            "Reminder: Peer A meets in 1 day", "Reminder: Peer A meets in 1 h"]
    early = [s for s in reminders if "in 1 day" in s.text]
    assert all(not s.message.mentions() and "\n" not in s.text for s in early), early
    if actions:  # every member had the check-in; role holders had no nudge, but all hear
        assert all(any(d.startswith("Check-in time") for d in harness.dms(m)) for m in MEMBERS)
    if to == "channel":  # the last reminder names everyone present, pinging or not
        [last] = [s for s in reminders if "in 1 h" in s.text]
        assert all(f"@{m}" in last.text for m in MEMBERS), last.text
        assert len(last.message.pings()) < len(MEMBERS) if actions else \
            len(last.message.pings()) == len(MEMBERS)


async def test_a_nudge_is_one_short_line(harness: Harness) -> None:
    await harness.setup_cohort()
    await harness.say("cleo", "action add Draft the intro for the group")  # (consults on 8 Dec)
    await harness.advance("1d6h")
    harness.clear()
    await harness.advance("6d")  # the check-in (48 h before) and the nudge (24 h before)
    dms = harness.dms("cleo")
    assert dms[0].startswith("Check-in time (Peer A)")
    [nudge] = [d for d in dms if d.startswith("Nudge")]
    assert nudge == "Nudge: your check-in for Peer A is still open: /cohort checkin."
