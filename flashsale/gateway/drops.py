"""Drop endpoints: hosts create and run drops; anyone may look at them."""

from __future__ import annotations

import csv
import io
import re

import msgspec
from aiohttp import web

from flashsale.engine import (
    Drop,
    DropSpec,
    Mark,
    Order,
    RestockSpec,
    Text64,
    is_drop_id,
    iter_orders,
    reopen,
    rfc3339,
)
from flashsale.gateway.bodies import (
    NOT_A_CURSOR,
    decode_cursor,
    encode_cursor,
    invalid,
    query_int,
    read_json,
)
from flashsale.gateway.errors import Answer, ApiError, json_response, ok, response
from flashsale.gateway.state import Gateway, gateway

routes = web.RouteTableDef()
PAGE_MAX = 10_000
# A cursor is "s<seq>". At most 18 digits: the stores hold seq as a signed 64-bit integer,
# and a forged cursor with a larger one made SQLite raise OverflowError (a 500, not a 400).
CURSOR = re.compile(r"s[0-9]{1,18}")
DROPS_PAGE_MAX = 1_000
# A drop cursor is "t<its index score>:<its id>" (engine/drops.py `Mark`).
DROP_CURSOR = re.compile(r"t([0-9]{1,12}(?:\.[0-9]{1,9})?):([a-z0-9]{1,32})")
CSV_COLUMNS = (
    "id",
    "buyer",
    "quantity",
    "amount",
    "currency",
    "status",
    "created_at",
    "expires_at",
    "paid_or_expired_at",
    "idempotency_key",
    "seq",
    "variant",
    "balance",
)


def found(drop: Drop | None) -> Drop:
    if drop is None:
        raise ApiError(404, "not_found", "no such drop")
    return drop


@routes.post("/v1/drops")
async def create(request: web.Request) -> web.Response:
    gw = gateway(request)
    gw.auth.host(request)
    spec = await read_json(request, DropSpec)
    return json_response(await gw.engine.drops.create(spec), 201)


@routes.get("/v1/drops")
async def list_drops(request: web.Request) -> web.Response:
    room = request.query.get("room")
    if room is not None:
        try:
            msgspec.convert(room, Text64)  # the rule a drop's room was made by
        except msgspec.ValidationError:
            raise invalid("room must be 1 to 64 characters, no control characters") from None
    limit = query_int(request, "limit", 100, 1, DROPS_PAGE_MAX)
    after = _drop_mark(request.query.get("after"))
    drops, more = await gateway(request).engine.drops.page(room, after, limit)
    return json_response({"drops": drops, "next": _drop_cursor(more) if more else None})


def _drop_cursor(mark: Mark) -> str:
    return encode_cursor(f"t{mark[0]!r}:{mark[1]}")


def _drop_mark(cursor: str | None) -> Mark | None:
    if cursor is None:
        return None
    m = decode_cursor(cursor, DROP_CURSOR)
    if not is_drop_id(m[2]):
        raise invalid(NOT_A_CURSOR)
    return float(m[1]), m[2]


async def view(gw: Gateway, drop_id: str) -> Answer:
    """GET /v1/drops/{id}, for either HTTP path: buyers poll it during a drop."""
    return ok(found(await gw.engine.drops.get(drop_id)))


@routes.get("/v1/drops/{id}")
async def get(request: web.Request) -> web.Response:
    return response(await view(gateway(request), request.match_info["id"]))


@routes.post("/v1/drops/{id}/open")
async def open_drop(request: web.Request) -> web.Response:
    gw = gateway(request)
    gw.auth.host(request)
    engine = gw.engine
    drop = await reopen(engine.drops, engine.scripts, gw.store, request.match_info["id"])
    return json_response(found(drop))


@routes.post("/v1/drops/{id}/close")
async def close_drop(request: web.Request) -> web.Response:
    gw = gateway(request)
    gw.auth.host(request)
    return json_response(found(await gw.engine.drops.close(request.match_info["id"])))


@routes.post("/v1/drops/{id}/restock")
async def restock(request: web.Request) -> web.Response:
    gw = gateway(request)
    gw.auth.host(request)
    spec = await read_json(request, RestockSpec)
    drop_id = request.match_info["id"]
    return json_response(
        found(await gw.engine.drops.restock(drop_id, spec.quantity, spec.variant or ""))
    )


def _cursor(seq: int) -> str:
    return encode_cursor(f"s{seq}")


def _after(cursor: str | None) -> int:
    return 0 if cursor is None else int(decode_cursor(cursor, CURSOR)[0][1:])


def _csv_cell(value: object) -> object:
    # A buyer id like "=HYPERLINK(...)" must stay text when a host opens the file in a sheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_row(o: Order) -> list[object]:
    return [_csv_cell(v) for v in (
        o.id, o.buyer, o.quantity, o.amount, o.currency, o.status, rfc3339(o.created_at),
        rfc3339(o.expires_at), rfc3339(o.ended_at), o.idempotency_key, o.seq, o.variant,
        o.balance,
    )]  # fmt: skip


@routes.get("/v1/drops/{id}/orders")
async def orders(request: web.Request) -> web.StreamResponse:
    gw = gateway(request)
    gw.auth.host(request)
    drop = found(await gw.engine.drops.get(request.match_info["id"]))
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise invalid("format is json or csv")
    # Checked for the CSV too, which exports every order: a bad query is a bad query.
    limit = query_int(request, "limit", 100, 1, PAGE_MAX)
    after = _after(request.query.get("after"))
    if fmt == "csv":
        return await _export_csv(request, drop)
    page = await gw.store.page(drop.id, after, limit)
    nxt = _cursor(page[-1].seq) if len(page) == limit else None
    return json_response({"orders": [o.public() for o in page], "next": nxt})


async def _export_csv(request: web.Request, drop: Drop) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="orders-{drop.id}.csv"',
    })  # fmt: skip
    await response.prepare(request)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    async for order in iter_orders(gateway(request).store, drop.id):
        writer.writerow(_csv_row(order))
        if buf.tell() > 64 * 1024:
            await response.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
    await response.write(buf.getvalue().encode())
    await response.write_eof()
    return response
