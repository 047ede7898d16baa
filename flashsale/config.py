"""Settings: environment first, then flags; what is left comes from the data dir.

`flashsale up` writes the URL of the Redis it started into the data dir, and the token
secret and host key live there too, so `flashsale token`, `audit`, `serve` and `worker` run
beside `up` with no configuration at all.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path

ACKS = ("leader", "replica")
CLAIM_IDLE_MS = 30_000


class ConfigError(Exception):
    pass


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _kept(path: Path, make: str) -> str:
    """Reads a secret kept in the data dir, creating it (owner-only) the first time.

    Processes started together (`serve` and `worker` beside each other) may both find it
    missing: it is written whole under another name and linked into place, so the one that
    loses the race reads the winner's secret, never a half-written file.
    """
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(make + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    finally:
        draft.unlink()
    return make


@dataclass(frozen=True)
class Settings:
    """Everything a flashsale process is configured with; one block of defaults (the field
    defaults below, which `load` also reads). Frozen: a changed copy is `replace()`d."""

    data_dir: Path
    redis_url: str | None
    database_url: str
    token_secret: str
    host_keys: list[str]
    acks: str = "leader"
    buyer_rate: float = 5.0  # purchases and payments per second a buyer keeps up
    buyer_burst: int = 20  # and how many they may send at once
    # Per client address: high, because a mobile carrier's NAT puts many buyers behind one.
    ip_rate: float = 1000.0
    ip_burst: int = 5000
    trusted_proxies: list[str] = field(default_factory=list)  # their X-Forwarded-For counts
    max_in_flight: int = 1024  # API requests one gateway process works on at once
    claim_idle_ms: int = CLAIM_IDLE_MS  # a dead worker's batch is taken over after this
    replica_timeout_s: float = 5.0  # acks=replica: a purchase no replica has by then is 504
    retention_s: float = 604_800.0  # a drop closed this long, all settled, is compacted
    http_idle_s: float = 75.0  # a keep-alive connection with nothing to do is closed after this
    http_read_s: float = 10.0  # a request must arrive whole within this of its first byte
    # Webhooks: private, loopback and link-local destinations refused unless allowed; an
    # attempt's bound; the first retry's delay (doubling from there); when one is given up.
    webhook_allow_private: bool = False
    webhook_timeout_s: float = 10.0
    webhook_retry_s: float = 5.0
    webhook_give_up_s: float = 86_400.0

    @property
    def runtime_redis_file(self) -> Path:
        return self.data_dir / "redis.url"

    @property
    def runtime_url_file(self) -> Path:
        """Where a running `up` says it serves (what `loadtest` fires at by default)."""
        return self.data_dir / "gateway.url"

    @property
    def up_pid_file(self) -> Path:
        return self.data_dir / "up.pid"

    def to_env(self) -> dict[str, str]:
        """These settings as the environment of a `flashsale` process started from here (the
        bench's and the tests' servers): what `load` reads back into the same settings."""
        return {f"FLASHSALE_{f.name.upper()}": _env_value(getattr(self, f.name))
                for f in fields(self) if getattr(self, f.name) is not None}  # fmt: skip

    def require_redis(self) -> str:
        if self.redis_url:
            return self.redis_url
        if self.runtime_redis_file.exists():
            return self.runtime_redis_file.read_text(encoding="utf-8").strip()
        raise ConfigError(
            "no Redis: set FLASHSALE_REDIS_URL, or run `flashsale up` with this data dir"
        )


def _env_value(value: object) -> str:
    if isinstance(value, list):  # host keys, trusted proxies: comma-separated, as `load` reads
        return ",".join(str(v) for v in value)
    return str(value)


def load(
    *,
    data_dir: str | None = None,
    redis_url: str | None = None,
    database_url: str | None = None,
    acks: str | None = None,
    keep: bool = True,
) -> Settings:
    """Settings from the environment, overridden by any flag given (not None).

    With `keep`, a secret the environment does not give is read from the data dir, and made
    there the first time (the processes that serve). Without it nothing is made: a command
    run from the wrong place finds no secret ("" and no host keys) and says so, rather than
    signing with a new secret that no gateway knows."""
    base = Path(data_dir or _env("FLASHSALE_DATA_DIR") or ".flashsale").resolve()

    def kept(name: str, make: str) -> str:
        if keep:
            return _kept(base / name, make)
        path = base / name
        return path.read_text(encoding="utf-8").strip() if path.exists() else ""

    acks = acks or _env("FLASHSALE_ACKS") or "leader"
    if acks not in ACKS:
        raise ConfigError(f"FLASHSALE_ACKS must be one of {', '.join(ACKS)}, not {acks!r}")
    keys = _env("FLASHSALE_HOST_KEYS")
    host_keys = [k.strip() for k in keys.split(",") if k.strip()] if keys else []
    if not host_keys:
        host_keys = [k for k in [kept("host_key", "hk_" + secrets.token_urlsafe(24))] if k]

    def number(name: str, default: float) -> float:
        raw = _env(name)
        try:
            return float(raw) if raw is not None else default
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {raw!r}") from None

    return Settings(
        data_dir=base,
        redis_url=redis_url or _env("FLASHSALE_REDIS_URL"),
        database_url=database_url
        or _env("FLASHSALE_DATABASE_URL")
        or f"sqlite:///{base / 'orders.db'}",
        token_secret=_env("FLASHSALE_TOKEN_SECRET")
        or kept("token_secret", secrets.token_urlsafe(32)),
        host_keys=host_keys,
        acks=acks,
        buyer_rate=number("FLASHSALE_BUYER_RATE", Settings.buyer_rate),
        buyer_burst=int(number("FLASHSALE_BUYER_BURST", Settings.buyer_burst)),
        ip_rate=number("FLASHSALE_IP_RATE", Settings.ip_rate),
        ip_burst=int(number("FLASHSALE_IP_BURST", Settings.ip_burst)),
        trusted_proxies=_trusted_proxies(),
        max_in_flight=max(1, int(number("FLASHSALE_MAX_IN_FLIGHT", Settings.max_in_flight))),
        claim_idle_ms=int(number("FLASHSALE_CLAIM_IDLE_MS", Settings.claim_idle_ms)),
        replica_timeout_s=number("FLASHSALE_REPLICA_TIMEOUT_S", Settings.replica_timeout_s),
        retention_s=number("FLASHSALE_RETENTION_S", Settings.retention_s),
        http_idle_s=number("FLASHSALE_HTTP_IDLE_S", Settings.http_idle_s),
        http_read_s=number("FLASHSALE_HTTP_READ_S", Settings.http_read_s),
        webhook_allow_private=_flag("FLASHSALE_WEBHOOK_ALLOW_PRIVATE"),
        webhook_timeout_s=number("FLASHSALE_WEBHOOK_TIMEOUT_S", Settings.webhook_timeout_s),
        webhook_retry_s=number("FLASHSALE_WEBHOOK_RETRY_S", Settings.webhook_retry_s),
        webhook_give_up_s=number("FLASHSALE_WEBHOOK_GIVE_UP_S", Settings.webhook_give_up_s),
    )


def _flag(name: str) -> bool:
    raw = (_env(name) or "0").lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"{name} must be 1 or 0, not {raw!r}")
    return raw in ("1", "true", "yes")


def _trusted_proxies() -> list[str]:
    raw = _env("FLASHSALE_TRUSTED_PROXIES") or ""
    proxies = [p.strip() for p in raw.split(",") if p.strip()]
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                f"FLASHSALE_TRUSTED_PROXIES: {proxy!r} is not an address or network"
            ) from None
    return proxies


def missing_secret(settings: Settings, what: str) -> ConfigError:
    """What a command that needs a secret it did not find says (load with keep=False)."""
    env = {"token secret": "FLASHSALE_TOKEN_SECRET", "host key": "FLASHSALE_HOST_KEYS"}[what]
    return ConfigError(
        f"no {what} here: {settings.data_dir} has none. Run this where `flashsale up` runs "
        f"(or pass --data-dir with its data dir), or set {env} to what the gateway uses"
    )
