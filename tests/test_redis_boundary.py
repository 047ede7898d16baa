"""Whether a command can have run is told by type at one boundary (engine/redis.py): a
connect that fails, or a pool with no connection free, is NeverSent; an answer lost after
the command went out is a plain ConnectionError (it may have run)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from flashsale.engine import NeverSent, connect
from flashsale.redis_server import free_port


async def test_a_refused_connect_is_never_sent() -> None:
    # (A cluster none of whose seeds answers cannot even read its slot map: redis-py raises
    # a plain ConnectionError, which purchases treat as a lost answer, the careful side.)
    client = connect(f"redis://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(NeverSent):
        await client.ping()
    await client.aclose()


async def test_no_connection_free_is_never_sent(redis_url: str) -> None:
    client = connect(redis_url, timeout=0.2, max_connections=1)
    assert isinstance(client, Redis)
    held = await client.connection_pool.get_connection()  # the only one, taken
    try:
        with pytest.raises(NeverSent):
            await client.ping()
    finally:
        await client.connection_pool.release(held)
        await client.aclose()


async def test_an_answer_lost_after_sending_is_not_never_sent(redis_url: str) -> None:
    client = connect(redis_url, timeout=2.0)
    killer = connect(redis_url)
    try:
        name = f"victim-{free_port()}"
        await client.client_setname(name)
        blocked = asyncio.create_task(client.execute_command("BLPOP", "nothing", "2"))
        await asyncio.sleep(0.1)
        await killer.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        with pytest.raises(RedisConnectionError) as caught:
            await blocked
        assert not isinstance(caught.value, NeverSent)
    finally:
        await client.aclose()
        await killer.aclose()
