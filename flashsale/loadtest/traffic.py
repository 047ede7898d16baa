"""The requests one process sends: each attempt's purchase (its bytes built when it is due,
then kept for repeats and resends), and the payment that follows a reservation."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from flashsale.gateway.auth import Auth
from flashsale.loadtest.firing import PAY, Follow, Shot, Workload
from flashsale.loadtest.http import request_bytes
from flashsale.loadtest.plan import Attempt


@dataclass
class Traffic(Workload):
    host: str  # the Host header
    drop_id: str
    token_secret: str
    attempts: list[Attempt]
    pay: float = 1.0
    pay_late: float = 0.0
    seed: int = 1
    token_ttl_s: int = 24 * 3600

    def __post_init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._rng = random.Random(self.seed)

    def prepare(self) -> None:
        """Signs every buyer's token up front: HS256 costs more than sending the request."""
        auth = Auth(self.token_secret, [])
        for a in self.attempts:
            if a.buyer not in self._tokens:
                self._tokens[a.buyer] = auth.mint(a.buyer, self.token_ttl_s)

    def _post(self, target: str, buyer: str, body: bytes, key: str | None = None) -> bytes:
        headers = {"Authorization": f"Bearer {self._tokens[buyer]}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        headers["Content-Type"] = "application/json"
        return request_bytes("POST", target, self.host, headers, body)

    def shots(self) -> Iterator[Shot]:
        target = f"/v1/drops/{self.drop_id}/purchase"
        for a in sorted(self.attempts, key=lambda a: a.offset):
            body = b'{"quantity":%d}' % a.quantity
            if a.variant:
                body = b'{"quantity":%d,"variant":"%s"}' % (a.quantity, a.variant.encode())
            yield Shot(a.offset, a.index, self._post(target, a.buyer, body, a.key), a.repeat)

    @property
    def follow(self) -> Follow | None:
        return self._pay_for if self.pay + self.pay_late > 0 else None

    def _pay_for(self, shot: Shot, status: int, body: bytes) -> list[tuple[float, Shot]]:
        """A buyer with a reservation pays in time, pays late, or walks away."""
        if status != 201 or b'"reserved"' not in body:
            return []
        order = json.loads(body)["order"]
        roll = self._rng.random()
        if roll >= self.pay + self.pay_late:
            return []
        left = (datetime.fromisoformat(order["expires_at"]) - datetime.now(UTC)).total_seconds()
        delay = self._rng.uniform(0, left / 2) if roll < self.pay else left + 1.0
        pay = self._post(f"/v1/orders/{order['id']}/pay", order["buyer"], b"")
        return [(max(0.0, delay), Shot(0.0, shot.attempt, pay, kind=PAY))]
