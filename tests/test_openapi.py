"""docs/openapi.yaml describes exactly the routes the gateway serves, with their methods:
read from the running application's router, so a route added anywhere is held to it."""

from __future__ import annotations

from pathlib import Path

import yaml
from aiohttp import web
from jsonschema import Draft202012Validator

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


async def test_answers_fit_their_schemas(stack: Stack) -> None:
    """A drop of one SKU, one of variants with deposits, and their orders, as served, each
    valid against the schema the spec gives them."""
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))

    def valid(name: str, value: object) -> None:
        schema = {"components": spec["components"], "$ref": f"#/components/schemas/{name}"}
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(value)]
        assert not errors, (name, errors, value)

    plain = await stack.new_drop(deposit=100, payment_window_s=60)
    sizes = [{"code": c, "title": f"Jacket {c}", "price": 900, "stock": 5, "deposit": 90}
             for c in ("S", "M")]  # fmt: skip
    body = {"sku": "J", "title": "Jacket", "currency": "PKR", "variants": sizes,
            "payment_window_s": 60, "per_buyer_limit": 2}  # fmt: skip
    created = await stack.call("POST", "/v1/drops", body, stack.as_host)
    assert created.status == 201, created.body
    sized = (await stack.call("POST", f"/v1/drops/{created.body['id']}/open", None,
                              stack.as_host)).body  # fmt: skip
    for drop in (plain, sized):
        valid("Drop", drop)
    valid("OrderEnvelope", (await stack.buy(plain["id"], "ali")).body)
    order = await stack.buy(sized["id"], "ali", 2, variant="M")
    valid("OrderEnvelope", order.body)
    restocked = await stack.call("POST", f"/v1/drops/{sized['id']}/restock",
                                 {"quantity": 1, "variant": "S"}, stack.as_host)  # fmt: skip
    valid("Drop", restocked.body)
    listed = await stack.call("GET", "/v1/drops?limit=5")
    for drop in listed.body["drops"]:
        valid("Drop", drop)
