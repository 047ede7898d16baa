"""The README works as written: its blocks marked "runs as pasted" are run, as a reader
would paste them, against a real `flashsale up` from a directory laid out like the
repository's root (`.venv/bin/flashsale`, `.flashsale/`); the statuses they print are the
ones their comments show; and the banner it shows is the one `up` prints."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

from flashsale.redis_server import free_port
from tests.processes import flashsale_env, spawn, wait_ready

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- runs as pasted"
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _pasted_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = []
    for part in readme.split(MARK)[1:]:
        m = BLOCK.search(part.split("\n", 1)[1])
        assert m, "a 'runs as pasted' mark with no ```sh block after it"
        blocks.append(m[1])
    return blocks


def _banner_labels(text: str) -> list[str]:
    return [m[1] for m in re.finditer(r"^  (\w[\w ]*?)(?:\s{2,}|$| \S)", text, re.MULTILINE)]


async def test_the_readme_blocks_run_as_pasted(tmp_path: Path) -> None:
    blocks = _pasted_blocks()
    assert len(blocks) >= 2, "the walk-through and the load test"
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # where the README says flashsale is
    port = free_port()
    env = flashsale_env("", "")
    del env["FLASHSALE_REDIS_URL"], env["FLASHSALE_DATABASE_URL"]
    proc = spawn("up", "--port", str(port), "--workers", "1", env=env, cwd=tmp_path)
    try:
        await wait_ready(f"http://127.0.0.1:{port}", lambda: proc.poll() is None, lambda: "")
        for block in blocks:
            script = block.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            ran = await asyncio.to_thread(
                subprocess.run, ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert ran.returncode == 0, ran.stdout + ran.stderr
            shown = re.findall(r"^# (\d{3}) [{\[]", block, re.MULTILINE)
            printed = re.findall(r"^(\d{3}) [{\[]", ran.stdout, re.MULTILINE)
            assert printed == shown, ran.stdout
            if "loadtest" in block:
                assert "PASS" in ran.stdout, ran.stdout
                assert (tmp_path / ".flashsale" / "reports" / "night.html").is_file()
            else:
                assert "all invariants hold" in ran.stdout, ran.stdout
                assert ",alice," in ran.stdout  # the CSV export
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    # The banner the README shows is the one `up` printed, line by line.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split("`scripts/up` prints where everything is:", 1)[1].split("```", 2)[1]
    printed = out.split("flashsale is up", 1)[1].split("Ctrl-C stops it", 1)[0]
    assert _banner_labels(shown) == _banner_labels(printed) != []
