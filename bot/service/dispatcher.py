"""Delivery: fire due notifications into outbox messages, then send due messages.

Both steps claim rows in short transactions, so several instances can share the work and a
crash loses nothing: a fired notification's messages were committed with it, and a claimed
message whose send was never confirmed is retried when its lease ends (platforms dedupe by the
outbox id). Failures back off with bounded delays, never a tight loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import metrics
from bot.chat.message import Message
from bot.domain.model import DELETE, DROPPED, EDIT, FAILED, PENDING, SENT, OutboxMessage
from bot.service.api import Policy
from bot.service.authors import AuthorLinks
from bot.service.notices import fire
from bot.service.planner import plan_next
from bot.service.ports import (
    Clock,
    DeliveryError,
    Directory,
    Messenger,
    Outgoing,
    UnitOfWorkFactory,
)

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 12
MAX_BACKOFF = timedelta(minutes=10)
# A platform that cannot be reached is tried again after a pause that doubles up to a minute:
# a few requests a minute at most while it is down, and what fell due goes out soon after.
OUTAGE_FIRST_PAUSE = timedelta(seconds=5)
OUTAGE_MAX_PAUSE = timedelta(seconds=60)
UNREACHABLE = "unreachable"
#: A change to a message not sent yet waits this long before it looks again.
CHANGE_WAIT = timedelta(seconds=5)
SEND_LANES = 8  # places sent to side by side
FIRST_FIRE_BATCH = 2 * SEND_LANES  # then doubling up to the policy's batch size


# How `_send_one`'s outcomes are named in `cohortbot_messages`.
_OUTCOME_WORDS = {SENT: "sent", FAILED: "failed", DROPPED: "dropped", "retry": "retried",
                  UNREACHABLE: "postponed"}


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStats:
    fired: int = 0
    dropped: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0


class Dispatcher:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        policy: Policy,
        messengers: dict[str, Messenger],
        directories: dict[str, Directory] | None = None,
        links: AuthorLinks | None = None,
    ) -> None:
        self._uow = uow
        self._links = links or AuthorLinks()
        self._clock = clock
        self._policy = policy
        self._messengers = messengers
        self._directories = directories or {}
        self._outage: dict[str, timedelta] = {}  # platform → its next pause while down
        self._down_until: dict[str, datetime] = {}
        self._halted = False

    async def release_leases(self, *, claimed_before: datetime | None = None) -> int:
        """Forget leases: all of them (a single instance starting up), or those taken before
        `claimed_before` (a new leader, once its predecessor has surely stopped sending).
        Leases held by a process that died would otherwise delay its messages until they
        expire. Returns how many were released."""
        cutoff = None if claimed_before is None else claimed_before + LEASE
        async with self._uow() as uow:
            leased = [m for m in await uow.find(OutboxMessage, status="pending")
                      if m.claimed_until is not None
                      and (cutoff is None or m.claimed_until < cutoff)]
            for m in leased:
                m.claimed_until = None
            await uow.commit()
        return len(leased)

    def halt(self) -> None:
        """Stop sending after the messages in flight (this instance no longer leads); what
        it had claimed and not sent waits for the next leader."""
        self._halted = True

    def resume(self) -> None:
        self._halted = False

    def unreachable(self) -> list[str]:
        """The platforms whose last send found them down (until one gets through)."""
        return sorted(self._outage)

    async def next_due(self) -> datetime | None:
        """When there is next something to do: a notification to fire, or a message for a
        platform this process sends to, and not before a platform found down is tried again
        (so a platform that is down, or has no sender here, never makes a busy loop)."""
        now = self._clock.now()
        up = [p for p in self._messengers if self._down_until.get(p, now) <= now]
        async with self._uow() as uow:
            found = await uow.next_due(up)
        paused = [t for t in self._down_until.values() if t > now]
        return min([found, *paused] if found else paused, default=None)

    async def run_due(self) -> RunStats:
        """Fire what is due and send what is due. Firing goes a batch at a time, the first
        batches small, and sending runs beside the firing of the next batch: with thousands
        of notifications due at once, the first messages go out within moments while later
        ones are still being fired."""
        fired = dropped = sent = failed = retried = 0
        size = min(FIRST_FIRE_BATCH, self._policy.batch_size)
        sending: asyncio.Task[tuple[int, int, int]] | None = None
        try:
            while True:
                f, d = await self._fire_batch(size)
                fired, dropped = fired + f, dropped + d
                if sending is not None:
                    s, x, r = await sending
                    sent, failed, retried = sent + s, failed + x, retried + r
                # (Started after the batch committed, so it sees the batch's messages.)
                sending = asyncio.create_task(self._send_due())
                if f + d == 0 or self._halted:  # (firing may plan steps due already)
                    s, x, r = await sending
                    sending = None
                    return RunStats(fired=fired, dropped=dropped, sent=sent + s,
                                    failed=failed + x, retried=retried + r)
                size = min(size * 2, self._policy.batch_size)
        finally:
            if sending is not None:  # firing failed: let the sends under way finish
                await asyncio.gather(sending, return_exceptions=True)

    async def _fire_batch(self, size: int) -> tuple[int, int]:
        """Fire one batch of due notifications in one transaction."""
        outcomes: Counter[str] = Counter()
        now = self._clock.now()
        tidings = self._links.batch()
        async with self._uow() as uow:
            for notice in await uow.claim_notifications(now, size):
                fired = await fire(uow, notice, now, self._policy, self._directories, tidings)
                if fired:
                    outcomes["late" if notice.late else "on_time"] += 1
                elif fired is not None:
                    outcomes["dropped"] += 1
                await plan_next(uow, notice)
            await uow.commit()
        await tidings.deliver(self._messengers)
        for outcome, n in outcomes.items():  # (counted once committed)
            metrics.NOTIFICATIONS.labels(outcome).inc(n)
        return outcomes["late"] + outcomes["on_time"], outcomes["dropped"]

    async def _send_due(self) -> tuple[int, int, int]:
        """Send what is due, a claimed batch at a time. Messages to different places go out
        side by side (up to `SEND_LANES`); to one place, in order. Each platform's messenger
        paces itself against the platform's limits."""
        counts: Counter[str] = Counter()
        now = self._clock.now()
        # A platform found down waits out its pause, new messages included.
        platforms = [p for p in self._messengers if self._down_until.get(p, now) <= now]
        while platforms and not self._halted:
            now = self._clock.now()
            async with self._uow() as uow:
                batch = await uow.claim_outbox(now, self._policy.batch_size, now + LEASE,
                                               platforms)
                await uow.commit()
            if not batch:
                break
            for platform in await self._send_batch(batch, counts):
                platforms.remove(platform)
        return (counts[SENT], counts[FAILED] + counts[DROPPED],
                counts["retry"] + counts[UNREACHABLE])

    async def _send_batch(self, batch: list[OutboxMessage], counts: Counter[str]) -> set[str]:
        """Send a claimed batch, one lane per place; returns the platforms found down."""
        lanes: dict[tuple[str, str], list[OutboxMessage]] = defaultdict(list)
        for row in batch:
            lanes[(row.platform, row.target)].append(row)
        down: set[str] = set()
        waiting: list[int] = []
        slots = asyncio.Semaphore(SEND_LANES)

        async def lane(rows: list[OutboxMessage]) -> None:
            async with slots:
                for row in rows:
                    if self._halted:
                        return
                    if row.platform in down:
                        # One request found the platform down: the rest waits too, rather
                        # than each message trying (and failing) in turn.
                        waiting.append(row.id)
                        continue
                    outcome = await self._send_one(row)
                    counts[outcome] += 1
                    metrics.MESSAGES.labels(row.platform, _OUTCOME_WORDS[outcome]).inc()
                    if outcome == UNREACHABLE:
                        down.add(row.platform)

        await asyncio.gather(*(lane(rows) for rows in lanes.values()))
        if waiting:
            await self._postpone(waiting, min(self._down_until[p] for p in down), "waiting")
        return down

    async def _send_one(self, row: OutboxMessage) -> str:
        now = self._clock.now()
        if row.stale_at is not None and now >= row.stale_at:
            log.warning("dropped stale message %s (due %s)", row.key, row.due_at.isoformat())
            await self._finish(row.id, DROPPED, error="stale")
            return DROPPED
        out = Outgoing(outbox_id=row.id, key=row.key, target=row.target, direct=row.direct,
                       message=Message.from_json(row.body), tenant=row.tenant,
                       attempt=row.attempts)
        messenger = self._messengers[row.platform]
        try:
            if row.op in (EDIT, DELETE):
                changed = await self._change(row, out, messenger)
                if changed is not None:
                    return changed
                message_id = None
            else:
                message_id = await messenger.send(out)
        except DeliveryError as e:
            metrics.PLATFORM_ERRORS.labels(row.platform).inc()
            if e.unreachable:
                pause = self._outage.get(row.platform, OUTAGE_FIRST_PAUSE)
                self._outage[row.platform] = min(pause * 2, OUTAGE_MAX_PAUSE)
                self._down_until[row.platform] = now + pause
                log.warning("%s unreachable (%s); sending there again in %.0f s",
                            row.platform, e.reason, pause.total_seconds())
                await self._postpone([row.id], now + pause, e.reason)
                return UNREACHABLE
            if e.refused and not e.permanent:
                wait = timedelta(seconds=e.retry_after or 1.0)
                log.info("message %s: %s; sending again in %.1f s", row.key, e.reason,
                         wait.total_seconds())
                await self._postpone([row.id], now + wait, e.reason)
                return "retry"
            if e.permanent or row.attempts >= MAX_ATTEMPTS:
                log.error("message %s failed for good on %s: %s", row.key, row.platform, e.reason)
                await self._finish(row.id, FAILED, error=e.reason)
                return FAILED
            delay = timedelta(seconds=e.retry_after) if e.retry_after else \
                min(timedelta(seconds=2 ** row.attempts), MAX_BACKOFF)
            log.warning("message %s: %s; retrying in %.0f s", row.key, e.reason,
                        delay.total_seconds())
            await self._retry(row.id, now + delay, e.reason)
            return "retry"
        self._outage.pop(row.platform, None)
        await self._finish(row.id, SENT, message_id=message_id)
        return SENT

    async def _change(self, row: OutboxMessage, out: Outgoing, messenger: Messenger
                      ) -> str | None:
        """Edit or remove the message of the row keyed `row.of_key`. Returns an outcome
        when there is nothing to do (yet), None once the platform has made the change."""
        async with self._uow() as uow:
            found = await uow.find(OutboxMessage, key=row.of_key)
            status, message_id = (found[0].status, found[0].platform_message_id) if found \
                else (None, None)
        if status == PENDING:
            await self._postpone([row.id], self._clock.now() + CHANGE_WAIT, "not sent yet")
            return "retry"
        if status != SENT or not message_id:
            # Never sent (given up, dropped) or long gone: there is nothing to change.
            await self._finish(row.id, DROPPED, error="no message to change")
            return DROPPED
        if row.op == DELETE:
            await messenger.delete(out, message_id)
        else:
            await messenger.edit(out, message_id)
        if row.op == DELETE:
            async with self._uow() as uow:
                for kept in await uow.find(OutboxMessage, key=row.of_key):
                    kept.keep = False  # removed: nothing will change it again
                await uow.commit()
        return None

    async def _finish(self, row_id: int, status: str, *, message_id: str | None = None,
                      error: str | None = None) -> None:
        async with self._uow() as uow:
            await uow.finish_outbox(row_id, status=status,
                                    sent_at=self._clock.now() if status == SENT else None,
                                    message_id=message_id, error=error[:300] if error else None)
            await uow.commit()

    async def _postpone(self, row_ids: list[int], at: datetime, error: str) -> None:
        """Move claimed messages to `at` without using up an attempt: they never reached
        the platform."""
        if not row_ids:
            return
        async with self._uow() as uow:
            for row in await uow.find(OutboxMessage, id=tuple(row_ids)):
                row.due_at, row.claimed_until, row.error = at, None, error[:300]
                row.attempts = max(row.attempts - 1, 0)
            await uow.commit()

    async def _retry(self, row_id: int, at: datetime, error: str) -> None:
        async with self._uow() as uow:
            row = await uow.get(OutboxMessage, row_id)
            if row is None:
                return
            row.due_at, row.claimed_until, row.error = at, None, error[:300]
            await uow.commit()
