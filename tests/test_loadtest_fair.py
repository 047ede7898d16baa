"""`flashsale loadtest --admission queue|draw`: people queue (or enter) before the start,
bots arrive after it with many connections each; the rehearsal measures fairness (printed,
not asserted as a rate) and checks every invariant, 7-9 among them, from both sides."""

from __future__ import annotations

from flashsale.loadtest.fair_run import run_fair
from flashsale.loadtest.scenario import Scenario
from tests.stack import HOST_KEY, SECRET, MakeStack


async def test_a_queue_rehearsal_with_late_bots(make_stack: MakeStack) -> None:
    stack = await make_stack(buyer_rate=0.0)
    sc = Scenario(url=stack.base, admission="queue", stock=300, buyers=900, limit=2,
                  quantities="1:70,2:30", bots=20, bot_connections=8, admit_per_s=2000,
                  connections=64, settle_wait=30.0)  # fmt: skip
    o = await run_fair(sc, host_key=HOST_KEY, token_secret=SECRET, settings=stack.settings)
    print("\n" + "\n".join(o.lines))
    assert [c.line() for c in o.checks if not c.ok] == [] and o.audit_ok, o.audit_lines
    assert o.ok
    # 900 people queued before the start want at least 900 units of 300: the bots, behind
    # all of them, get none, and none of their 800 taps without a pass bought anything.
    assert o.measured["bot_units"] == 0 and o.measured["passless_sold"] == 0
    assert 0 <= o.measured["ks_d"] <= 1 and -1 <= o.measured["spearman_rho"] <= 1


async def test_a_draw_rehearsal_recomputes_its_winners(make_stack: MakeStack) -> None:
    stack = await make_stack(buyer_rate=0.0)
    sc = Scenario(url=stack.base, admission="draw", stock=50, buyers=200, limit=1,
                  payment_window=1, pay=0.7, bots=10, bot_connections=4, draw_in=1.5,
                  connections=64, settle_wait=30.0)  # fmt: skip
    o = await run_fair(sc, host_key=HOST_KEY, token_secret=SECRET, settings=stack.settings)
    print("\n" + "\n".join(o.lines))
    assert [c.line() for c in o.checks if not c.ok] == [] and o.audit_ok, o.audit_lines
    assert o.measured["draw_mismatches"] == 0 and o.ok
