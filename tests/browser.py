"""A real browser for the page tests: Debian's Chromium, headless, driven by Playwright (its
async API, in the session's event loop, beside the real gateway). No browser is downloaded:
Playwright starts /usr/bin/chromium. Without it these tests skip, unless
FLASHSALE_REQUIRE_BROWSER=1 (CI), where a missing browser is a failure. Screenshots go to
$FLASHSALE_ARTIFACTS/console if set, else to the test's tmp dir (printed)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

PHONE = {"width": 360, "height": 780}  # the narrowest phones in common use

CHROMIUM = os.environ.get("FLASHSALE_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("FLASHSALE_REQUIRE_BROWSER") == "1"


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no browser at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e .[dev])"
    return None


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    reason = _missing()
    if reason is not None:
        if REQUIRE:
            pytest.fail(f"FLASHSALE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        await chromium.close()


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    root = os.environ.get("FLASHSALE_ARTIFACTS")
    where = Path(root) / "console" if root else tmp_path / "artifacts"
    where.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of {request.node.name}: {where}")
    return where


@pytest.fixture
async def make_context(browser: Any) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Browser profiles, phone-sized unless told (`locale` sets the browser's languages).
    Every page's uncaught errors and Content-Security-Policy refusals are collected and must
    be none at the end."""
    made: list[Any] = []
    problems: list[str] = []

    async def make(locale: str = "en-US", viewport: dict[str, int] = PHONE) -> Any:
        ctx = await browser.new_context(
            viewport=viewport, device_scale_factor=2, locale=locale, accept_downloads=True
        )

        def on_page(page: Any) -> None:
            def on_console(message: Any) -> None:
                # a refused load, or a string missing from a language (i18n.js says which)
                if "Content Security Policy" in message.text or "flashsale: no " in message.text:
                    problems.append(f"{page.url}: {message.text}")

            page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
            page.on("console", on_console)

        ctx.on("page", on_page)
        ctx.problems = problems
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        await ctx.close()
    assert not problems, problems


@pytest.fixture
async def context(make_context: Callable[..., Awaitable[Any]]) -> Any:
    """The phone-sized English profile most console tests use."""
    return await make_context()
