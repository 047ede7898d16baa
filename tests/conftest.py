"""Real parts only: a redis-server this session starts on a free port, SQLite files, and a
PostgreSQL database on 127.0.0.1:5432 that the session creates and drops."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from flashsale.redis_server import RedisServer, free_port
from tests.browser import artifacts, browser, context, make_context  # noqa: F401 (fixtures)
from tests.proxy import Proxy
from tests.stack import MakeStack, Stack, start_stack

PG_ADMIN = os.environ.get("FLASHSALE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False
    ).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
async def proxy(redis_server: RedisServer, redis_url: str) -> AsyncIterator[Proxy]:
    """A proxy in front of the session's Redis, to break connections on purpose."""
    assert redis_server.port is not None
    p = await Proxy("127.0.0.1", redis_server.port).start()
    yield p
    await p.close()


@pytest.fixture(scope="session")
async def pg_database() -> AsyncIterator[str]:
    name = f"flashsale_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def pg_url(pg_database: str) -> str:
    """The session's PostgreSQL database with no orders in it."""
    conn = await asyncpg.connect(pg_database)
    await conn.execute("DROP TABLE IF EXISTS orders, webhooks, webhook_deliveries")
    await conn.close()
    return pg_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'orders.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each store in turn, for tests that must hold for both."""
    name = {"sqlite": "sqlite_url", "postgres": "pg_url"}[request.param]
    return str(request.getfixturevalue(name))


@pytest.fixture
async def make_stack(redis_url: str, sqlite_url: str, tmp_path: Path) -> AsyncIterator[MakeStack]:
    stacks: list[Stack] = []

    async def make(**options: object) -> Stack:
        options.setdefault("redis_url", redis_url)
        options.setdefault("database_url", sqlite_url)
        stack = await start_stack(tmp_path, **options)  # type: ignore[arg-type]
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        await stack.close()


@pytest.fixture
async def stack(make_stack: MakeStack) -> Stack:
    return await make_stack()
