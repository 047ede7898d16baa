"""The Lua rules, held directly to a real Redis (as arq tests its Lua): the void mark of a
recheck, what a recheck finds and what it decides, a scheduled drop promoted by any script,
and compaction's conditions and restore's idempotence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from flashsale.engine import GROUP, DropKeys, DropSpec, Engine, Scripts, new_order_ids


@pytest.fixture
async def engine(redis_url: str) -> AsyncIterator[Engine]:
    made = Engine.from_url(redis_url)
    yield made
    await made.close()


async def _drop(engine: Engine, **spec: object) -> str:
    fields: dict[str, object] = {"sku": "L", "title": "lua", "price": 1, "currency": "EUR",
                                 "stock": 5, "per_buyer_limit": 5} | spec  # fmt: skip
    drop = await engine.drops.create(DropSpec(**fields))  # type: ignore[arg-type]
    if spec.get("opens_at") is None:
        await engine.drops.open(drop.id)
    return drop.id


def _requests(drop_id: str, n: int, key: str = "") -> list[tuple[str, str, int, str, str]]:
    return [(oid, f"b{i}", 1, key, "") for i, oid in enumerate(new_order_ids(drop_id, n))]


async def test_a_recheck_finds_what_ran_and_voids_what_did_not(engine: Engine) -> None:
    drop_id = await _drop(engine)
    ran, lost = _requests(drop_id, 2), _requests(drop_id, 2)
    first = await engine.purchaser.decide_once(drop_id, 0, ran)
    assert [d.outcome for d in first] == ["created", "created"]
    again = await engine.purchaser.decide_once(drop_id, 1, ran)  # the same batch, rechecked
    assert [(d.outcome, d.order) for d in again] == [(d.outcome, d.order) for d in first]
    assert [d.outcome for d in await engine.purchaser.decide_once(drop_id, 1, lost)] == [
        "unavailable", "unavailable",
    ]  # fmt: skip
    # The lost batch's first attempt arriving after its recheck finds the mark: nothing.
    late = await engine.purchaser.decide_once(drop_id, 0, lost)
    assert [d.outcome for d in late] == ["unavailable", "unavailable"]
    assert int(await engine.redis.hget(DropKeys.of(drop_id).drop, "sold") or 0) == 2


async def test_any_script_opens_a_drop_whose_time_has_come(engine: Engine) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    by_purchase, by_sweep = await _drop(engine, opens_at=soon), await _drop(engine, opens_at=soon)
    early = await engine.purchaser.decide_once(by_purchase, 0, _requests(by_purchase, 1))
    assert [d.outcome for d in early] == ["not_live"]
    await asyncio.sleep(1.1)
    now = await engine.purchaser.decide_once(by_purchase, 0, _requests(by_purchase, 1))
    assert [d.outcome for d in now] == ["created"]
    await Scripts.call(engine.scripts.sweep, by_sweep, 100)
    assert await engine.redis.hget(DropKeys.of(by_sweep).drop, "status") == b"live"


async def test_compaction_waits_for_closed_retained_and_settled(engine: Engine) -> None:
    drop_id = await _drop(engine)
    await engine.purchaser.decide_once(drop_id, 0, _requests(drop_id, 2, key="k"))

    async def compact(retention_ms: int) -> int:
        return int(await Scripts.call(engine.scripts.compact, drop_id, retention_ms, GROUP))

    assert await compact(0) == 0  # live
    await engine.drops.close(drop_id)
    assert await compact(60_000) == 0  # closed a moment ago
    assert await compact(0) == 0  # its two orders are not settled
    events = DropKeys.of(drop_id).events
    read = await engine.redis.xreadgroup(GROUP, "t", {events: ">"})
    ids = [entry_id for _, entries in read for entry_id, _ in entries]
    assert await compact(0) == 0  # read, not acknowledged
    await engine.redis.xack(events, GROUP, *ids)
    assert await compact(0) == 1 and await compact(0) == 0
    keys = DropKeys.of(drop_id)
    assert [await engine.redis.exists(k) for k in keys] == [1] + [0] * (len(keys) - 1)

    # restore writes absolute values: twice is once
    for _ in range(2):
        await Scripts.call(engine.scripts.restore, drop_id, "buyers", "b0", 1, "b1", 1)
    await Scripts.call(engine.scripts.restore, drop_id, "done", GROUP)
    assert await engine.redis.hgetall(keys.buyers) == {b"b0": b"1", b"b1": b"1"}
    assert not await engine.redis.hexists(keys.drop, "compacted")
    assert await Scripts.call(engine.scripts.restore, drop_id, "buyers", "b0", 9) == 0
