"""The servers the bench starts: its own redis-server, `serve --workers N` and a worker,
and the drops it fires at."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import aiohttp

from flashsale.config import Settings
from flashsale.gateway.auth import Auth
from flashsale.loadtest.procs import flashsale, start
from flashsale.redis_server import RedisServer, free_port


def wait_port(port: int, proc: subprocess.Popen[bytes], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {within:g}s")


async def new_drop(url: str, host_key: str, open_it: bool = True, **spec: object) -> str:
    headers = {"Authorization": f"Bearer {host_key}"}
    body = {"sku": "bench", "title": "Bench", "price": 1, "currency": "EUR", **spec}
    async with (
        aiohttp.ClientSession(url, headers=headers) as http,
        http.post("/v1/drops", json=body) as r,
    ):
        drop = await r.json()
    if open_it:
        await open_drop(url, host_key, str(drop["id"]))
    return str(drop["id"])


async def open_drop(url: str, host_key: str, drop_id: str) -> None:
    headers = {"Authorization": f"Bearer {host_key}"}
    async with (
        aiohttp.ClientSession(url, headers=headers) as http,
        http.post(f"/v1/drops/{drop_id}/open") as r,
    ):
        r.raise_for_status()


@dataclass
class Rig:
    """A whole flashsale of the bench's own: Redis, `serve --workers N`, one worker."""

    procs: int
    url: str
    port: int
    redis: RedisServer
    env: dict[str, str]
    secret: str
    host_key: str
    gateway: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    settings: Settings  # what the gateway and the worker run with

    @cached_property
    def auth(self) -> Auth:
        """Mints buyer tokens the rig's gateways accept (made once: the bench mints 20,000)."""
        return Auth(self.secret, [])


def start_rig(stack: ExitStack, work: Path, procs: int) -> Rig:
    redis = RedisServer(work / f"redis-{procs}").start()
    stack.callback(redis.stop)
    secret, host_key = secrets.token_urlsafe(32), "hk_" + secrets.token_urlsafe(24)
    settings = Settings(
        data_dir=work / f"data-{procs}",
        redis_url=redis.url,
        database_url=f"sqlite:///{work / f'orders-{procs}.db'}",
        token_secret=secret,
        host_keys=[host_key],
        webhook_allow_private=True,  # (h) and the seed night deliver to a receiver on loopback
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    env |= settings.to_env()
    port = free_port()
    serve = flashsale("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(procs))
    gateway = start(stack, serve, env)
    worker = start(stack, flashsale("worker"), env)
    wait_port(port, gateway)
    return Rig(
        procs, f"http://127.0.0.1:{port}", port, redis, env, secret, host_key, gateway, worker,
        settings,
    )  # fmt: skip
