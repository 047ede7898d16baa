"""The console and the buyer page in the sellers' languages: English, Simplified Chinese and
Urdu (right to left). Every string exists in every language; the pages pick the browser's
language, switch on request, format numbers and prices for it, lay Urdu out right to left,
keep a five-digit count on one line at 390 px, and show a QR code that reads back as the
buyer page's address. Screenshots of each language go to the artifacts."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.stack import HOST_KEY, Stack

STATIC = Path(__file__).resolve().parent.parent / "flashsale" / "gateway" / "static"
LANGUAGES = {"en": "ltr", "zh-Hans": "ltr", "ur": "rtl"}
# Families of keys the scripts build from an API code (`t(`error.${code}`)`).
DYNAMIC = ("error.", "field.", "status.", "host.", "buyer.")
PHONE_390 = {"width": 390, "height": 844}


def _catalog(lang: str) -> dict[str, str]:
    return json.loads((STATIC / f"messages.{lang}.json").read_text(encoding="utf-8"))


def test_every_language_has_every_string_and_nothing_else() -> None:
    english = _catalog("en")
    sources = "".join(p.read_text(encoding="utf-8") for p in STATIC.glob("*.[hj][ts]*"))
    used = set(
        re.findall(
            r"""\bt\(\s*"([\w.]+)"|data-i18n(?:-\w+)?="([\w.]+)"|\("(field\.\w+)\"""", sources
        )
    )
    used_keys = {k for group in used for k in group if k}
    assert used_keys, "the key reader found nothing"
    assert not used_keys - english.keys(), used_keys - english.keys()  # every key exists
    unused = {k for k in english if k not in used_keys and not k.startswith(DYNAMIC)}
    assert not unused, unused
    for lang in LANGUAGES:
        words = _catalog(lang)
        assert words.keys() == english.keys(), (lang, words.keys() ^ english.keys())
        for key, text in words.items():
            assert text.strip(), (lang, key)
            placeholders = sorted(re.findall(r"\{\w+\}", text))
            assert placeholders == sorted(re.findall(r"\{\w+\}", english[key])), (lang, key)
            if lang != "en" and not re.fullmatch(r"[\W\d{}a-z_]*", english[key]):
                assert text != english[key], f"{lang} {key} is the English text"


# Words that stay as they are in every language: the test's data (the product's name, the
# room, the buyer, drop and order ids), codes, the brand, a token's first characters, and
# currency codes.
KEPT = re.compile(
    r"flashsale|Matsutake|farm-7|\bbob\b|\b[a-z0-9]{12}(-[a-z0-9]{20,})?\b|LOTUS|SKU|CSV|QR"
    r"|eyJ\w+|hk_\w*|\b[A-Z]{3}\b|https?://\S*"  # a URL is no English word
)
ENGLISH_WORD = re.compile(r"[A-Za-z]{3,}")

# Every piece of text a person can see or hear on the page (text nodes, placeholders,
# labels, alternative texts, the title), leaving out code, ids and the language names.
VISIBLE_TEXT = """() => {
  const out = [document.title];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (el.closest("code, select, script, style, [hidden]")) continue;
    if (n.textContent.trim()) out.push(n.textContent.trim());
  }
  for (const el of document.querySelectorAll("[placeholder], [aria-label], img[alt]")) {
    if (el.closest("[hidden]")) continue;
    for (const a of ["placeholder", "aria-label", "alt"]) {
      if (el.getAttribute(a)) out.push(el.getAttribute(a));
    }
  }
  return out;
}"""


async def _drop_on_sale(stack: Stack) -> dict[str, Any]:
    """A drop with a five-digit count: 37,999 units, 2 sold."""
    drop = await stack.new_drop(
        stock=37_999, per_buyer_limit=2, title="Matsutake 松茸", price=1290, currency="CNY",
        room="farm-7",
    )  # fmt: skip
    assert (await stack.buy(drop["id"], "alice", quantity=2)).status == 201
    return drop


@pytest.mark.parametrize(
    ("browser_locale", "lang"), [("en-US", "en"), ("zh-CN", "zh-Hans"), ("ur-PK", "ur")]
)
async def test_the_pages_speak_the_browsers_language(
    make_context: Callable[..., Awaitable[Any]], stack: Stack, artifacts: Path,
    browser_locale: str, lang: str,
) -> None:  # fmt: skip
    from playwright.async_api import expect

    words = _catalog(lang)
    drop = await _drop_on_sale(stack)
    context = await make_context(locale=browser_locale, viewport=PHONE_390)
    console = await context.new_page()
    # Signed in by the address `up` prints: the key in the fragment, gone from it at once.
    await console.goto(f"{stack.base}/console#key={HOST_KEY}&drop={drop['id']}")
    await expect(console.locator("html")).to_have_attribute("data-ready", "true")
    await expect(console.locator("#remaining")).to_have_text(
        await console.evaluate(f"new Intl.NumberFormat({lang!r}).format(37997)")
    )
    assert "key=" not in console.url and console.url.endswith(f"#drop={drop['id']}")
    assert await console.evaluate("document.documentElement.lang") == lang
    assert await console.evaluate("getComputedStyle(document.body).direction") == LANGUAGES[lang]
    await expect(console.locator(".bar h1")).to_have_text(words["console.heading"])
    await expect(console.locator("#drop-status")).to_have_text(words["status.live"])
    await expect(console.locator("#open")).to_have_text(words["console.open"])
    price = await console.evaluate(
        f"new Intl.NumberFormat({lang!r}, {{style: 'currency', currency: 'CNY'}}).format(12.9)"
    )
    await expect(console.locator("#drop-price")).to_have_text(price)

    # At 390 px nothing is wider than the screen, and each big count is one line.
    assert await console.evaluate("document.documentElement.scrollWidth") <= PHONE_390["width"]
    for number in ("#remaining", "#sold"):
        lines = await console.evaluate(
            """(sel) => {
              const r = document.createRange();
              r.selectNodeContents(document.querySelector(sel));
              return new Set([...r.getClientRects()].map((b) => Math.round(b.top))).size;
            }""",
            number,
        )
        assert lines == 1, f"{number} breaks over {lines} lines"
    if LANGUAGES[lang] == "rtl":  # the heading starts on the right, the tools on the left
        heading = await console.locator(".bar h1").bounding_box()
        tools = await console.locator(".bar-tools").bounding_box()
        assert heading and tools and heading["x"] > tools["x"]

    buyer = await context.new_page()
    await buyer.goto(f"{stack.base}/buy/{drop['id']}?token={stack.token('bob')}")
    await expect(buyer.locator("html")).to_have_attribute("data-ready", "true")
    await expect(buyer.locator("#buy")).to_have_text(words["buy.buy"])
    await expect(buyer.locator("#who")).to_have_text(words["buy.as"].replace("{buyer}", "bob"))
    await buyer.click("#buy")
    await expect(buyer.locator("#result")).to_contain_text(words["buy.confirmed"][:4])

    if lang != "en":  # nothing left in English, on either page
        for page in (console, buyer):
            texts = await page.evaluate(VISIBLE_TEXT)
            left = [t for t in texts if ENGLISH_WORD.search(KEPT.sub("", t))]
            assert not left, left
    for name, page in (("console", console), ("buyer", buyer)):
        await page.screenshot(path=str(artifacts / f"{name}-{lang}.png"), full_page=True)


async def test_the_switcher_changes_the_language_and_keeps_it(
    make_context: Callable[..., Awaitable[Any]], stack: Stack
) -> None:
    from playwright.async_api import expect

    drop = await _drop_on_sale(stack)
    context = await make_context(locale="en-US")
    page = await context.new_page()
    await page.goto(f"{stack.base}/console#key={HOST_KEY}&drop={drop['id']}")
    await expect(page.locator("html")).to_have_attribute("data-ready", "true")
    async with page.expect_navigation():
        await page.select_option("#lang", "ur")
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    await expect(page.locator("#drop-status")).to_have_text(_catalog("ur")["status.live"])
    other = await context.new_page()  # the choice is kept for the buyer page too
    await other.goto(f"{stack.base}/buy/{drop['id']}")
    await expect(other.locator("html")).to_have_attribute("lang", "ur")


async def test_the_qr_code_reads_back_as_the_buyer_page(
    make_context: Callable[..., Awaitable[Any]], stack: Stack, artifacts: Path
) -> None:
    """Made by segno on the gateway, shown in the console, photographed (a screenshot) and
    read back by zxing-cpp: it is the buyer page's address. Tapped, it fills the screen."""
    import zxingcpp
    from PIL import Image
    from playwright.async_api import expect

    drop = await _drop_on_sale(stack)
    page = await (await make_context()).new_page()
    await page.goto(f"{stack.base}/console#key={HOST_KEY}&drop={drop['id']}")
    qr = page.locator("#qr")
    await expect(qr).to_have_js_property("complete", True)
    shot = await qr.screenshot()
    read = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)))]
    assert read == [f"{stack.base}/buy/{drop['id']}"]
    await page.click("#qr-button")
    box = await qr.bounding_box()
    assert box and box["width"] > 300  # full screen on a 360 px phone
    await page.screenshot(path=str(artifacts / "console-qr-full.png"))
    for bad in ("javascript:alert(1)", "http://x/" + "a" * 600, ""):
        reply = await stack.call("GET", f"/console/qr.svg?text={bad}")
        assert (reply.status, reply.code) == (400, "invalid_request"), bad
