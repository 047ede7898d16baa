"""Errors the engine raises; refusals of a purchase are outcomes, not exceptions.

Redis trouble surfaces as redis-py's own exceptions, caught everywhere as REDIS_ERRORS: the
gateway answers them with 503, and the background loops log them and go on. What matters
for a purchase is whether its command can have run, and that is told by type, decided at
one boundary (engine/redis.py's connection and pool, engine/pipe.py), never by a message:

    RedisError (redis-py)
      ConnectionError
        NeverSent        no connection could be made or had: nothing was sent, nothing ran
        (any other)      the answer was lost: the command may have run (AMBIGUOUS)
      TimeoutError       likewise ambiguous
    RedisClusterException (redis-py; SlotNotCoveredError mid-failover)
    Unavailable          nothing was decided: 503
    Undecided            something may have been decided and nobody knows: 504
      ReplicaTimeout     (replicas.py) it was, but no replica has it yet
"""

from typing import Literal, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flashsale.engine.models import FairRefusal, VariantRefusal

# Every error of Redis's: a cluster's own (SlotNotCoveredError mid-failover) is not a
# RedisError in redis-py.
REDIS_ERRORS = (RedisError, RedisClusterException)

# A command whose answer was lost on one of these may or may not have run.
AMBIGUOUS = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)


class NeverSent(RedisConnectionError):
    """No connection could be made (refused, timed out connecting, or none free in the
    pool), so no command was sent: unlike a lost answer, nothing can have run."""


def never_sent(e: BaseException) -> bool:
    return isinstance(e, NeverSent)


class Unavailable(Exception):
    """Redis (or the order store) could not be reached in time; nothing was decided."""


class Undecided(Exception):
    """A purchase whose outcome could not be learnt in time (Redis stayed unreachable after
    a lost answer): it may or may not have been made; a retry with the same key finds out."""


class VariantError(ValueError):
    """A host's call named a variant that does not fit the drop (a restock); purchases
    carry theirs as outcomes instead."""

    def __init__(self, refusal: VariantRefusal) -> None:
        super().__init__(refusal)
        self.refusal = refusal


class Refused(Exception):
    """A call about a queue ticket, a draw entry or a waitlist entry that the drop refuses
    (the gateway answers each with its own status and code)."""

    def __init__(self, refusal: FairRefusal) -> None:
        super().__init__(refusal)
        self.refusal = refusal


def accepted(outcome: bytes | str) -> Literal["created", "ok"]:
    """A ticket's or an entry's script outcome: `created` or `ok`, else raises Refused."""
    said = outcome.decode() if isinstance(outcome, bytes) else outcome
    if said not in ("created", "ok"):
        raise Refused(cast(FairRefusal, said))
    return cast(Literal["created", "ok"], said)


__all__ = [
    "AMBIGUOUS",
    "REDIS_ERRORS",
    "NeverSent",
    "RedisError",
    "Refused",
    "Unavailable",
    "Undecided",
    "VariantError",
    "accepted",
    "never_sent",
]
