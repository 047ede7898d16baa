"""Running `flashsale` as a separate process, the way ops run it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp


def flashsale_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    env |= {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_DATABASE_URL": database_url}
    return env | extra


def spawn(*args: str, env: dict[str, str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flashsale", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def spawn_logged(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Like spawn, but its output goes to a file: a process that logs a lot (a warning per
    refused request during an outage) never blocks on a pipe nobody reads."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flashsale", *args], env=env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashsale", *args], env=env, text=True, capture_output=True,
        timeout=timeout,
    )  # fmt: skip


async def wait_ready(
    base: str, alive: Callable[[], bool], output: Callable[[], str], within: float = 30.0
) -> None:
    """Until the gateway (or `up`) at `base` answers /readyz with 200; fails if it exits."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            assert alive(), f"{base} exited:\n{output()}"
            try:
                async with http.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, f"{base} not ready:\n{output()}"
            await asyncio.sleep(0.05)
