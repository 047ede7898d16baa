"""The engine's public surface, as httpx checks its own: code outside `flashsale/engine/`
(the gateway, the load tool, the processes, the tests) imports only `flashsale.engine`'s
`__all__`, and every name there exists."""

from __future__ import annotations

import ast
from pathlib import Path

import flashsale.engine

ROOT = Path(__file__).resolve().parent.parent


def test_every_public_name_exists_and_is_listed_once() -> None:
    names = flashsale.engine.__all__
    assert len(names) == len(set(names))
    missing = [n for n in names if not hasattr(flashsale.engine, n)]
    assert not missing, missing


def test_nothing_outside_the_engine_reaches_into_its_modules() -> None:
    reaching: list[str] = []
    used: set[str] = set()
    for path in [*(ROOT / "flashsale").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        if path.is_relative_to(ROOT / "flashsale" / "engine"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("flashsale.engine."):
                    reaching.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
                elif node.module == "flashsale.engine":
                    used |= {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                inner = [a.name for a in node.names if a.name.startswith("flashsale.engine.")]
                reaching += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in inner]
    assert not reaching, reaching
    assert used <= set(flashsale.engine.__all__), used - set(flashsale.engine.__all__)


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
