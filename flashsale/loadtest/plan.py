"""Who taps buy, with what, and when: the attempts of a run, drawn from the scenario with its
seed so a run can be repeated, and split over processes by buyer (each process mints the
tokens of its own buyers)."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from itertools import accumulate

from flashsale.loadtest.scenario import Scenario


@dataclass(frozen=True, slots=True)
class Attempt:
    index: int
    buyer: str
    quantity: int
    key: str  # the Idempotency-Key: every attempt has one, so every resend is safe
    offset: float  # seconds after the start
    repeat: bool  # sent again with the same key once answered
    variant: str = ""  # the variant bought ("" on a drop without)


@dataclass(frozen=True)
class Plan:
    run: str  # names this run's buyers and keys apart from any other run's
    attempts: list[Attempt]

    def ours(self, buyer: str) -> bool:
        """Whether a buyer is one of this run's (a drop fired at may have had others)."""
        return buyer.startswith(f"lt-{self.run}-")

    def shards(self, processes: int) -> list[list[Attempt]]:
        out: list[list[Attempt]] = [[] for _ in range(processes)]
        for a in self.attempts:
            out[hash(a.buyer) % processes].append(a)
        return out


def make_plan(
    scenario: Scenario, run: str | None = None, variants: dict[str, float] | None = None
) -> Plan:
    """`variants`: code -> share of attempts that pick it (none: a drop of one SKU)."""
    run = run or secrets.token_hex(3)
    rng = random.Random(scenario.seed)
    n, buyers = scenario.total_attempts, scenario.total_buyers
    quantities = [q for q, _ in scenario.mix]
    cumulative = list(accumulate(w for _, w in scenario.mix))
    codes = list(variants or {})
    variant_weights = list(accumulate((variants or {}).values()))
    attempts = [
        Attempt(
            index=i,
            buyer=f"lt-{run}-{rng.randrange(buyers)}",
            quantity=rng.choices(quantities, cum_weights=cumulative)[0],
            key=f"{run}-{i}",
            offset=scenario.offset(i, n),
            repeat=rng.random() < scenario.repeat,
            variant=rng.choices(codes, cum_weights=variant_weights)[0] if codes else "",
        )
        for i in range(n)
    ]
    return Plan(run, attempts)
