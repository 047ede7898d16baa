"""Running `flashsale` as a separate process, the way ops run it."""

from __future__ import annotations

import os
import subprocess
import sys


def flashsale_env(redis_url: str, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHSALE_")}
    env |= {"FLASHSALE_REDIS_URL": redis_url, "FLASHSALE_DATABASE_URL": database_url}
    return env | extra


def spawn(*args: str, env: dict[str, str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flashsale", *args], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def run(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashsale", *args], env=env, text=True, capture_output=True,
        timeout=timeout,
    )  # fmt: skip
