"""The load generators the bench compares: the tool's own client (closed or open loop)
and wrk (with its Lua script), each measured the same way."""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flashsale.loadtest import fleet
from flashsale.loadtest.firing import Job, Shot, Workload
from flashsale.loadtest.http import request_bytes
from flashsale.loadtest.results import Latency

BENCH_BUYERS = 20_000
CEILINGS = {
    "aiohttp": "(a) aiohttp hello world",
    "bare": "(a') bare httptools hello world",
}  # enough that no buyer nears the per-buyer rate limit


@dataclass(frozen=True)
class Measured:
    """One row of the bench's table: what was measured, by which generator, and its figures
    (`dataclasses.replace` adds the server's side once it is known)."""

    target: str
    generator: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None = None  # the load tool's CPU per request
    server_cpu_us: float | None = None  # the server's CPU per request answered
    redis_bytes_per_order: float | None = None  # the drop's Redis bytes per purchase made


# ---- workloads for the tool's own client (closed loop, for a fixed time)
@dataclass
class Hello(Workload):
    host: str

    def shots(self) -> Iterator[Shot]:
        req = request_bytes(
            "POST", "/hello", self.host, {"Content-Type": "application/json"}, b'{"quantity":1}'
        )
        return (Shot(0.0, i, req) for i in itertools.count())


@dataclass
class Purchases(Workload):
    """Every request a real purchase: a new key, buyers in turn, stock that never ends.
    With a rate, requests are due at that rate (open loop); else as fast as answered."""

    host: str
    drop_id: str
    tokens: list[str]
    prefix: str
    rate: float | None = None
    count: int | None = None

    def shots(self) -> Iterator[Shot]:
        target = f"/v1/drops/{self.drop_id}/purchase"
        n = len(self.tokens)
        gap = 1.0 / self.rate if self.rate else 0.0
        for i in range(self.count) if self.count is not None else itertools.count():
            headers = {
                "Authorization": f"Bearer {self.tokens[i % n]}",
                "Idempotency-Key": f"{self.prefix}{i}",
                "Content-Type": "application/json",
            }
            body = b'{"quantity":1}'
            yield Shot(i * gap, i, request_bytes("POST", target, self.host, headers, body))


def own(
    port: int,
    workloads: list[Hello] | list[Purchases],
    conns: int,
    dur: float | None,
    cpus: set[int] | None = None,
    open_loop: bool = False,
    target: str = "",
) -> Measured:
    """Fires for `dur` seconds (or until the workloads end); answers 2xx per second."""
    job = Job("127.0.0.1", port, conns, 0.0, closed_loop=not open_loop, duration=dur, resends=0)
    started = time.perf_counter()
    records = asyncio.run(fleet.fire(job, workloads, cpus=cpus))
    span = dur or max(records.done, default=0.0) or time.perf_counter() - started
    ok = sum(1 for s in records.status if 200 <= s < 300)
    lat = Latency.of(list(records.latency_us))
    p50, p99 = lat.percentiles[50.0] / 1000, lat.percentiles[99.0] / 1000
    cpu_us = records.cpu_s / len(records) * 1e6 if len(records) else None
    return Measured(target, "flashsale loadtest client", ok / span, p50, p99, cpu_us)


def merge(rounds: tuple[Measured, ...], target: str) -> Measured:
    """Several rounds as one: mean rate, median percentiles."""
    mid = sorted(rounds, key=lambda m: m.rps)[len(rounds) // 2]
    cpu = [m.cpu_us for m in rounds if m.cpu_us is not None]
    return Measured(
        target,
        mid.generator,
        sum(m.rps for m in rounds) / len(rounds),
        mid.p50_ms,
        mid.p99_ms,
        sum(cpu) / len(cpu) if cpu else None,
    )


# ---- wrk
_WRK_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_WRK_PCT = re.compile(r"^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.M)
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str,
    script: Path,
    procs: int,
    conns: int,
    dur: float,
    cpus: set[int] | None = None,
    target: str = "",
) -> Measured:
    args = [
        "wrk",
        f"-t{procs}",
        f"-c{conns}",
        f"-d{max(1, round(dur))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    if cpus:
        args = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *args]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = _WRK_RPS.search(out)
    pct = {p: float(v) * _UNIT_MS[u] for p, v, u in _WRK_PCT.findall(out)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if rps is None or non2xx:
        raise RuntimeError(f"wrk: unexpected answers:\n{out}")
    return Measured(target, "wrk", float(rps.group(1)), pct.get("50", 0.0), pct.get("99", 0.0))


def lua(body: str, headers: dict[str, str], tokens: list[str] | None = None) -> str:
    head = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    if tokens is None:
        return f"wrk.method = \"POST\"\nwrk.body = '{body}'\n{head}"
    listed = ",\n".join(f'"{t}"' for t in tokens)
    return f"""{head}
local tokens = {{
{listed}
}}
local n = #tokens
local i = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function request()
  i = i + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[(i % n) + 1]
  wrk.headers["Idempotency-Key"] = "w" .. tid .. "-" .. i
  return wrk.format("POST", nil, nil, '{body}')
end
"""


# ---- processes
