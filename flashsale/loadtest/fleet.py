"""N load processes, started together: each mints its buyers' tokens and opens its
connections, says it is ready, and fires at one start time t0 the parent picks. Progress
and, at the end, every process's records come back over a pipe."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from multiprocessing.connection import Connection as Pipe
from typing import Any

import uvloop

from flashsale.loadtest.firing import Job, Progress, Records, Shard, Workload

START_MARGIN_S = 0.2
PROGRESS_EVERY_S = 0.25


def _child(job: Job, traffic: Workload, pipe: Pipe, cpus: set[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        uvloop.run(_child_run(job, traffic, pipe))
    except BaseException:
        pipe.send(("error", traceback.format_exc()))
        raise


async def _child_run(job: Job, traffic: Workload, pipe: Pipe) -> None:
    traffic.prepare()
    last = 0.0

    def tick(p: Progress) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            pipe.send(("progress", p))

    shard = Shard(job, traffic.shots(), on_tick=tick, follow=traffic.follow)
    await shard.connect()
    pipe.send(("ready",))
    loop = asyncio.get_running_loop()
    shard.job.t0 = await loop.run_in_executor(None, pipe.recv)
    records = await shard.fire()
    pipe.send(("progress", shard.progress))  # the last word, whatever the throttle said
    pipe.send(("done", records))


async def fire(
    job: Job,
    traffics: Sequence[Workload],
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[float], None] | None = None,
    cpus: set[int] | None = None,
) -> Records:
    """Runs one process per traffic share; job.connections is split between them. `cpus`
    pins the load processes (the bench keeps them off the server's cores)."""
    ctx = multiprocessing.get_context("spawn")
    n = len(traffics)
    pipes: list[Pipe] = []
    procs = []
    for i, traffic in enumerate(traffics):
        share = job.connections // n + (1 if i < job.connections % n else 0)
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=_child, args=(replace(job, connections=share), traffic, theirs, cpus)
        )
        proc.start()
        theirs.close()
        pipes.append(ours)
        procs.append(proc)

    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[tuple[int, tuple[Any, ...]]] = asyncio.Queue()

    # One reading thread per pipe: a whole process's records arrive as one large message.
    readers = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fleet-pipe")

    async def read(i: int) -> None:
        while True:
            try:
                msg = await loop.run_in_executor(readers, pipes[i].recv)
            except (EOFError, OSError):
                await inbox.put((i, ("error", "the load process died")))
                return
            await inbox.put((i, msg))
            if msg[0] in ("done", "error"):
                return

    reading = [asyncio.create_task(read(i)) for i in range(n)]

    progress = [Progress() for _ in pipes]
    results: dict[int, Records] = {}
    ready = 0
    try:
        while len(results) < n:
            i, msg = await inbox.get()
            if msg[0] == "error":
                raise RuntimeError(f"load process {i} failed:\n{msg[1]}")
            if msg[0] == "ready":
                ready += 1
                if ready == n:
                    t0 = time.perf_counter() + START_MARGIN_S
                    for pipe in pipes:
                        pipe.send(t0)
                    if on_start is not None:
                        on_start(t0)
            elif msg[0] == "progress":
                progress[i] = msg[1]
                if on_progress is not None:
                    on_progress(Progress.total(progress))
            elif msg[0] == "done":
                results[i] = msg[1]
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.exitcode is None:
                proc.kill()
        for pipe in pipes:
            pipe.close()
        for task in reading:
            task.cancel()
        readers.shutdown(wait=False, cancel_futures=True)
    merged = Records()
    for i in range(n):
        merged.extend(results[i])
    return merged
