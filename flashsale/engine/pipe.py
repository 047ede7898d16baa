"""A connection of the purchaser's own to a single Redis, for purchase batches only.

redis-py's asyncio client spends several times a bare protocol's CPU on each command here
(the pool's lock and condition, a timeout context per read, its layered reply parsing), and
a purchase batch is one EVALSHA whose arguments are packed already. So batches go out on
this: the command written as RESP bytes, replies parsed by hiredis (what redis-py uses
too), answered in the order they come, several batches on the wire at once.

Failures are redis-py's own exception classes, so the purchase path treats them exactly as
before: `NeverSent` when no connection could be made (nothing can have run), a
ConnectionError or TimeoutError once a command may have reached Redis (its answer is lost,
and the batch is rechecked). A reply that does not come within `timeout` fails every
command on the connection, which is then closed: replies after it could no longer be
matched to their commands.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flashsale.engine.errors import NeverSent

Arg = str | bytes | int


def bulks(args: tuple[Arg, ...]) -> bytes:
    """Arguments as RESP bulk strings, for a command's array (see `encode`)."""
    parts = []
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def encode(args: tuple[Arg, ...]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(args) + bulks(args)


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.transport: asyncio.Transport | None = None
        # the commands sent on this connection and not yet answered, oldest first
        self.waiting: deque[tuple[asyncio.Future[Any], asyncio.TimerHandle]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while (reply := self.reader.gets()) is not False:
            if not waiting:
                break  # the reply to a command already failed: the line is being closed
            answer, timer = waiting.popleft()
            timer.cancel()
            if answer.done():
                continue
            if isinstance(reply, ResponseError):
                message = str(reply)
                answer.set_exception(
                    NoScriptError(message) if message.startswith("NOSCRIPT") else reply
                )
            else:
                answer.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc!r}"))

    def fail(self, error: Exception) -> None:
        """Every command still on this connection failed with `error`: each may have run."""
        self.pipe.forget(self)
        waiting, self.waiting = self.waiting, deque()
        for answer, timer in waiting:
            timer.cancel()
            if not answer.done():
                answer.set_exception(error)

    def timed_out(self, timeout: float) -> None:
        self.fail(RedisTimeoutError(f"no reply from Redis in {timeout:g}s"))
        if self.transport is not None:
            self.transport.abort()


class Pipe:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        password: str | None = None,
        username: str | None = None,
        db: int = 0,
        connect_timeout: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.password, self.username, self.db = password, username, db
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()

    @classmethod
    def for_url(cls, url: str, *, connect_timeout: float, timeout: float) -> Pipe | None:
        """A pipe to the Redis at `url`, or None for what it does not speak (TLS, a cluster:
        those stay with redis-py)."""
        parts = urlsplit(url)
        common: dict[str, Any] = dict(connect_timeout=connect_timeout, timeout=timeout)
        common["password"] = unquote(parts.password) if parts.password else None
        common["username"] = unquote(parts.username) if parts.username else None
        if parts.scheme == "unix":
            return cls(path=parts.path, **common)
        if parts.scheme != "redis" or "," in url:
            return None
        db = parts.path.strip("/")
        return cls(
            host=parts.hostname or "127.0.0.1", port=parts.port or 6379,
            db=int(db) if db.isdigit() else 0, **common,
        )  # fmt: skip

    @property
    def name(self) -> str:
        return self.path or f"{self.host}:{self.port}"

    async def call(self, *args: Arg) -> Any:
        return await self.send(encode(args))

    async def send(self, command: bytes) -> Any:
        """One command already in RESP (callers that send the same head often keep it)."""
        protocol = self._protocol or await self._connect()
        transport = protocol.transport
        if transport is None or transport.is_closing():
            raise RedisConnectionError("connection to Redis closed")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        timer = loop.call_later(self.timeout, protocol.timed_out, self.timeout)
        protocol.waiting.append((answer, timer))
        transport.write(command)
        return await answer

    async def _connect(self) -> _Protocol:
        async with self._connecting:  # callers arriving meanwhile share one connect
            return self._protocol or await self._open()

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.path is not None:
                    _, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(self), self.path
                    )
                else:
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(self), self.host, self.port
                    )
        except (OSError, TimeoutError) as e:
            raise NeverSent(f"Error connecting to {self.name}: {e!r}") from e
        self._protocol = protocol
        try:
            if self.password is not None:
                who = (self.username,) if self.username else ()
                await self.call("AUTH", *who, self.password)
            if self.db:
                await self.call("SELECT", self.db)
        except Exception:
            self.close()
            raise
        return protocol

    def forget(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None  # the next call connects anew

    def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
