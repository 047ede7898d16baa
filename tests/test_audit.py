"""`flashsale audit` passes on a clean run and catches each invariant broken on purpose."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.processes import flashsale_env, run
from tests.stack import Stack

CORRUPTIONS = {
    # invariant number -> SQL that breaks it
    1: "UPDATE orders SET quantity = quantity + 100, amount = amount + 100",
    2: "UPDATE orders SET status = 'expired' WHERE seq = 1",
    3: "DELETE FROM orders WHERE seq = 1",
    4: "INSERT INTO orders SELECT substr(id, 1, 13) || 'zzzzzzzzzzzzzzzz', drop_id, 99, buyer, "
       "quantity, amount, currency, status, NULL, created_at, expires_at, ended_at, NULL, NULL "
       "FROM orders WHERE seq = 1",
    5: "UPDATE orders SET buyer = 'alice'",
    6: "UPDATE orders SET idempotency_key = 'k-1', buyer = 'alice' WHERE seq IN (1, 2)",
}  # fmt: skip


@pytest.fixture
async def settled(stack: Stack, redis_url: str, sqlite_url: str) -> dict[str, str]:
    drop = await stack.new_drop(stock=6, per_buyer_limit=2)
    assert (await stack.buy(drop["id"], "alice", 1, key="k-1")).status == 201
    for buyer in ("bob", "carol", "dave"):
        assert (await stack.buy(drop["id"], buyer, 1)).status == 201
    await stack.settle()
    return flashsale_env(redis_url, sqlite_url)


def test_audit_passes_on_a_clean_run(settled: dict[str, str]) -> None:
    result = run("audit", env=settled)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audited 1 drop(s), 4 order(s)" in result.stdout
    assert "all invariants hold" in result.stdout


@pytest.mark.parametrize("invariant", sorted(CORRUPTIONS))
def test_audit_catches_a_corrupted_store(
    settled: dict[str, str], sqlite_url: str, tmp_path: Path, invariant: int
) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    shutil.copy(path, tmp_path / "clean.db")
    with sqlite3.connect(path) as db:
        db.execute(CORRUPTIONS[invariant])
    result = run("audit", "--wait", "0", env=settled)
    assert result.returncode == 1, result.stdout
    assert f"FAIL {invariant}." in result.stdout, result.stdout
    assert "INVARIANTS VIOLATED" in result.stdout
