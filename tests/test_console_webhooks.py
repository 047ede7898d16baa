"""The console's webhooks, in a real browser at phone width: a host adds the shop's address,
copies the secret (shown once), sees orders arrive signed with it, resends, and removes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.stack import HOST_KEY, MakeStack
from tests.test_webhook_faults import has_all, sell
from tests.webhooks import Receiver, assert_signed

PHONE_390 = {"width": 390, "height": 844}


async def test_a_host_adds_a_shop_sees_orders_arrive_resends_and_removes_it(
    make_context: Any, make_stack: MakeStack, artifacts: Path
) -> None:
    from playwright.async_api import expect

    stack = await make_stack(webhook_allow_private=True, webhook_retry_s=0.05)
    shop = await Receiver().start()
    try:
        context = await make_context(locale="en-US", viewport=PHONE_390)
        page = await context.new_page()
        await page.goto(f"{stack.base}/console#key={HOST_KEY}")
        await expect(page.locator("#webhooks-none")).to_be_visible()
        await page.fill("#webhook-url", shop.url)
        await page.uncheck("input[value='order.expired']")
        await page.click("#webhook-add")
        secret = page.locator("#webhook-secret-value")
        await expect(secret).to_have_text(__import__("re").compile(r"^whsec_"))
        item = page.locator("#webhooks li")
        await expect(item).to_have_count(1)
        await expect(item).to_contain_text(shop.url)
        await expect(item).to_contain_text("every drop · new orders · payments")
        await expect(item).to_contain_text("everything delivered or on its way")
        await page.screenshot(path=artifacts / "console-webhooks.png", full_page=True)
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE_390["width"]

        ids = {x for x in await sell(stack, buyers=3, pay=3) if not x.endswith("_expired")}
        await has_all(shop, ids)
        assert_signed(shop, await secret.inner_text())  # the secret the page showed

        shop.delivered.clear()
        await page.click("#webhooks li .resend")
        await expect(page.locator("#webhook-msg")).to_contain_text("sent again")
        await has_all(shop, ids)

        await page.click("#webhooks li .remove")
        await expect(page.locator("#webhook-msg")).to_contain_text("Removed")
        await expect(item).to_have_count(0)
        assert (await stack.call("GET", "/v1/webhooks", None, stack.as_host)).body["webhooks"] == []
    finally:
        await shop.stop()
