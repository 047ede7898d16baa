"""The engine's public surface, as httpx checks its own: code outside `flashsale/engine/`
(the gateway, the load tool, the processes, the tests) imports only `flashsale.engine`'s
`__all__`, and every name there exists."""

from __future__ import annotations

import re
from pathlib import Path

import flashsale.engine

ROOT = Path(__file__).resolve().parent.parent


def test_every_public_name_exists_and_is_listed_once() -> None:
    names = flashsale.engine.__all__
    assert len(names) == len(set(names))
    missing = [n for n in names if not hasattr(flashsale.engine, n)]
    assert not missing, missing


REACHING = re.compile(r"^\s*(?:from|import)\s+(flashsale\.engine\.[\w.]+)", re.MULTILINE)
USING = re.compile(r"^\s*from flashsale\.engine import (\([^)]*\)|[^\n]*)", re.MULTILINE)


def test_nothing_outside_the_engine_reaches_into_its_modules() -> None:
    # Read as text: ast.parse of every file trips a CPython 3.11.7 bug (gh-106905).
    reaching: list[str] = []
    used: set[str] = set()
    for path in [*(ROOT / "flashsale").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        if path.is_relative_to(ROOT / "flashsale" / "engine"):
            continue
        source = path.read_text(encoding="utf-8")
        reaching += [f"{path.relative_to(ROOT)} {m[1]}" for m in REACHING.finditer(source)]
        for m in USING.finditer(source):
            words = re.findall(r"[A-Za-z_]\w*(?:\s+as\s+\w+)?", m[1].split("#")[0])
            used |= {w.split()[0] for w in words}
    assert not reaching, reaching
    assert used and used <= set(flashsale.engine.__all__), used - set(flashsale.engine.__all__)


def test_every_outcome_has_its_answer_and_its_metric() -> None:
    """The outcomes are Literal types: each refusal has its answer, and every code a
    purchase can be answered with exists as a metric series from the start."""
    from typing import get_args

    from flashsale.engine import Decision, Outcome, Refusal
    from flashsale.gateway.purchase import REFUSALS, answer
    from flashsale.metrics import OUTCOMES

    assert set(REFUSALS) == set(get_args(Refusal))
    outcomes = {word for part in get_args(Outcome) for word in get_args(part)}
    assert outcomes >= set(get_args(Refusal)) | {"created", "replay", "undecided"}
    for outcome in outcomes - {"created", "replay"}:  # those two carry an order
        assert answer(Decision(outcome)).outcome in OUTCOMES, outcome
