"""`flashsale loadtest` and `flashsale bench`: rehearse a drop, measure it, prove it correct.

The purchase-side path of a run: `scenario` (what to fire) → `plan` (who sends what, when) →
`fleet` (N processes) → `firing` (one process's connections, `http`) → `results` → `checks`
(the invariants, from the answers and the API) → `report`.
"""
