"""The host console (`/console`) and the buyer page (`/buy/{drop}`): plain HTML, CSS and JS
shipped in the package, so a host needs nothing but the gateway and a phone's browser (no
build step, no CDN, nothing fetched from anywhere else).

The pages only call the public HTTP API, like any other client. The files are read once at
import: they are small, and a page load during a drop should never wait on the disk. Only
the files shipped in `static/` are served, by name (no paths, so nothing outside it can be
reached); any other name is the contract's 404 JSON, like every unknown path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final

import segno
from aiohttp import web

from flashsale.gateway.errors import ApiError

routes = web.RouteTableDef()

STATIC: Final = Path(__file__).parent / "static"
TYPES: Final = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# The pages load scripts and styles from here only, and talk to this gateway only. No
# referrer: the buyer page's URL may carry a buyer token (?token=) that must not leak.
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time: a host who reloads after an upgrade gets the new console.
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, tuple[bytes, str]]:
    """Every servable file, by name, with its content type (files of other types are not
    served: a stray file in the directory is not published by accident)."""
    files = {}
    for path in sorted(STATIC.iterdir()):
        kind = TYPES.get(path.suffix)
        if path.is_file() and kind is not None:
            files[path.name] = (path.read_bytes(), kind)
    return files


FILES: Final = _load()


def _file(name: str) -> web.Response:
    if name not in FILES:
        raise ApiError(404, "not_found", "no such file")
    body, kind = FILES[name]
    return web.Response(body=body, content_type=kind, charset="utf-8", headers=HEADERS)


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    """The bare address a host types leads to the console. Returned, not raised, so the
    middleware sees an ordinary answer."""
    return web.Response(status=302, headers={"Location": "/console"})


@routes.get("/console")
async def console(request: web.Request) -> web.Response:
    return _file("console.html")


@routes.get("/buy/{drop}")
async def buy(request: web.Request) -> web.Response:
    """One page for every drop: the page reads the drop's id from its own address."""
    return _file("buy.html")


QR_MAX = 512  # characters of a URL the QR code holds: a buyer page's is under 100


@routes.get("/console/qr.svg")
async def qr(request: web.Request) -> web.Response:
    """The QR code of a buyer page, which the host holds up to the camera. The console asks
    for the address it shows (its own origin, as the buyers' phones reach it through any
    proxy), so only http(s) URLs of reasonable length are drawn. Made by segno, at error
    correction level M: a phone camera reads it off a screen across a room."""
    text = request.query.get("text", "")
    if not text.startswith(("http://", "https://")) or len(text) > QR_MAX:
        raise ApiError(
            400, "invalid_request", f"text must be an http(s) URL of at most {QR_MAX} characters"
        )
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=8, border=4, xmldecl=False)
    headers = {**HEADERS, "Cache-Control": "public, max-age=86400"}
    return web.Response(body=out.getvalue(), content_type="image/svg+xml", headers=headers)


@routes.get("/static/{name}")
async def static(request: web.Request) -> web.Response:
    return _file(request.match_info["name"])
