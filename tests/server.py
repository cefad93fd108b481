"""A real `strongroom serve` in a subprocess, on embedded PostgreSQL, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ADMIN_CLIENT_ID = "test-admin"
ADMIN_CLIENT_SECRET = "test-admin-secret-0123456789"
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    def __init__(
        self, data_dir: Path, extra_arguments: tuple[str, ...] = (), *, new_session: bool = False
    ) -> None:
        self.data_dir = data_dir
        self.extra_arguments = extra_arguments
        self.new_session = new_session  # its own process group, for `stop_group`
        self.http_port = free_port()
        self.ws_port = free_port()
        self.mtf_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "serve.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ)
        environment.update(
            STRONGROOM_ADMIN_CLIENT_ID=ADMIN_CLIENT_ID,
            STRONGROOM_ADMIN_CLIENT_SECRET=ADMIN_CLIENT_SECRET,
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "strongroom.cli", "serve",
                "--data-dir", str(self.data_dir),
                "--http-port", str(self.http_port),
                "--ws-port", str(self.ws_port),
                "--mtf-port", str(self.mtf_port),
                *self.extra_arguments,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=self.new_session,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                response = httpx.get(f"{self.base_url}/status/", timeout=1.0)
                if response.status_code == 200 and response.json()["status"] == "ok":
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self, timeout_s: float = 60.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def stop_group(self, timeout_s: float = 60.0) -> int:
        """SIGTERM to the server's whole process group (its journal writer included), as a
        terminal's Ctrl-C or `timeout` does; needs `new_session`."""
        assert self.process is not None and self.new_session
        os.killpg(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout_s)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        """Stop whatever is still running (for teardown after a failed test)."""
        if self.running:
            try:
                self.stop(timeout_s=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def client(self, scope: str = "read write admin", **token_fields: Any) -> httpx.Client:
        response = httpx.post(
            f"{self.base_url}/o/token/",
            data={
                "grant_type": "client_credentials",
                "client_id": ADMIN_CLIENT_ID,
                "client_secret": ADMIN_CLIENT_SECRET,
                "scope": scope,
                **token_fields,
            },
            timeout=30.0,
        )
        response.raise_for_status()
        client = httpx.Client(base_url=self.base_url, timeout=30.0)
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return client
