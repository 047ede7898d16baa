"""docs/openapi.yaml describes exactly the routes the gateway serves, with their methods."""

from __future__ import annotations

from pathlib import Path

import yaml
from aiohttp import web

from flashsale.gateway import drops, health, orders, purchase

SPEC = Path(__file__).parent.parent / "docs" / "openapi.yaml"


def test_openapi_matches_the_routes() -> None:
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    served = {
        (route.method, route.path)
        for module in (drops, health, orders, purchase)
        for route in module.routes
        if isinstance(route, web.RouteDef)
    }
    assert documented == served
    error_codes = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    assert "code" in error_codes
