"""Logging for every flashsale process: plain lines for a person at a terminal, or one JSON
object per line (`--log-format json`, FLASHSALE_LOG_FORMAT) for a log pipeline.

Each line carries the request id of the request it was written for (X-Request-Id, made by
the gateway when the client sent none, and sent back with the answer), so ops can follow
one buyer's tap from the gateway's log to a support ticket. Nothing is logged for a
successful purchase: at 10,000 a second that would be the gateway's biggest cost.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
REQUEST_ID_SHAPE = re.compile(r"^[\x21-\x7e]{1,64}\Z")
_TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_JSON = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s %(process)d"
# Unique across processes and restarts without a random draw per request.
_PREFIX = secrets.token_hex(4)
_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_counter):x}"


def request_id(given: str | None) -> str:
    """The client's X-Request-Id if it is one we can log and echo, else a new one."""
    return given if given is not None and REQUEST_ID_SHAPE.match(given) else new_request_id()


_make_record = logging.getLogRecordFactory()


def _with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _make_record(*args, **kwargs)
    record.request_id = REQUEST_ID.get()
    return record


# Every record gets the id when it is made, whichever handler writes it (pytest's too).
logging.setLogRecordFactory(_with_request_id)


def setup(level: int, fmt: str | None = None) -> None:
    """Sets up this process's logging (spawned gateway processes call it too)."""
    fmt = fmt or os.environ.get("FLASHSALE_LOG_FORMAT") or "text"
    if fmt not in FORMATS:
        raise ValueError(f"the log format is one of {', '.join(FORMATS)}, not {fmt!r}")
    os.environ["FLASHSALE_LOG_FORMAT"] = fmt  # the processes this one starts log alike
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(_JSON, rename_fields={"levelname": "level", "asctime": "time"})
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Hostile or broken clients are routine on a public port: aiohttp's own error lines
    # about them would drown the rest.
    logging.getLogger("aiohttp.server").setLevel(max(level, logging.WARNING))
