"""The unit of work's contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from bot.db.engine import create_engine, session_factory
from bot.db.uow import SqlUnitOfWorkFactory
from bot.domain.model import Cohort, Notification, OutboxMessage

T0 = datetime.fromisoformat("2026-12-01T12:00:00+00:00")


def _factory(url: str) -> tuple[SqlUnitOfWorkFactory, object]:
    engine = create_engine(url)
    return SqlUnitOfWorkFactory(session_factory(engine)), engine


async def _cohort(uow_factory: SqlUnitOfWorkFactory) -> int:
    async with uow_factory() as uow:
        c = Cohort(name="A", slug="a", zone="UTC", created_at=T0, tenant="terminal", roles=["r"],
                   reminder_offsets=[60], settings={})
        uow.add(c)
        await uow.commit()
        return c.id


def _notice(cid: int, key: str, due: datetime) -> Notification:
    return Notification(key=key, kind="prompt", cohort_id=cid, due_at=due,
                        stale_at=due + timedelta(hours=1), payload={"text": key})


def _msg(key: str, due: datetime) -> OutboxMessage:
    return OutboxMessage(key=key, platform="terminal", target="a", direct=False,
                         body={"parts": [{"t": key}]}, created_at=due, due_at=due)


async def test_instants_round_trip_as_aware_utc(db_url: str) -> None:
    uows, engine = _factory(db_url)
    cid = await _cohort(uows)
    async with uows() as uow:
        c = await uow.get(Cohort, cid)
        assert c is not None and c.created_at == T0 and c.created_at.utcoffset() == timedelta(0)
    await engine.dispose()  # type: ignore[attr-defined]


async def test_notification_keys_are_unique_and_history_never_changes(db_url: str) -> None:
    uows, engine = _factory(db_url)
    cid = await _cohort(uows)
    async with uows() as uow:
        assert await uow.add_notification(_notice(cid, "k1", T0))
        # Re-planning a pending notification moves it; it does not duplicate it.
        await uow.add_notification(_notice(cid, "k1", T0 + timedelta(minutes=5)))
        await uow.commit()
    async with uows() as uow:
        rows = await uow.find(Notification, key="k1")
        assert len(rows) == 1 and rows[0].due_at == T0 + timedelta(minutes=5)
        rows[0].status = "fired"
        await uow.commit()
    async with uows() as uow:
        await uow.add_notification(_notice(cid, "k1", T0 + timedelta(hours=9)))
        await uow.commit()
    async with uows() as uow:
        [row] = await uow.find(Notification, key="k1")
        assert row.status == "fired" and row.due_at == T0 + timedelta(minutes=5)
    await engine.dispose()  # type: ignore[attr-defined]


async def test_voided_notifications_are_revived_by_replanning(db_url: str) -> None:
    uows, engine = _factory(db_url)
    cid = await _cohort(uows)
    async with uows() as uow:
        n = _notice(cid, "k2", T0)
        await uow.add_notification(n)
        await uow.commit()
    async with uows() as uow:
        [row] = await uow.find(Notification, key="k2")
        row.status = "void"
        await uow.commit()
    async with uows() as uow:
        await uow.add_notification(_notice(cid, "k2", T0))
        await uow.commit()
    async with uows() as uow:
        assert [r.status for r in await uow.find(Notification, key="k2")] == ["pending"]
    await engine.dispose()  # type: ignore[attr-defined]


async def test_bulk_insert_skips_live_keys_and_revives_void_ones(db_url: str) -> None:
    from bot.domain.planning import PlannedNotice

    uows, engine = _factory(db_url)
    cid = await _cohort(uows)

    def planned(key: str, due: datetime) -> PlannedNotice:
        return PlannedNotice(key=key, kind="prompt", due_at=due, stale_at=due + timedelta(1),
                             payload={"text": key})

    async with uows() as uow:
        for key, status in (("fired", "fired"), ("void", "void"), ("pending", "pending")):
            n = _notice(cid, key, T0)
            n.status = status
            uow.add(n)
        await uow.commit()
    later = T0 + timedelta(hours=2)
    async with uows() as uow:
        written = await uow.insert_notifications(
            [(cid, None, planned(k, later)) for k in ("fired", "void", "pending", "new")])
        await uow.commit()
    assert written == 2  # the void one and the new one
    async with uows() as uow:
        rows = {n.key: (n.status, n.due_at) for n in await uow.find(Notification)}
    assert rows == {"fired": ("fired", T0), "pending": ("pending", T0),
                    "void": ("pending", later), "new": ("pending", later)}
    await engine.dispose()  # type: ignore[attr-defined]


async def test_bulk_sessions_get_their_ids_in_order_and_notices_can_follow(db_url: str) -> None:
    from bot.domain.model import Session
    from bot.domain.planning import PlannedNotice

    uows, engine = _factory(db_url)
    cid = await _cohort(uows)
    slots = [T0 + timedelta(days=7 * i) for i in range(3)]
    # Twice, each in its own transaction: the second pass reuses whatever the first set up.
    for week in (0, 3):
        async with uows() as uow:
            rows = [(cid, slot + timedelta(days=7 * week), 90) for slot in slots]
            ids = await uow.insert_sessions(rows)
            for (_, slot, _), sid in zip(rows, ids, strict=True):
                session = await uow.get(Session, sid)
                assert session is not None and session.starts_at == slot
                assert session.duration_min == 90 and session.cohort_id == cid
            for part in (ids[:1], ids[1:]):  # two bulk writes in one transaction
                assert await uow.insert_notifications([
                    (cid, sid, PlannedNotice(key=f"s{sid}", kind="reminder", due_at=T0,
                                             stale_at=T0 + timedelta(1),
                                             payload={"session": sid}))
                    for sid in part]) == len(part)
            await uow.commit()
    async with uows() as uow:
        found = await uow.find(Notification)
        assert sorted(n.key for n in found) == sorted(
            f"s{n.session_id}" for n in found if n.payload == {"session": n.session_id})
        assert len(found) == 6
    await engine.dispose()  # type: ignore[attr-defined]


async def test_outbox_dedupes_by_key_and_next_due_is_the_earliest(db_url: str) -> None:
    uows, engine = _factory(db_url)
    cid = await _cohort(uows)
    async with uows() as uow:
        assert await uow.next_due() is None
        assert await uow.add_outbox(_msg("m1", T0 + timedelta(minutes=3)))
        assert not await uow.add_outbox(_msg("m1", T0))
        await uow.add_notification(_notice(cid, "n1", T0 + timedelta(minutes=1)))
        await uow.commit()
    async with uows() as uow:
        assert await uow.next_due() == T0 + timedelta(minutes=1)
        assert len(await uow.find(OutboxMessage, key="m1")) == 1
    await engine.dispose()  # type: ignore[attr-defined]


async def test_concurrent_claims_never_take_the_same_row(db_url: str) -> None:
    uows, engine = _factory(db_url)
    async with uows() as uow:
        for i in range(40):
            await uow.add_outbox(_msg(f"c{i}", T0))
        await uow.commit()

    async def claimer() -> list[str]:
        got: list[str] = []
        while True:
            async with uows() as uow:
                batch = await uow.claim_outbox(T0, 5, T0 + timedelta(minutes=1), ["terminal"])
                await uow.commit()
            if not batch:
                return got
            got += [m.key for m in batch]
            await asyncio.sleep(0)

    a, b, c = await asyncio.gather(claimer(), claimer(), claimer())
    assert sorted(a + b + c) == sorted(f"c{i}" for i in range(40))
    assert len(set(a + b + c)) == 40
    # Leased rows are not claimable again until the lease ends.
    async with uows() as uow:
        assert await uow.claim_outbox(T0, 5, T0, ["terminal"]) == []
        later = await uow.claim_outbox(T0 + timedelta(minutes=2), 50, T0, ["terminal"])
        assert len(later) == 40 and all(m.attempts == 2 for m in later)
    await engine.dispose()  # type: ignore[attr-defined]


async def test_a_finished_message_keeps_its_outcome_and_is_never_claimed_again(
    db_url: str,
) -> None:
    uows, engine = _factory(db_url)
    async with uows() as uow:
        for key in ("sent", "failed"):
            await uow.add_outbox(_msg(key, T0))
        await uow.commit()
    async with uows() as uow:
        claimed = {m.key: m.id for m in await uow.claim_outbox(
            T0, 5, T0 + timedelta(minutes=1), ["terminal"])}
        await uow.commit()
    async with uows() as uow:
        await uow.finish_outbox(claimed["sent"], status="sent", sent_at=T0,
                                message_id="$ev1", error=None)
        await uow.finish_outbox(claimed["failed"], status="failed", sent_at=None,
                                message_id=None, error="channel_not_found")
        await uow.commit()
    async with uows() as uow:
        rows = {m.key: m for m in await uow.find(OutboxMessage)}
        assert (rows["sent"].status, rows["sent"].sent_at, rows["sent"].platform_message_id,
                rows["sent"].claimed_until) == ("sent", T0, "$ev1", None)
        assert (rows["failed"].status, rows["failed"].error) == ("failed", "channel_not_found")
        assert await uow.claim_outbox(T0 + timedelta(hours=1), 5, T0, ["terminal"]) == []
    await engine.dispose()  # type: ignore[attr-defined]


async def test_seen_events_are_recorded_once(db_url: str) -> None:
    uows, engine = _factory(db_url)
    async with uows() as uow:
        assert await uow.seen("evt-1", T0)
        await uow.commit()
    async with uows() as uow:
        assert not await uow.seen("evt-1", T0)
    await engine.dispose()  # type: ignore[attr-defined]


async def test_seen_events_are_forgotten_after_the_redelivery_window(db_url: str) -> None:
    uows, engine = _factory(db_url)
    async with uows() as uow:
        assert await uow.seen("evt-old", T0)
        assert await uow.seen("evt-new", T0 + timedelta(hours=2))
        await uow.commit()
    async with uows() as uow:
        assert await uow.forget_events(T0 + timedelta(hours=1)) == 1
        await uow.commit()
    async with uows() as uow:
        assert await uow.seen("evt-old", T0 + timedelta(days=2))  # new again: it is gone
        assert not await uow.seen("evt-new", T0 + timedelta(days=2))
    await engine.dispose()  # type: ignore[attr-defined]
