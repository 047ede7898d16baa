"""Settings: one block of defaults, frozen, and carried to a child process whole."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from flashsale import config
from flashsale.config import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path.resolve(), redis_url="redis://10.0.0.7:6390",
        database_url="sqlite:///orders.db", token_secret="t" * 40, host_keys=["hk_a", "hk_b"],
        acks="replica", buyer_rate=7.5, ip_burst=900, trusted_proxies=["10.0.0.0/8"],
        max_in_flight=64, claim_idle_ms=5_000, retention_s=60.0, http_read_s=3.0,
    )  # fmt: skip


def test_settings_go_to_a_child_process_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLASHSALE_")]:
        monkeypatch.delenv(name)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert config.load() == settings


def test_settings_are_changed_by_copy_and_defaults_are_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.redis_url = "redis://elsewhere"  # type: ignore[misc]
    moved = dataclasses.replace(settings, redis_url="redis://elsewhere")
    assert (moved.redis_url, settings.redis_url) == ("redis://elsewhere", "redis://10.0.0.7:6390")
    for name in [n for n in os.environ if n.startswith("FLASHSALE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FLASHSALE_DATA_DIR", str(tmp_path))
    loaded = config.load()
    for f in dataclasses.fields(Settings):
        if f.default is not dataclasses.MISSING:
            assert getattr(loaded, f.name) == f.default, f.name
