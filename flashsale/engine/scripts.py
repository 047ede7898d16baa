"""The Lua scripts, loaded once and called by SHA (EVALSHA, reloaded on NOSCRIPT)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from flashsale.engine.keys import LIVE_CHANNEL, STATUS_CHANNEL, DropKeys
from flashsale.engine.redis import RedisClient

_LUA = files("flashsale.engine") / "lua"
_LIB = f"local STATUS_CHANNEL, LIVE_CHANNEL = '{STATUS_CHANNEL}', '{LIVE_CHANNEL}'\n" + (
    _LUA / "lib.lua"
).read_text("utf-8")
# lines.lua: the engine's own orders, the line, releasing holds, the door (not purchase.lua's)
_LINES = _LIB + "\n" + (_LUA / "lines.lua").read_text("utf-8")


class Scripts:
    """One registered script per file; each runs against one drop's keys."""

    def __init__(self, redis: RedisClient) -> None:
        def load(name: str, lib: str = _LINES) -> Any:
            body = (_LUA / f"{name}.lua").read_text(encoding="utf-8")
            return redis.register_script(f"{lib}\n{body}")

        # the hot script, and those that never release a hold, with lib.lua alone
        self.purchase = load("purchase", _LIB)
        self.compact = load("compact", _LIB)
        self.restore = load("restore", _LIB)
        self.drop = load("drop")
        self.pay = load("pay")
        self.sweep = load("sweep")
        self.queue = load("queue")
        self.draw = load("draw")
        self.waitlist = load("waitlist")
        # not about one drop: its own keys (keys.rate_window), without lib.lua
        self.rate = redis.register_script((_LUA / "rate.lua").read_text(encoding="utf-8"))

    @staticmethod
    async def call(script: Any, drop_id: str, *args: Any, client: RedisClient | None = None) -> Any:
        return await script(keys=DropKeys.of(drop_id), args=args, client=client)
