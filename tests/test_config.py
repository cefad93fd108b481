from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.config import DEFAULT, load
from strongroom.errors import ConfigurationError


def test_built_in_markets_have_exact_factors() -> None:
    btc_usdt = DEFAULT.markets["BTC-USDT"]
    assert btc_usdt.market_id == 1
    assert btc_usdt.base_minor_per_lot == 10_000  # 0.0001 BTC in satoshi
    assert btc_usdt.quote_minor_per_tick_lot == 1  # 0.01 × 0.0001 USDT = 1 µUSDT
    assert DEFAULT.markets["ETH-USDT"].quote_minor_per_tick_lot == 10
    assert DEFAULT.markets["ETH-BTC"].quote_minor_per_tick_lot == 1
    assert DEFAULT.fees.maker_bps == 10 and DEFAULT.fees.taker_bps == 20


def test_config_file_adds_markets(tmp_path: Path) -> None:
    path = tmp_path / "extra.toml"
    path.write_text(
        '[[currencies]]\ncode = "SOL"\nkind = "coin"\ndecimals = 9\n'
        '[[markets]]\nsymbol = "SOL-USDT"\nmarket_id = 4\nbase = "SOL"\nquote = "USDT"\n'
        'tick_size = "0.001"\nlot_size = "0.01"\n'
    )
    config = load(path)
    assert set(config.markets) == {"BTC-USDT", "ETH-USDT", "ETH-BTC", "SOL-USDT"}
    assert config.markets["SOL-USDT"].quote_minor_per_tick_lot == 10


def test_tick_times_lot_below_the_minor_unit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[markets]]\nsymbol = "BAD"\nmarket_id = 9\nbase = "BTC"\nquote = "USD"\n'
        'tick_size = "0.01"\nlot_size = "0.0001"\n'
    )
    with pytest.raises(ConfigurationError, match="tick × lot"):
        load(path)


def test_duplicate_market_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.toml"
    path.write_text(
        '[[markets]]\nsymbol = "ETH-USD"\nmarket_id = 1\nbase = "ETH"\nquote = "USDT"\n'
        'tick_size = "0.01"\nlot_size = "0.001"\n'
    )
    with pytest.raises(ConfigurationError, match="unique"):
        load(path)
