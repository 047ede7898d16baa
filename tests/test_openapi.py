"""docs/openapi.yaml describes exactly the routes the gateway serves, with their methods:
read from the running application's router, so a route added anywhere is held to it."""

from __future__ import annotations

from pathlib import Path

import yaml
from aiohttp import web

from tests.stack import Stack

SPEC = Path(__file__).parent.parent / "docs" / "openapi.yaml"


def test_openapi_matches_the_routes(stack: Stack) -> None:
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    app: web.Application = stack.runner.app  # type: ignore[assignment]
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"  # aiohttp adds HEAD to GET
    }
    assert documented == served
    error_codes = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    assert "code" in error_codes
