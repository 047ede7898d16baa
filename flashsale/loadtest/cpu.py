"""What whole process trees spend, read from /proc: CPU time (what a server spent per
request is its CPU time over a measurement divided by the requests it answered, whatever
else ran beside it on the machine, which a rate alone cannot tell apart) and memory."""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # past "pid (comm) "


def tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def seconds(pids: list[int]) -> float:
    """User plus system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of the processes now, in bytes."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[21]) * _PAGE  # rss, in pages
    return total


_PAGE = os.sysconf("SC_PAGE_SIZE")
