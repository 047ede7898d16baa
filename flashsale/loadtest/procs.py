"""The `flashsale` processes a bench starts beside itself (a gateway, a worker), each
stopped with SIGTERM when the bench is done with it, and killed if it will not go."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

STOP_S = 30.0  # how long a stopped process may take to drain before it is killed


def flashsale(*args: str) -> list[str]:
    """The command line of `flashsale ARGS` in this very Python."""
    return [sys.executable, "-m", "flashsale", *args]


def start(
    stack: ExitStack, args: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Starts `args`, its output to `log` (or nowhere), stopped when `stack` closes."""
    with log.open("wb") if log is not None else open("/dev/null", "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()

    stack.callback(stop)
    return proc


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`start` for one `with` block."""
    with ExitStack() as stack:
        yield start(stack, args, env, log)


__all__ = ["flashsale", "running", "start"]
