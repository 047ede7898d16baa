"""The fast path under a burst: thousands of concurrent buyers on keep-alive connections
that carry only the hot calls (so none is handed to aiohttp), several requests pipelined on
each, a share retried with the same key, and every invariant checked afterwards."""

from __future__ import annotations

import asyncio
import random

from tests.invariants import Answer, assert_invariants
from tests.lines import Line, buying, request
from tests.stack import MakeStack, Reply

CONNECTIONS = 150
PIPELINED = 4  # requests written at once on a connection, before reading the answers


async def test_thousands_of_buyers_on_the_fast_path_keep_every_invariant(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    drop = (await stack.new_drop(stock=1000, per_buyer_limit=2))["id"]
    rng = random.Random(13)
    buyers = [f"fast-{i}" for i in range(3000)]
    plans: list[tuple[str, int, str]] = [
        (rng.choice(buyers), rng.choice((1, 1, 1, 2)), f"tap-{i}") for i in range(6000)
    ]
    plans += rng.sample(plans, 2000)  # retries with the same key and body
    rng.shuffle(plans)
    shares = [plans[i::CONNECTIONS] for i in range(CONNECTIONS)]
    lines = [await Line.open(stack) for _ in range(CONNECTIONS)]

    async def fire(line: Line, share: list[tuple[str, int, str]]) -> list[Answer]:
        answers: list[Answer] = []
        for start in range(0, len(share), PIPELINED):
            group = share[start : start + PIPELINED]
            taps = [buying(stack, drop, buyer, key, quantity) for buyer, quantity, key in group]
            taps.append(request("GET", f"/v1/drops/{drop}"))  # buyers poll the drop too
            await line.send(b"".join(taps))
            got = await line.answers_until(len(line.answers) + len(taps), within=60)
            for (buyer, quantity, key), seen in zip(group, got[-len(taps) :], strict=False):
                reply = Reply(seen["status"], seen["json"], seen["headers"])
                answers.append(Answer(buyer, quantity, key, reply))
            polled = got[-1]
            assert polled["status"] == 200 and polled["json"]["id"] == drop
        return answers

    pairs = zip(lines, shares, strict=True)
    fired = await asyncio.gather(*(fire(line, share) for line, share in pairs))
    (front,) = [site._front for site in stack.runner.sites]  # type: ignore[attr-defined]
    ports = {line.writer.get_extra_info("sockname")[1] for line in lines}
    served = [
        c for c in front.connections
        if c.transport is not None and c.transport.get_extra_info("peername")[1] in ports
    ]  # fmt: skip
    assert len(served) == CONNECTIONS and all(c.relay is None for c in served)  # none handed on
    for line in lines:
        line.close()

    answers = [a for share in fired for a in share]
    assert len(answers) == len(plans)
    statuses = {(a.reply.status, a.reply.code) for a in answers}
    assert statuses <= {(201, None), (200, None), (409, "sold_out"), (409, "limit_reached")}
    assert (409, "sold_out") in statuses and (200, None) in statuses
    stored = await assert_invariants(stack, drop, answers)
    assert sum(o.quantity for o in stored) == 1000  # oversubscribed: every unit sold
