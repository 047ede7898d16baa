"""Pass/fail criteria in k6's style: `p99<10ms`, `errors<0.1%`, `rps>=5000`, `sellout<2s`.

Latencies (p50, p90, p99, p99.9, max, mean) compare in milliseconds, `sellout` in seconds,
`errors` as a share (so `0.1%` and `0.001` are the same), `rps` in requests a second.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

_FORM = re.compile(
    r"^\s*(?P<metric>p50|p90|p99\.9|p99|max|mean|errors|rps|sellout)\s*"
    r"(?P<op><=|>=|<|>|==)\s*(?P<value>[0-9]*\.?[0-9]+)\s*(?P<unit>us|ms|s|%)?\s*$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}
_LATENCY = {"p50", "p90", "p99", "p99.9", "max", "mean"}
_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}  # to milliseconds


@dataclass(frozen=True)
class Threshold:
    text: str
    metric: str
    op: str
    limit: float  # in the metric's own unit (ms, s, share, req/s)

    @classmethod
    def parse(cls, text: str) -> Threshold:
        m = _FORM.match(text)
        if not m:
            raise ValueError(
                f"threshold {text!r}: write it like p99<10ms, errors<0.1%, rps>5000, sellout<2s"
            )
        metric, unit, value = m["metric"], m["unit"], float(m["value"])
        if metric in _LATENCY:
            if unit == "%":
                raise ValueError(f"threshold {text!r}: a latency is a time, not a share")
            value *= _TIME_UNITS[unit or "ms"]
        elif metric == "sellout":
            if unit == "%":
                raise ValueError(f"threshold {text!r}: sellout is a time")
            value *= _TIME_UNITS[unit or "s"] / 1000
        elif metric == "errors":
            if unit in _TIME_UNITS:
                raise ValueError(f"threshold {text!r}: errors is a share, like 0.1%")
            value = value / 100 if unit == "%" else value
        elif unit is not None:
            raise ValueError(f"threshold {text!r}: rps takes no unit")
        return cls(text.strip(), metric, m["op"], value)

    def shown(self, value: float | None) -> str:
        """A measured value in its metric's unit, as the threshold compares it."""
        if value is None:
            return "-"
        if self.metric in _LATENCY:
            return f"{value:,.4g} ms" if value < 1000 else f"{value / 1000:,.3g} s"
        if self.metric == "sellout":
            return f"{value:,.3g} s"
        if self.metric == "errors":
            return f"{value * 100:.3g}%"
        return f"{value:,.0f} req/s"

    def passes(self, metrics: dict[str, float | None]) -> bool:
        value = metrics.get(self.metric)
        return value is not None and _OPS[self.op](value, self.limit)
