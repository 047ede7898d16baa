"""(g) the waiting room at scale: a million tickets in one queue drop (Redis memory per
ticket, measured), and how many polls a second a gateway answers beside its purchases (and
what each poll costs Redis), from the same generator on the same rig."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from redis import Redis

from flashsale.engine import DropKeys, Engine
from flashsale.loadtest import cpu
from flashsale.loadtest.bench.generators import Measured, run_wrk
from flashsale.loadtest.bench.redis_cost import script_time
from flashsale.loadtest.bench.rig import Rig, new_drop, open_drop

POLL = "(g) queue polls"


def poll_lua(tokens: list[str]) -> str:
    listed = ",\n".join(f'"{t}"' for t in tokens)
    return f"""local tokens = {{
{listed}
}}
local n = #tokens
local i = 0
function request()
  i = i + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[(i % n) + 1]
  return wrk.format("GET", nil, nil, nil)
end
"""


def fill(rig: Rig, drop: str, tickets: int, batch: int = 5000) -> tuple[float, float]:
    """Takes `tickets` tickets before the start (bench-0, bench-1, ...) straight through
    queue.lua, pipelined; returns (seconds, Redis bytes per ticket)."""
    client = Redis.from_url(rig.redis.url)
    engine = Engine.from_url(rig.redis.url)  # for its scripts, as they are sent
    try:
        sha = client.script_load(engine.scripts.queue.script)
        keys = DropKeys.of(drop)
        before = int(client.info("memory")["used_memory"])
        start = time.perf_counter()
        for i in range(0, tickets, batch):
            pipe = client.pipeline(transaction=False)
            for n in range(i, min(tickets, i + batch)):
                pipe.evalsha(sha, len(keys), *keys, "join", f"bench-{n}")
            pipe.execute()
        took = time.perf_counter() - start
        after = int(client.info("memory")["used_memory"])
        return took, (after - before) / tickets
    finally:
        client.close()
        asyncio.run(engine.close())


def measure_queue(
    rig: Rig, work: Path, tokens: list[str], tickets: int, conns: int, dur: float,
    purchase: Measured | None,
) -> tuple[list[Measured], list[str]]:  # fmt: skip
    drop = asyncio.run(new_drop(rig.url, rig.host_key, stock=10**9, admission="queue",
                                open_it=False))  # fmt: skip
    took, per_ticket = fill(rig, drop, tickets)
    lines = [
        f"(g) {tickets:,} tickets taken before the start in {took:.1f} s "
        f"({tickets / took:,.0f}/s through queue.lua, pipelined): "
        f"[bold]{per_ticket:.0f} bytes of Redis memory per ticket[/bold] "
        f"({per_ticket * tickets / 2**20:,.0f} MiB in all)"
    ]
    asyncio.run(open_drop(rig.url, rig.host_key, drop))
    script = work / "poll.lua"
    script.write_text(poll_lua(tokens))
    calls0, usec0 = script_time(rig.redis)
    gateway = cpu.tree(rig.gateway.pid)
    used = cpu.seconds(gateway)
    polls = run_wrk(f"{rig.url}/v1/drops/{drop}/queue", script, rig.procs, conns, dur,
                    target=POLL)  # fmt: skip
    spent = cpu.seconds(gateway) - used
    calls, usec = (a - b for a, b in zip(script_time(rig.redis), (calls0, usec0), strict=True))
    answered = polls.rps * max(1, round(dur))
    per_poll = spent / answered * 1e6
    polls = replace(polls, server_cpu_us=per_poll)
    lines.append(
        f"(g) polls: [bold]{polls.rps:,.0f}/s[/bold] from {rig.procs} gateway process(es), "
        f"p50 {polls.p50_ms:.1f} ms, p99 {polls.p99_ms:.1f} ms, on a queue of {tickets:,}; "
        f"gateway CPU {per_poll:.1f} us a poll; Redis {usec / answered:.2f} us a "
        f"poll ({answered / max(1, calls):.0f} polls a script call, the door included)"
    )
    if purchase is not None and purchase.server_cpu_us:
        lines.append(
            f"(g) a poll against a purchase, same rig: [bold]{polls.rps / purchase.rps:.2f}x"
            f"[/bold] the rate, {per_poll / purchase.server_cpu_us:.2f}x the "
            "gateway CPU"
        )
    return [polls], lines
