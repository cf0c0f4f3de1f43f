"""The Slack messenger against the fake Web API: pacing, errors, never twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.messenger import METADATA_TYPE, SlackMessenger
from adapters.slack.pacing import Pacer
from adapters.slack.platform import retry_handlers
from bot import metrics
from bot.chat.message import Message
from bot.service.ports import DeliveryError, Outgoing
from tests.support.slack import WORKSPACE as W
from tests.support.slack import FakeSlack
from tests.support.slack.process import free_port


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


async def test_pacer_allows_a_burst_then_one_a_second_per_channel() -> None:
    t = FakeTime()
    pacer = Pacer(rate=1.0, burst=3, margin=0.0, clock=t.clock, sleep=t.sleep)
    starts: list[tuple[str, float]] = []

    async def post(channel: str) -> None:
        async with pacer.slot(channel):
            starts.append((channel, t.now))

    for _ in range(5):
        await post("C1")
    await post("C2")

    assert [s for c, s in starts if c == "C1"] == [100.0, 100.0, 100.0, 101.0, 102.0]
    assert [s for c, s in starts if c == "C2"] == [102.0]  # its own lane: no wait
    pacer.hold("C2", 7)
    assert pacer.delay("C2") == 7
    await post("C2")
    assert starts[-1] == ("C2", 109.0)


async def test_pacer_keeps_order_within_a_channel() -> None:
    pacer = Pacer(rate=50.0, burst=1)
    order: list[int] = []

    async def post(i: int) -> None:
        async with pacer.slot("C1"):
            await asyncio.sleep(0)
            order.append(i)

    await asyncio.gather(*(post(i) for i in range(6)))
    assert order == list(range(6))


def outgoing(n: int, text: str, target: str = W.channel, *, direct: bool = False,
             key: str = "reminder:1:60", attempt: int = 1) -> Outgoing:
    return Outgoing(outbox_id=n, key=f"{key}/{n}", target=target, direct=direct,
                    message=Message.of(text), tenant="slack", attempt=attempt)


@pytest.fixture
async def messenger(fake_slack: FakeSlack) -> AsyncIterator[SlackMessenger]:
    fake_slack.set_latency(0.0, 0.002)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        client = AsyncWebClient(token=W.bot_token, base_url=fake_slack.api_url, session=session,
                                timeout=1, retry_handlers=retry_handlers(rate_limit_retries=0))
        m = SlackMessenger()
        m.bind(client, lambda: frozenset({("slack", W.admin)}))
        yield m


async def test_posts_carry_the_outbox_id_and_never_unfurl(
        messenger: SlackMessenger, fake_slack: FakeSlack) -> None:
    ts = await messenger.send(outgoing(7, "See https://example.org <!here>"))

    [post] = fake_slack.posts(W.channel)
    assert post["ts"] == ts
    assert post["metadata"] == {"event_type": METADATA_TYPE, "event_payload": {"outbox_id": 7}}
    assert post["unfurl_links"] is False and post["unfurl_media"] is False
    assert "<!here>" not in post["text"]


async def test_direct_messages_open_the_conversation_once(
        messenger: SlackMessenger, fake_slack: FakeSlack) -> None:
    for n in range(3):
        await messenger.send(outgoing(n, f"check-in {n}", W.alice, direct=True))

    assert len(fake_slack.calls_to("conversations.open")) == 1
    dm = fake_slack.dm_channel(W.alice)
    assert [m["text"] for m in fake_slack.messages(str(dm))] == [
        "check-in 0", "check-in 1", "check-in 2"]


async def test_a_post_whose_outcome_is_unknown_is_not_posted_twice(
        messenger: SlackMessenger, fake_slack: FakeSlack) -> None:
    fake_slack.hang_next("chat.postMessage", 1.5, process=True)

    with pytest.raises(DeliveryError) as info:
        await messenger.send(outgoing(11, "Reminder: Peer A meets in 1 h"))
    assert info.value.reason == "timeout" and not info.value.permanent
    await fake_slack.wait_for(lambda: fake_slack.posts(W.channel), what="the hung post")

    ts = await messenger.send(outgoing(11, "Reminder: Peer A meets in 1 h"))

    [post] = fake_slack.posts(W.channel)
    assert post["ts"] == ts
    assert len(fake_slack.calls_to("conversations.history")) == 1
    # An unknown outcome that never reached Slack is posted on the next try.
    fake_slack.hang_next("chat.postMessage", 1.5, process=False)
    with pytest.raises(DeliveryError):
        await messenger.send(outgoing(12, "second"))
    await messenger.send(outgoing(12, "second"))
    assert [p["text"] for p in fake_slack.posts(W.channel)] == [
        "Reminder: Peer A meets in 1 h", "second"]


async def test_a_post_answered_with_500_after_slack_took_it_is_not_posted_twice(
        messenger: SlackMessenger, fake_slack: FakeSlack) -> None:
    # Slack posted it and still answered 500: the client must not send it again at once,
    # and the outbox's next attempt finds it.
    fake_slack.fail_next("chat.postMessage", 500, applied=True)

    with pytest.raises(DeliveryError) as info:
        await messenger.send(outgoing(21, "Reminder: Peer A meets in 1 day"))
    assert not info.value.permanent
    assert len(fake_slack.calls_to("chat.postMessage")) == 1

    ts = await messenger.send(outgoing(21, "Reminder: Peer A meets in 1 day", attempt=2))

    [post] = fake_slack.posts(W.channel)
    assert post["ts"] == ts
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


async def test_calls_that_post_nothing_are_retried_after_a_500(
        messenger: SlackMessenger, fake_slack: FakeSlack) -> None:
    fake_slack.fail_next("conversations.open", 503)

    await messenger.send(outgoing(1, "check-in", W.alice, direct=True))

    assert len(fake_slack.calls_to("conversations.open")) == 2
    assert [m["text"] for m in fake_slack.messages(str(fake_slack.dm_channel(W.alice)))] == [
        "check-in"]


async def test_rate_limits_become_retry_after(messenger: SlackMessenger,
                                              fake_slack: FakeSlack) -> None:
    fake_slack.ratelimit_next("chat.postMessage", retry_after=4)
    def waits() -> float:
        return metrics.REGISTRY.get_sample_value("cohortbot_rate_limit_waits_total",
                                                 {"platform": "slack"}) or 0.0

    before = waits()

    with pytest.raises(DeliveryError) as info:
        await messenger.send(outgoing(1, "x"))

    assert info.value.reason == "ratelimited" and info.value.retry_after == 4.0
    assert not info.value.permanent
    assert messenger.pacer.delay(W.channel) > 3.0  # nothing else goes there meanwhile
    assert waits() == before + 1  # counted for /metrics


@pytest.mark.parametrize("error", ["not_in_channel", "is_archived", "channel_not_found"])
async def test_permanent_errors_fail_and_alert_the_admins_once(
        messenger: SlackMessenger, fake_slack: FakeSlack, error: str) -> None:
    target = {"not_in_channel": W.channel_without_bot, "channel_not_found": "C0GONE0000",
              "is_archived": W.channel}[error]
    if error == "is_archived":
        fake_slack.archive_channel(W.channel)

    for n in (1, 2):
        with pytest.raises(DeliveryError) as info:
            await messenger.send(outgoing(n, "Reminder", target))
        assert info.value.permanent and info.value.reason == error

    [alert] = [m["text"] for m in fake_slack.messages(str(fake_slack.dm_channel(W.admin)))]
    assert alert.startswith(f"I could not deliver a message (reminder) to <#{target}>")
    assert "will not be retried" in alert


async def test_a_revoked_token_is_permanent_and_alerts_nobody(
        messenger: SlackMessenger, fake_slack: FakeSlack) -> None:
    fake_slack.revoke_token(W.bot_token)

    with pytest.raises(DeliveryError) as info:
        await messenger.send(outgoing(1, "Reminder"))

    assert info.value.permanent and info.value.reason == "token_revoked"
    assert fake_slack.calls_to("conversations.open") == []


async def test_an_unreachable_slack_is_reported_as_such() -> None:
    client = AsyncWebClient(token=W.bot_token, base_url=f"http://127.0.0.1:{free_port()}/api/",
                            retry_handlers=[])
    m = SlackMessenger()
    m.bind(client, frozenset)

    with pytest.raises(DeliveryError) as info:
        await m.send(outgoing(1, "x"))

    assert info.value.unreachable and not info.value.permanent
    unbound = SlackMessenger()
    with pytest.raises(DeliveryError) as info:
        await unbound.send(outgoing(1, "x"))
    assert info.value.unreachable


async def test_a_burst_to_many_channels_meets_no_429(messenger: SlackMessenger,
                                                     fake_slack: FakeSlack) -> None:
    fake_slack.set_latency(0.005, 0.03)
    channels = [fake_slack.add_channel(f"c{i}", members=[W.bot_user]) for i in range(5)]
    sends = [outgoing(i * 10 + k, f"{c} #{k}", c) for i, c in enumerate(channels)
             for k in range(5)]

    await asyncio.gather(*(messenger.send(o) for o in sends))

    assert all(c.status == 200 for c in fake_slack.calls_to("chat.postMessage"))
    for c in channels:
        assert [p["text"] for p in fake_slack.posts(c)] == [f"{c} #{k}" for k in range(5)]
    assert json.dumps([p["metadata"] for p in fake_slack.posts()]).count("outbox_id") == 25
