"""How fair a queue's order was, measured: statistics printed by a rehearsal, not asserted.

A uniform shuffle puts every pre-queued buyer equally likely at every place, whenever they
arrived: their places are uniform on 1..N (Kolmogorov-Smirnov against the uniform law) and
unrelated to their arrival order (Spearman's rank correlation near 0)."""

from __future__ import annotations

import math


def ks_uniform(values: list[float]) -> tuple[float, float]:
    """(D, p): the KS statistic of `values` (in [0, 1)) against Uniform(0, 1), and its
    asymptotic p-value (Kolmogorov's distribution, with Stephens' small-n correction)."""
    n = len(values)
    if n == 0:
        return 0.0, 1.0
    xs = sorted(values)
    d = max(max((i + 1) / n - x, x - i / n) for i, x in enumerate(xs))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, min(1.0, max(0.0, p))


def _ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=xs.__getitem__)
    ranks = [0.0] * len(xs)
    for r, i in enumerate(order):
        ranks[i] = float(r)
    return ranks


def spearman(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """(rho, p): Spearman's rank correlation and its two-sided p-value (normal approximation,
    z = rho * sqrt(n - 1); ties broken by order, which the places never have)."""
    n = len(xs)
    if n < 3:
        return 0.0, 1.0
    rx, ry = _ranks(xs), _ranks(ys)
    mean = (n - 1) / 2
    cov = sum((a - mean) * (b - mean) for a, b in zip(rx, ry, strict=True))
    var = sum((a - mean) ** 2 for a in rx)
    rho = cov / var
    z = abs(rho) * math.sqrt(n - 1)
    return rho, math.erfc(z / math.sqrt(2))
