"""One process's share of a run: its connections, the dispatcher that feeds them, and the
record of every request it sent.

Open loop: a request is due at its intended time and waits, if every connection is busy,
until one is free; its latency runs from the intended time, so a slow server shows as
queueing instead of hiding it (coordinated omission). Closed loop: each connection sends the
next request as soon as it is answered, and latency runs from the send.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from flashsale.loadtest.http import Connection

LOST = 0  # the connection closed (or would not open) before an answer
TIMEOUT = 1  # no answer within the timeout; the connection was closed
RETRY_STATUSES = frozenset({LOST, TIMEOUT, 429, 503, 504})  # 504: undecided
TICK_S = 0.05
RECONNECT_S = 0.1


# kinds of request, as recorded: a purchase's first send, its deliberate repeat (a buyer
# tapping again with the same Idempotency-Key), its resend after an error; a payment.
FIRST, REPEAT, RESEND, PAY = 0, 1, 2, 3


class Shot(NamedTuple):
    """One request: when it is due (seconds after t0), for which attempt, its bytes, and
    whether it is sent again after its answer, as a buyer double-tapping would."""

    offset: float
    attempt: int
    request: bytes
    repeat: bool = False
    kind: int = FIRST


# Follow-ups to an answer (a payment after a purchase): (seconds from now, shot).
Follow = Callable[[Shot, int, bytes], list[tuple[float, Shot]]]


class Workload(Protocol):
    """What a load process fires; picklable, as it is sent to the process. Subclass it to
    take the defaults: nothing to prepare, no follow-ups."""

    def prepare(self) -> None:
        """Done before the start: whatever costs more than sending (signing tokens)."""
        return None

    def shots(self) -> Iterator[Shot]: ...

    @property
    def follow(self) -> Follow | None:
        return None


@dataclass(slots=True)
class _Flight:
    shot: Shot
    kind: int
    tries: int
    intended: float
    sent: float = 0.0


@dataclass
class Job:
    host: str
    port: int
    connections: int
    t0: float  # time.perf_counter() value at which the run starts, shared by processes
    closed_loop: bool = False
    duration: float | None = None  # stop sending after this long (the bench); else when done
    timeout: float = 10.0
    resends: int = 3  # resend a request answered 503/504/429/lost/timeout: same bytes, key


@dataclass
class Records:
    """What one process saw, one row per request sent. Times are seconds after t0."""

    attempt: array = field(default_factory=lambda: array("q"))
    kind: array = field(default_factory=lambda: array("b"))
    status: array = field(default_factory=lambda: array("h"))
    done: array = field(default_factory=lambda: array("d"))
    latency_us: array = field(default_factory=lambda: array("q"))
    bodies: list[bytes] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU time the load process spent firing

    def __len__(self) -> int:
        return len(self.status)

    def extend(self, other: Records) -> None:
        for name in ("attempt", "kind", "status", "done", "latency_us"):
            getattr(self, name).extend(getattr(other, name))
        self.bodies.extend(other.bodies)
        self.cpu_s += other.cpu_s


@dataclass
class Progress:
    sent: int = 0
    answered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    @classmethod
    def total(cls, parts: Iterable[Progress]) -> Progress:
        out = cls()
        for p in parts:
            out.sent += p.sent
            out.answered += p.answered
            out.statuses.update(p.statuses)
        return out


class Shard:
    def __init__(
        self,
        job: Job,
        shots: Iterator[Shot],
        on_tick: Callable[[Progress], None] | None = None,
        follow: Follow | None = None,
    ) -> None:
        self.job = job
        self.records = Records()
        self.progress = Progress()
        self._shots = shots
        self._head: Shot | None = next(shots, None)
        self._due: deque[_Flight] = deque()  # repeats and resends, due now
        self._idle: list[Connection] = []
        self._flights: dict[Connection, _Flight] = {}
        self._conns: set[Connection] = set()
        self._waking: asyncio.TimerHandle | None = None
        self._waiting = 0  # resends and follow-ups not yet due
        self._on_tick = on_tick
        self._follow = follow
        self._done: asyncio.Future[None] | None = None
        self._stop_sending = False

    # ---- running
    async def connect(self) -> None:
        """Opens the connections before the start, so the first requests wait for nothing."""
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        for _ in range(self.job.connections):
            await self._connect()

    async def fire(self) -> Records:
        """Sends everything due from t0 on; returns when all of it is answered."""
        assert self._done is not None, "connect() first"
        loop = self._loop
        delay = self.job.t0 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.job.duration is not None:
            loop.call_later(self.job.duration, self._stop)
        ticker = loop.call_later(TICK_S, self._tick)
        cpu = time.process_time()
        idle, self._idle = self._idle, []
        for conn in idle:
            self._feed(conn)
        self._check_done()
        try:
            await self._done
        finally:
            ticker.cancel()
            if self._waking is not None:
                self._waking.cancel()
            for conn in list(self._conns):
                conn.close()
        self.records.cpu_s = time.process_time() - cpu
        return self.records

    async def run(self) -> Records:
        await self.connect()
        return await self.fire()

    async def _connect(self) -> None:
        conn = Connection(self._answered, self._lost)
        try:
            await self._loop.create_connection(lambda: conn, self.job.host, self.job.port)
        except OSError:
            self._loop.call_later(RECONNECT_S, self._refused)
            return
        self._conns.add(conn)
        self._idle.append(conn)

    def _reconnect(self) -> None:
        task = self._loop.create_task(self._connect_and_feed())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _connect_and_feed(self) -> None:
        await self._connect()
        if self._idle and time.perf_counter() >= self.job.t0:
            self._feed(self._idle.pop())

    def _refused(self) -> None:
        """The server refuses connections: what is due now fails as a buyer's tap would (and
        is resent, with its key, as a buyer's app would), so the run goes on and ends, and
        the failures show in the answers."""
        now = time.perf_counter()
        while now >= self.job.t0 and (flight := self._take(now)) is not None:
            flight.sent = now
            self._record(flight, LOST, b"")
        self._check_done()
        if self._done is not None and not self._done.done():
            self._reconnect()

    def _stop(self) -> None:
        self._stop_sending = True
        self._check_done()

    # ---- dispatching
    def _take(self, now: float) -> _Flight | None:
        if self._stop_sending:
            return None
        if self._due:
            return self._due.popleft()
        head = self._head
        if head is None:
            return None
        intended = now if self.job.closed_loop else self.job.t0 + head.offset
        if intended > now:
            return None
        self._head = next(self._shots, None)
        return _Flight(head, head.kind, 0, intended)

    def _feed(self, conn: Connection) -> None:
        now = time.perf_counter()
        flight = self._take(now)
        if flight is None:
            self._idle.append(conn)
            self._wake_later(now)
            self._check_done()
            return
        flight.sent = now
        self._flights[conn] = flight
        self.progress.sent += 1
        conn.send(flight.shot.request)

    def _wake_later(self, now: float) -> None:
        if self._waking is not None or self._head is None or self._stop_sending:
            return
        delay = max(0.0, self.job.t0 + self._head.offset - now)
        self._waking = self._loop.call_later(delay, self._wake)

    def _wake(self) -> None:
        self._waking = None
        while self._idle:
            before = len(self._idle)
            self._feed(self._idle.pop())
            if len(self._idle) >= before:  # nothing was due: it went back to idle
                break

    def _check_done(self) -> None:
        if self._done is None or self._done.done() or self._flights or self._waiting:
            return
        if self._stop_sending or (self._head is None and not self._due):
            self._done.set_result(None)

    # ---- answers
    def _record(self, flight: _Flight, status: int, body: bytes) -> None:
        now = time.perf_counter()
        r = self.records
        r.attempt.append(flight.shot.attempt)
        r.kind.append(flight.kind)
        r.status.append(status)
        r.done.append(now - self.job.t0)
        r.latency_us.append(int((now - flight.intended) * 1e6))
        r.bodies.append(body)
        p = self.progress
        p.answered += 1
        p.statuses[status] += 1
        if status in RETRY_STATUSES and flight.tries < self.job.resends:
            kind = PAY if flight.kind == PAY else RESEND
            self._later(0.2, _Flight(flight.shot, kind, flight.tries + 1, 0.0))
            return
        if flight.kind == FIRST and flight.shot.repeat:
            self._due.append(_Flight(flight.shot, REPEAT, 0, now))
        if self._follow is not None and flight.kind != PAY:
            for delay, shot in self._follow(flight.shot, status, body):
                self._later(delay, _Flight(shot, shot.kind, 0, 0.0))

    def _later(self, delay: float, flight: _Flight) -> None:
        self._waiting += 1
        self._loop.call_later(delay, self._due_now, flight)

    def _due_now(self, flight: _Flight) -> None:
        self._waiting -= 1
        flight.intended = time.perf_counter()
        self._due.append(flight)
        if self._idle:
            self._feed(self._idle.pop())
        else:
            self._check_done()

    def _answered(self, conn: Connection, status: int, body: bytes) -> None:
        flight = self._flights.pop(conn, None)
        if flight is not None:
            self._record(flight, status, body)
        if conn.transport is not None and not conn.transport.is_closing():
            self._feed(conn)

    def _lost(self, conn: Connection) -> None:
        self._conns.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
        flight = self._flights.pop(conn, None)
        if flight is not None:
            self._record(flight, LOST, b"")
        if self._done is not None and not self._done.done():
            self._reconnect()
        self._check_done()

    def _tick(self) -> None:
        now = time.perf_counter()
        for conn, flight in list(self._flights.items()):
            if now - flight.sent > self.job.timeout:
                del self._flights[conn]
                self._record(flight, TIMEOUT, b"")
                conn.close()
        if self._on_tick is not None:
            self._on_tick(self.progress)
        self._check_done()
        if self._done is not None and not self._done.done():
            self._loop.call_later(TICK_S, self._tick)
