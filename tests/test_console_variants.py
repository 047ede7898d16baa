"""A drop of variants on the pages, in a real browser at phone width: the console shows one
big count per variant that falls as buyers buy and restocks the variant chosen; the buyer
page picks a variant, shows its price and deposit, and buys it. And a host makes a drop of
variants from the console's form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.stack import HOST_KEY, Stack

PHONE_390 = {"width": 390, "height": 844}
LOTUS = [
    {"code": "1KG", "title": "莲藕 1 kg", "price": 1290, "stock": 20_000, "deposit": 290},
    {"code": "2KG", "title": "莲藕 2 kg", "price": 2390, "stock": 18_000, "deposit": 390},
]


async def test_each_variant_has_its_count_its_restock_and_its_buy(
    make_context: Any, stack: Stack, artifacts: Path
) -> None:
    from playwright.async_api import expect

    spec = {"sku": "LOTUS", "title": "Lotus root 莲藕", "currency": "CNY", "variants": LOTUS,
            "per_buyer_limit": 4, "payment_window_s": 600}  # fmt: skip
    created = await stack.call("POST", "/v1/drops", spec, stack.as_host)
    drop_id = created.body["id"]
    await stack.call("POST", f"/v1/drops/{drop_id}/open", None, stack.as_host)
    assert (await stack.buy(drop_id, "early", 3, variant="2KG")).status == 201

    context = await make_context(locale="en-US", viewport=PHONE_390)
    console = await context.new_page()
    await console.goto(f"{stack.base}/console#key={HOST_KEY}&drop={drop_id}")
    await expect(console.locator("html")).to_have_attribute("data-ready", "true")
    cells = console.locator("#variants .number")
    await expect(cells).to_have_count(2)
    await expect(cells.nth(0).locator(".n")).to_have_text("20,000")
    await expect(cells.nth(1).locator(".n")).to_have_text("17,997")
    await expect(cells.nth(1).locator(".name")).to_have_text("莲藕 2 kg")
    await expect(cells.nth(1).locator(".detail")).to_contain_text("3 sold")
    await expect(cells.nth(1).locator(".detail")).to_contain_text("deposit")
    await expect(console.locator("#drop-price")).to_contain_text("2 variants, from")
    await expect(console.locator("#remaining")).to_have_text("37,997")
    # Readable on a phone: nothing wider than the screen, every count on one line.
    assert await console.evaluate("document.documentElement.scrollWidth") <= PHONE_390["width"]
    lines = await console.evaluate(
        """() => [...document.querySelectorAll('#variants .n')].map((el) => {
          const r = document.createRange();
          r.selectNodeContents(el);
          return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size;
        })"""
    )
    assert lines == [1, 1], lines

    # A buyer picks the 2 kg pack: its price and deposit, then its count falls on both pages.
    buyer = await context.new_page()
    await buyer.goto(f"{stack.base}/buy/{drop_id}?token={stack.token('mei')}")
    await expect(buyer.locator("html")).to_have_attribute("data-ready", "true")
    await expect(buyer.locator("#variant-box")).to_be_visible()
    await buyer.select_option("#variant", "2KG")
    await expect(buyer.locator("#price")).to_contain_text("23.90")
    await expect(buyer.locator("#deposit")).to_contain_text("3.90")
    await expect(buyer.locator("#remaining")).to_have_text("17,997")
    await buyer.fill("#qty", "1")
    await buyer.click("#buy")
    await expect(buyer.locator("#result")).to_contain_text("Reserved")
    await expect(buyer.locator("#result")).to_contain_text("Balance due later")
    await expect(buyer.locator("#remaining")).to_have_text("17,996")
    await expect(cells.nth(1).locator(".n")).to_have_text("17,996")
    orders = await stack.call("GET", f"/v1/drops/{drop_id}/orders", headers=stack.as_host)
    await stack.settle()
    orders = await stack.call("GET", f"/v1/drops/{drop_id}/orders", headers=stack.as_host)
    mine = [o for o in orders.body["orders"] if o["buyer"] == "mei"]
    assert [(o["variant"], o["amount"], o["balance"]) for o in mine] == [("2KG", 390, 2000)]

    # Restock the 1 kg pack from the console: only its count moves.
    await console.select_option("#restock-variant", "1KG")
    await console.fill("#restock-qty", "500")
    await console.click("#restock")
    await expect(console.locator("#drop-msg")).to_contain_text("Units added to 莲藕 1 kg: 500")
    await expect(cells.nth(0).locator(".n")).to_have_text("20,500")
    await expect(cells.nth(1).locator(".n")).to_have_text("17,996")
    view = (await stack.call("GET", f"/v1/drops/{drop_id}")).body
    assert [v["stock"] for v in view["variants"]] == [20_500, 18_000]
    await console.screenshot(path=str(artifacts / "console-variants.png"), full_page=True)
    await buyer.screenshot(path=str(artifacts / "buyer-variants.png"), full_page=True)


async def test_a_host_makes_a_drop_of_variants_in_the_console(
    make_context: Any, stack: Stack
) -> None:
    from playwright.async_api import expect

    context = await make_context(locale="en-US", viewport=PHONE_390)
    console = await context.new_page()
    await console.goto(f"{stack.base}/console#key={HOST_KEY}")
    await expect(console.locator("html")).to_have_attribute("data-ready", "true")
    await console.fill("#title", "Jacket")
    await console.fill("#sku", "JACKET-1")
    await console.fill("#currency", "PKR")
    await console.fill("#window", "10")
    await console.click("#add-variant")
    await expect(console.locator("#price-box")).to_be_hidden()  # each variant has its own
    rows = console.locator(".variant-row")
    for i, (code, price, stock, deposit) in enumerate(
        [("M", "4990", "30", ""), ("L", "5490", "20", "500")]
    ):
        if i:
            await console.click("#add-variant")
        row = rows.nth(i)
        await row.locator("[name=code]").fill(code)
        await row.locator("[name=title]").fill(f"Size {code}")
        await row.locator("[name=price]").fill(price)
        await row.locator("[name=stock]").fill(stock)
        await row.locator("[name=deposit]").fill(deposit)
    await console.click("#create")
    await expect(console.locator("#variants .number")).to_have_count(2)
    drop_id = (await console.locator("#drop-id").inner_text()).strip()
    made = (await stack.call("GET", f"/v1/drops/{drop_id}")).body
    shown = [
        (v["code"], v["title"], v["price"], v["stock"], v["deposit"]) for v in made["variants"]
    ]
    assert shown == [("M", "Size M", 499_000, 30, None), ("L", "Size L", 549_000, 20, 50_000)]
    assert (made["price"], made["stock"], made["payment_window_s"]) == (None, 50, 600)
    assert await console.evaluate("document.documentElement.scrollWidth") <= PHONE_390["width"]
    # The form is back to one SKU for the next drop.
    await expect(console.locator(".variant-row")).to_have_count(0)
    await expect(console.locator("#price-box")).to_be_visible()
