"""What a partner's side looks like in end-to-end tests: a partner of its own (OAuth
application, token, client), and a real webhook endpoint on 127.0.0.1 that keeps what it
receives, with the signature check a partner would make (HMAC-SHA256 recomputed)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.server import ServerProcess, free_port

FRESHNESS_S = 300


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes
    at_s: float

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


class Receiver:
    """A partner's webhook endpoint on 127.0.0.1: answers 500 to the first `failures`
    requests, 204 after; keeps what it received."""

    def __init__(self, port: int | None = None, failures: int = 0) -> None:
        self.port = port or free_port()
        self.failures = failures
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?partner=test"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Received(headers, body, time.monotonic()))
                    failing = len(receiver.received) <= receiver.failures
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *arguments: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)


def partner_accepts(secret: str, received: Received) -> bool:
    """A partner's check: the HMAC of timestamp + "." + body, and a fresh timestamp."""
    timestamp = received.headers["x-webhook-timestamp"]
    expected = hmac.new(
        secret.encode("utf-8"), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    header = received.headers["x-webhook-signature"]
    fresh = abs(time.time() - int(timestamp)) < FRESHNESS_S
    return fresh and header.startswith("sha256=") and hmac.compare_digest(header[7:], expected)


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


@dataclass
class Partner:
    partner_id: str
    client: httpx.Client
    secret: str = ""


def new_partner(server: ServerProcess, admin: httpx.Client) -> Partner:
    created = admin.post(
        "/o/apps/", json={"name": "hooked", "scopes": "read write", "new_partner": True}
    )
    assert created.status_code == 201, created.text
    application = created.json()
    token = httpx.post(
        f"{server.base_url}/o/token/",
        data={"grant_type": "client_credentials", "client_id": application["client_id"],
              "client_secret": application["client_secret"]},
    )  # fmt: skip
    assert token.status_code == 200, token.text
    client = httpx.Client(base_url=server.base_url, timeout=30.0)
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return Partner(application["partner_id"], client)


def configure(partner: Partner, url: str) -> dict[str, Any]:
    response = partner.client.post("/user/webhooks/", json={"callback_url": url})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    if "secret" in answer:
        partner.secret = answer["secret"]
    return answer


def hooked_partner(server: ServerProcess, admin: httpx.Client, url: str) -> Partner:
    partner = new_partner(server, admin)
    assert "secret" in configure(partner, url)
    return partner


def deliveries(partner: Partner, **params: Any) -> list[dict[str, Any]]:
    response = partner.client.get("/user/webhooks/deliveries/", params=params)
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed
