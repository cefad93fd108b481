from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.cli import parser


def test_flags_default_to_spec_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA_DIR", "DATABASE_URL", "HOST", "HTTP_PORT", "WS_PORT", "MTF_PORT", "CONFIG"):
        monkeypatch.delenv(f"STRONGROOM_{name}", raising=False)
    arguments = parser().parse_args(["serve"])
    assert arguments.data_dir == Path("./.strongroom")
    assert arguments.database_url is None and arguments.config is None
    assert (arguments.host, arguments.http_port, arguments.ws_port, arguments.mtf_port) == (
        "127.0.0.1", 8080, 8765, 9100,
    )  # fmt: skip


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_HTTP_PORT", "9999")
    monkeypatch.setenv("STRONGROOM_DATABASE_URL", "postgresql://example/db")
    arguments = parser().parse_args(["serve"])
    assert arguments.http_port == 9999
    assert arguments.database_url == "postgresql://example/db"
    assert parser().parse_args(["serve", "--http-port", "7000"]).http_port == 7000


def test_a_bad_port_is_refused() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--http-port", "70000"])
