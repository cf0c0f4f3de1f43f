"""What a running bot counts, for `/metrics` (Prometheus text format).

The metrics live in one registry of their own, so the page shows cohortbot's figures and
nothing a library registers globally. Labels are only ever platform names and fixed outcome
words: no user content, no user, channel or cohort ids, whatever happens.

Counters are bumped where the thing happens (a command answered, a notification fired, a
message's outcome recorded); the outbox gauges are read from the database when the page is
asked for (`bot.ops`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

COMMANDS = Counter(
    "cohortbot_commands", "Commands answered, by platform and outcome (ok, refused: a clear "
    "error reply to bad input or a missing right; unavailable: the database was not "
    "reachable; error: unexpected, logged with a reference id; duplicate: a redelivery, "
    "ignored).", ["platform", "outcome"], registry=REGISTRY)

NOTIFICATIONS = Counter(
    "cohortbot_notifications", "Notifications fired (on_time, late) or dropped as stale.",
    ["outcome"], registry=REGISTRY)

MESSAGES = Counter(
    "cohortbot_messages", "Outbox messages by outcome: sent, failed (for good), dropped "
    "(stale), retried, postponed (platform unreachable).", ["platform", "outcome"],
    registry=REGISTRY)

PLATFORM_ERRORS = Counter(
    "cohortbot_platform_errors", "Requests to a platform that failed: unreachable, timed out, "
    "rate limited or refused.", ["platform"], registry=REGISTRY)

RATE_LIMIT_WAITS = Counter(
    "cohortbot_rate_limit_waits", "Times a send waited because the platform said to slow "
    "down (HTTP 429, M_LIMIT_EXCEEDED).", ["platform"], registry=REGISTRY)

RATE_LIMIT_SECONDS = Counter(
    "cohortbot_rate_limit_wait_seconds", "Seconds spent waiting out rate limits.",
    ["platform"], registry=REGISTRY)

OUTBOX_DEPTH = Gauge(
    "cohortbot_outbox_depth", "Messages waiting in the outbox (pending, due or not).",
    registry=REGISTRY)

OUTBOX_LAG = Gauge(
    "cohortbot_outbox_lag_seconds", "How long the oldest due, unsent message has been due "
    "(0 when nothing is waiting).", registry=REGISTRY)


def rate_limited(platform: str, seconds: float) -> None:
    """A send waits `seconds` because `platform` asked it to."""
    RATE_LIMIT_WAITS.labels(platform).inc()
    RATE_LIMIT_SECONDS.labels(platform).inc(max(seconds, 0.0))
