"""Who gets scarce units, on the pages, in a real browser at phone width: the buyer page
walks a buyer through the queue (ticket, turn, purchase with the pass), a draw (entry,
result, payment) and the waitlist (entry, the unit that came back); the console shows the
waiting room's counts and a draw's moment, proof and winners, and makes a queue drop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.fair import join, queue_drop, until_drawn
from tests.stack import HOST_KEY, Stack

PHONE_390 = {"width": 390, "height": 844}


async def test_a_buyer_queues_waits_for_a_turn_and_buys(
    make_context: Any, stack: Stack, artifacts: Path
) -> None:
    from playwright.async_api import expect

    drop = await queue_drop(stack, stock=5, title="Crayfish 小龙虾")
    did = drop["id"]
    for i in range(3):  # three buyers queued before her
        await join(stack, did, f"early{i}")
    context = await make_context(locale="en-US", viewport=PHONE_390)
    page = await context.new_page()
    await page.goto(f"{stack.base}/buy/{did}?token={stack.token('mei')}")
    await expect(page.locator("html")).to_have_attribute("data-ready", "true")
    await expect(page.locator("#fair-act")).to_have_text("Join the queue")
    await page.click("#fair-act")
    await expect(page.locator("#fair-state")).to_contain_text("drawn at random")
    await expect(page.locator("#fair-act")).to_be_hidden()
    await expect(page.locator("#buy")).to_be_disabled()

    console = await context.new_page()
    await console.goto(f"{stack.base}/console#key={HOST_KEY}&drop={did}")
    await expect(console.locator("#queue")).to_be_visible()
    await console.click("#open")
    # 5 units for 4 tickets: everyone is let in, in place order
    await expect(console.locator("#queue-admitted")).to_have_text("4", timeout=10_000)
    await expect(page.locator("#fair-state")).to_contain_text("your turn", timeout=10_000)
    await expect(page.locator("#buy")).to_be_enabled()
    await page.screenshot(path=artifacts / "queue-turn.png")
    await page.click("#buy")
    await expect(page.locator("#result")).to_contain_text("Order confirmed")
    await expect(page.locator("#fair-state")).to_contain_text("bought with your turn",
                                                             timeout=10_000)  # fmt: skip
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_390["width"]


async def test_a_buyer_enters_a_draw_wins_and_pays(
    make_context: Any, stack: Stack, artifacts: Path
) -> None:
    from playwright.async_api import expect

    at = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    drop = await stack.new_drop(admission="draw", draws_at=at, payment_window_s=600, stock=5)
    did = drop["id"]
    context = await make_context(locale="zh-CN", viewport=PHONE_390)
    page = await context.new_page()
    await page.goto(f"{stack.base}/buy/{did}?token={stack.token('阿明')}")
    await expect(page.locator("html")).to_have_attribute("data-ready", "true")
    await expect(page.locator("#buy")).to_be_hidden()  # a draw sells to its winners only
    await expect(page.locator("#fair-act")).to_have_text("参加抽签")
    await page.click("#fair-act")
    await expect(page.locator("#fair-state")).to_contain_text("您已参加抽签")
    console = await context.new_page()
    await console.goto(f"{stack.base}/console#key={HOST_KEY}&drop={did}")
    await expect(console.locator("#draw-entries")).to_contain_text("1")
    await expect(console.locator("#draw-proof")).to_contain_text(drop["draw_commitment"])
    drawn = await until_drawn(stack, did)
    await expect(page.locator("#fair-state")).to_contain_text("您中签了", timeout=15_000)
    await expect(page.locator("#pay")).to_be_visible()
    await page.click("#pay")
    await expect(page.locator("#result")).to_contain_text("已付款")
    await console.reload()
    await expect(console.locator("#draw-proof")).to_contain_text(drawn["draw_seed"])
    await expect(console.locator("#draw-winners li")).to_have_text(["阿明 \u00d7 1"])
    await console.screenshot(path=artifacts / "draw-console.png")


async def test_a_buyer_joins_the_waitlist_and_gets_a_unit_back(
    make_context: Any, stack: Stack
) -> None:
    from playwright.async_api import expect

    drop = await stack.new_drop(stock=1, payment_window_s=4)
    did = drop["id"]
    assert (await stack.buy(did, "first")).status == 201  # reserved for 4 s, never paid
    context = await make_context(locale="en-US", viewport=PHONE_390)
    page = await context.new_page()
    await page.goto(f"{stack.base}/buy/{did}?token={stack.token('late')}")
    await expect(page.locator("html")).to_have_attribute("data-ready", "true")
    await expect(page.locator("#fair-act")).to_have_text("Join the waitlist")
    await page.click("#fair-act")
    await expect(page.locator("#fair-state")).to_contain_text("came back for you",
                                                             timeout=15_000)  # fmt: skip
    await expect(page.locator("#result")).to_contain_text("Reserved for you")


async def test_the_console_makes_a_queue_drop(make_context: Any, stack: Stack) -> None:
    from playwright.async_api import expect

    context = await make_context(locale="en-US", viewport=PHONE_390)
    page = await context.new_page()
    await page.goto(f"{stack.base}/console#key={HOST_KEY}")
    await expect(page.locator("html")).to_have_attribute("data-ready", "true")
    await page.fill("#title", "Mushrooms")
    await page.fill("#sku", "MUSH-1")
    await page.fill("#price", "9.90")
    await page.fill("#currency", "CNY")
    await page.fill("#stock", "30000")
    await page.select_option("#admission", "queue")
    await page.click("#create")
    await expect(page.locator("#create-msg")).to_contain_text("Mushrooms")
    await expect(page.locator("#queue")).to_be_visible()
    listed = (await stack.call("GET", "/v1/drops")).body["drops"]
    assert [d["admission"] for d in listed if d["sku"] == "MUSH-1"] == ["queue"]
