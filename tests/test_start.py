"""Processes starting together, or before their order store is up, as a process manager
starts them: every one comes up."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import time
from pathlib import Path
from threading import Barrier

from flashsale.engine import SQLiteStore
from flashsale.redis_server import free_port
from tests.processes import flashsale_env, spawn_logged
from tests.proxy import Proxy

ROUNDS, TOGETHER = 8, 12


def _open_after(barrier: Barrier, path: str) -> str:
    barrier.wait()  # every process at the starting line: they race for the file's schema
    try:
        asyncio.run(_open_and_close(path))
    except Exception as e:  # reported, not raised: the pool would hide which one
        return repr(e)
    return "ok"


async def _open_and_close(path: str) -> None:
    store = SQLiteStore(path)
    await store.open()
    await store.close()


def test_processes_opening_one_fresh_sqlite_store_at_once_all_come_up(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    manager = ctx.Manager()
    outcomes: list[str] = []
    with ctx.Pool(TOGETHER) as pool:
        for n in range(ROUNDS):
            path = str(tmp_path / f"orders-{n}.db")
            barrier = manager.Barrier(TOGETHER)
            outcomes += pool.starmap(_open_after, [(barrier, path)] * TOGETHER)
            with sqlite3.connect(path) as db:
                (mode,) = db.execute("PRAGMA journal_mode").fetchone()
                tables = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            assert mode == "wal" and {t for (t,) in tables} == {
                "orders",
                "webhooks",
                "webhook_deliveries",
            }
    assert outcomes == ["ok"] * (ROUNDS * TOGETHER), [o for o in outcomes if o != "ok"]


async def test_a_worker_started_before_its_store_waits_for_it(
    redis_url: str, pg_database: str, tmp_path: Path
) -> None:
    host_port = pg_database.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy_port = free_port()  # nothing listens there yet: the store is unreachable
    url = pg_database.replace(host_port, f"127.0.0.1:{proxy_port}")
    log = tmp_path / "worker.log"
    worker = spawn_logged("worker", env=flashsale_env(redis_url, url), log=log)
    proxy: Proxy | None = None
    try:
        await asyncio.sleep(1.5)
        assert worker.poll() is None, log.read_text()
        proxy = await Proxy(host, int(port)).start(port=proxy_port)
        deadline = time.monotonic() + 30
        while "settlement worker running" not in log.read_text():
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        assert "order store not reachable yet" in log.read_text()
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.wait, 20)
        if proxy is not None:
            await proxy.close()
    assert worker.returncode == 0, log.read_text()
