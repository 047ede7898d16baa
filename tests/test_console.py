"""The host console and the buyer page in a real browser (tests/browser.py), in English:
a drop run to sellout, a lost tap retried, prices, and the pages' headers."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

from tests.browser import PHONE
from tests.stack import HOST_KEY, Stack

TITLE = "云南野生松茸 Matsutake 礼盒"


async def _sign_in(page: Any, stack: Stack) -> None:
    from playwright.async_api import expect

    await page.goto(stack.base + "/")  # the bare address leads to the console
    assert page.url == stack.base + "/console"
    await page.fill("#host-key", "hk_not_the_key")
    await page.click("#signin")
    await expect(page.locator("#signin-msg")).to_contain_text("not accepted")
    await page.fill("#host-key", HOST_KEY)
    await page.click("#signin")
    await expect(page.locator("#app")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('flashsale.hostKey')") == HOST_KEY


async def test_a_host_runs_a_drop_to_sellout_from_the_console(
    context: Any, stack: Stack, artifacts: Path
) -> None:
    from playwright.async_api import expect

    started = time.monotonic()
    console = await context.new_page()
    await _sign_in(console, stack)

    # Create a drop: a price the currency cannot have is refused in plain words first.
    await console.fill("#title", TITLE)
    await console.fill("#sku", "MATSU-1")
    await console.fill("#price", "12.905")
    await console.fill("#currency", "CNY")
    await console.fill("#stock", "5")
    await console.fill("#limit", "2")
    await console.fill("#room", "farm-7")
    await console.click("#create")
    await expect(console.locator("#create-msg")).to_contain_text("at most 2 digits")
    # ...and one the server refuses: its error code, in words, naming the field.
    await console.fill("#price", "12.90")
    await console.fill("#sku", "x" * 64)
    await console.evaluate("document.getElementById('sku').value += 'y'")  # past maxlength
    await console.click("#create")
    await expect(console.locator("#create-msg")).to_contain_text("Check “Product code (SKU)”")
    await console.fill("#sku", "MATSU-1")
    await console.click("#create")
    await expect(console.locator("#drop-title")).to_have_text(TITLE)
    await expect(console.locator("#drop-status")).to_have_text("Not open yet")
    drop_id = (await console.locator("#drop-id").inner_text()).strip()
    made = (await stack.call("GET", f"/v1/drops/{drop_id}")).body
    assert {k: made[k] for k in ("title", "sku", "price", "currency", "stock")} == {
        "title": TITLE, "sku": "MATSU-1", "price": 1290, "currency": "CNY", "stock": 5,
    }  # fmt: skip
    assert (made["per_buyer_limit"], made["room"], made["payment_window_s"]) == (2, "farm-7", 0)
    await expect(console.locator("#drop-price")).to_contain_text("12.90")

    await console.click("#open")
    await expect(console.locator("#drop-status")).to_have_text("On sale now")
    await expect(console.locator("#remaining")).to_have_text("5")

    # A buyer in another tab: the page shows the drop, live, and buys through the button.
    buyer = await context.new_page()
    await buyer.goto(f"{stack.base}/buy/{drop_id}?token={stack.token('alice')}")
    await expect(buyer.locator("html")).to_have_attribute("data-ready", "true")
    assert "token=" not in buyer.url  # the token leaves the address bar
    await expect(buyer.locator("#title")).to_have_text(TITLE)
    await expect(buyer.locator("#price")).to_contain_text("12.90")
    await expect(buyer.locator("#who")).to_have_text("Buying as alice")
    await expect(buyer.locator("#remaining")).to_have_text("5")
    for _ in range(2):
        await buyer.click("#buy")
        await expect(buyer.locator("#result")).to_contain_text("Order confirmed!")
        await expect(buyer.locator("#buy")).to_be_enabled()
        await buyer.evaluate("document.getElementById('result').hidden = true")
    await buyer.click("#buy")
    await expect(buyer.locator("#result")).to_contain_text("reached the limit: at most 2")
    await buyer.fill("#qty", "4")  # more than remain: sold out is checked before the limit
    await buyer.click("#buy")
    await expect(buyer.locator("#result")).to_contain_text("Not enough left for 4: only 3 left")
    await expect(console.locator("#remaining")).to_have_text("3")
    await expect(console.locator("#sold")).to_have_text("2")
    await buyer.screenshot(path=str(artifacts / "buyer-limit.png"), full_page=True)

    # The rest through the API; the console's counter falls to 0 and says so.
    assert (await stack.buy(drop_id, "bob", 2)).status == 201
    assert (await stack.buy(drop_id, "carol", 1)).status == 201
    await expect(console.locator("#remaining")).to_have_text("0")
    await expect(console.locator("#sold")).to_have_text("5")
    await expect(console.locator("#drop-status")).to_have_text("Sold out")
    await expect(console.locator("#sellout")).to_have_text(re.compile(r"^\d+\.\d s$"))
    await expect(console.locator("#sellout-label")).to_have_text("open to sold out")
    await expect(console.locator("#peak")).to_have_text(re.compile(r"^peak \d"))
    await expect(console.locator("#drop-msg")).to_contain_text(re.compile(r"Sold out in \d"))
    await expect(buyer.locator("#status")).to_have_text("Sold out")
    await expect(buyer.locator("#buy")).to_be_disabled()
    await expect(buyer.locator("#buy")).to_have_text("Sold out")
    await buyer.screenshot(path=str(artifacts / "buyer-sold-out.png"), full_page=True)
    await console.bring_to_front()  # a background tab draws no frames: clicks would wait
    await console.evaluate("window.scrollTo(0, 0)")
    await console.screenshot(path=str(artifacts / "console-sold-out.png"), full_page=True)

    # A buyer who comes after it is gone sees it sold out at once.
    late = await context.new_page()
    await late.goto(f"{stack.base}/buy/{drop_id}?token={stack.token('dave')}")
    await expect(late.locator("#status")).to_have_text("Sold out")
    await expect(late.locator("#remaining")).to_have_text("0")
    await late.close()

    # The orders file: fetched with the host key, saved through a Blob link.
    await stack.settle()
    await console.bring_to_front()
    async with console.expect_download() as info:
        await console.click("#csv")
    download = await info.value
    assert download.suggested_filename == f"orders-{drop_id}.csv"
    saved = artifacts / download.suggested_filename
    await download.save_as(str(saved))
    raw = saved.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the UTF-8 mark spreadsheets need
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert sorted((r["buyer"], int(r["quantity"])) for r in rows) == [
        ("alice", 1), ("alice", 1), ("bob", 2), ("carol", 1),
    ]  # fmt: skip
    listed = await stack.call("GET", f"/v1/drops/{drop_id}/orders", headers=stack.as_host)
    assert {r["id"] for r in rows} == {o["id"] for o in listed.body["orders"]}

    # Restock and Close, seen by the console and the buyer.
    await console.fill("#restock-qty", "3")
    await console.click("#restock")
    await expect(console.locator("#drop-msg")).to_contain_text("Units added: 3. Left now: 3.")
    await expect(console.locator("#drop-status")).to_have_text("On sale now")
    await expect(buyer.locator("#remaining")).to_have_text("3")
    await expect(buyer.locator("#buy")).to_be_enabled()
    await console.click("#close")
    await expect(console.locator("#drop-status")).to_have_text("Closed")
    await expect(buyer.locator("#buy")).to_have_text("Sale closed")
    assert (await stack.call("GET", f"/v1/drops/{drop_id}")).body["status"] == "closed"

    # The drops of a room, and of every room.
    other = await stack.new_drop(title="Lotus root 莲藕", room="farm-9")
    await console.fill("#room-filter", "farm-7")
    await console.click("#list")
    await expect(console.locator("#drops li")).to_have_count(1)
    await expect(console.locator("#drops li")).to_contain_text(TITLE)
    await expect(console.locator("#drops li")).to_contain_text("Closed · 3 of 8 left")
    await console.fill("#room-filter", "")
    await console.click("#list")
    await expect(console.locator("#drops li")).to_have_count(2)
    await console.locator("#drops li", has_text="莲藕").locator("button").click()
    await expect(console.locator("#drop-title")).to_have_text(other["title"])
    await expect(console.locator("#remaining")).to_have_text("10")
    await console.locator("#drops li", has_text=TITLE).locator("button").click()
    await expect(console.locator("#drop-status")).to_have_text("Closed")
    await expect(console.locator("#remaining")).to_have_text("3")
    await console.reload()  # still signed in (this tab), on the same drop
    await expect(console.locator("#drop-title")).to_have_text(TITLE)
    await expect(console.locator("#drop-status")).to_have_text("Closed")
    # A season of drops: the list shows the newest 100 and follows the cursor for more.
    for _ in range(101):
        await stack.new_drop(room="season", open_it=False)
    await console.fill("#room-filter", "season")
    await console.click("#list")
    await expect(console.locator("#drops li")).to_have_count(100)
    await console.click("#more-drops")
    await expect(console.locator("#drops li")).to_have_count(101)
    await expect(console.locator("#more-drops")).to_be_hidden()
    await console.click("#signout")
    await expect(console.locator("#signin-panel")).to_be_visible()
    assert await console.evaluate("sessionStorage.getItem('flashsale.hostKey')") is None

    # Nothing in the page is wider than the phone.
    for page in (console, buyer):
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{page.url} is {width}px wide"
    print(f"console test took {time.monotonic() - started:.1f} s")


async def test_a_buyer_retries_a_lost_tap_with_its_key_and_pays_a_reserved_order(
    context: Any, stack: Stack, artifacts: Path
) -> None:
    """The network fails under the first tap: the page sends it again with the same
    Idempotency-Key (one order, not two); the next tap gets a new key. With a payment window
    the order is reserved, with the time left, until the buyer pays."""
    from playwright.async_api import expect

    drop = await stack.new_drop(title="Crayfish 小龙虾 1 kg", price=4500, stock=10,
                                per_buyer_limit=3, payment_window_s=120)  # fmt: skip
    buyer = await context.new_page()
    keys: list[str] = []
    aborted = False

    async def flaky(route: Any) -> None:
        nonlocal aborted
        keys.append(route.request.headers["idempotency-key"])
        if not aborted:
            aborted = True
            await route.abort("connectionreset")  # the request never reaches the gateway
        else:
            await route.continue_()

    await buyer.route("**/purchase", flaky)
    await buyer.goto(f"{stack.base}/buy/{drop['id']}")
    await expect(buyer.locator("#token-box")).to_have_attribute("open", "")  # no token yet
    await expect(buyer.locator("#status")).to_have_text("On sale now")
    await buyer.click("#buy")
    await expect(buyer.locator("#result")).to_contain_text("Paste your buyer token first")
    await buyer.fill("#token", "not-a-token")
    await buyer.click("#buy")
    await expect(buyer.locator("#result")).to_contain_text("buyer token is not valid")
    keys.clear()
    aborted = False
    await buyer.fill("#token", stack.token("erin"))
    await expect(buyer.locator("#who")).to_have_text("Buying as erin")
    await buyer.click("#buy")
    await expect(buyer.locator("#result")).to_contain_text("Reserved for you: 1 \u00d7 Crayfish")
    await expect(buyer.locator("#time-left")).to_contain_text(re.compile(r"Pay within [12]:\d\d"))
    assert len(keys) == 2 and keys[0] == keys[1], keys
    await buyer.screenshot(path=str(artifacts / "buyer-reserved.png"), full_page=True)
    await buyer.click("#pay")
    await expect(buyer.locator("#result")).to_contain_text("Paid. Your order is complete")
    await expect(buyer.locator("#pay")).to_be_hidden()
    await buyer.click("#buy")
    await expect(buyer.locator("#result")).to_contain_text("Reserved for you")
    assert len(keys) == 3 and keys[2] != keys[0]
    await stack.settle()
    listed = await stack.call("GET", f"/v1/drops/{drop['id']}/orders", headers=stack.as_host)
    assert sorted(o["status"] for o in listed.body["orders"]) == ["paid", "reserved"]
    assert (await stack.call("GET", f"/v1/drops/{drop['id']}")).body["sold"] == 2


async def test_prices_turn_into_minor_units_by_the_currency(context: Any, stack: Stack) -> None:
    """What the host types, in the major unit, and the integer the API gets: JPY has no
    minor unit, EUR and CNY 2, KWD 3; every other code 2. Too many decimals is refused."""
    page = await context.new_page()
    await page.goto(stack.base + "/console")
    got = await page.evaluate(
        """async () => {
            const m = await import("/static/money.js");
            const tryMinor = (text, cur) => {
                try { return m.toMinor(text, cur); } catch (e) { return e.message; }
            };
            return {
                cny: tryMinor("12.90", "CNY"), eur: tryMinor("12,5", "EUR"),
                jpy: tryMinor("1290", "JPY"), kwd: tryMinor("1.234", "KWD"),
                xyz: tryMinor("3.1", "XYZ"), big: tryMinor("90071992547409.92", "USD"),
                edge: tryMinor("90071992547409.91", "USD"),
                jpyCents: tryMinor("12.5", "JPY"), eurMills: tryMinor("1.005", "EUR"),
                word: tryMinor("ten", "CNY"),
                shown: [m.formatMoney(1290, "JPY", "en-US"), m.formatMoney(1290, "CNY", "en-US"),
                        m.formatMoney(1234, "KWD", "en-US"), m.formatMoney(5, "EUR", "en-US")],
            };
        }"""
    )
    assert (got["cny"], got["eur"], got["jpy"], got["kwd"], got["xyz"]) == (
        1290, 1250, 1290, 1234, 310,
    )  # fmt: skip
    assert got["big"] == "That price is too large."
    assert got["edge"] == 2**53 - 1  # the largest price the API takes
    assert "no cents" in got["jpyCents"]
    assert "at most 2 digits" in got["eurMills"]
    assert "Write the price as a number" in got["word"]
    assert got["shown"] == ["¥1,290", "CN¥12.90", "KWD\u00a01.234", "€0.05"]


async def test_the_pages_are_served_with_their_headers_and_nothing_else_is(stack: Stack) -> None:
    """Without a browser too: the pages and their files, a policy that lets them load only
    from the gateway and keeps a token-bearing address out of referrers; any other name is
    the contract's 404 JSON, another method its 405."""
    home = await stack.http.get(stack.base + "/", allow_redirects=False)
    assert (home.status, home.headers["Location"]) == (302, "/console")
    for path in ("/console", "/buy/anything", "/static/console.js", "/static/style.css"):
        async with stack.http.get(stack.base + path) as r:
            assert r.status == 200, path
            assert r.charset == "utf-8"
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["Referrer-Policy"] == "no-referrer"
    for path in ("/static/nope.js", "/static/..%2Fconsole.py", "/buy", "/console/x"):
        reply = await stack.call("GET", path)
        assert (reply.status, reply.code) == (404, "not_found"), path
    reply = await stack.call("POST", "/console")
    assert (reply.status, reply.code) == (405, "method_not_allowed")
