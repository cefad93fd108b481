"""A lean HTTP/1.1 keep-alive client for the load (h11 over asyncio streams).

The load generator must cost less than what it measures. `httpx.AsyncClient` spends
1 to 2 ms of CPU per request on this machine, which made the generator, not the server,
the bottleneck of a served run at a few hundred requests a second; this client spends
about a tenth of that. It does only what the REST edge needs: JSON bodies, one request
at a time per connection, a bounded pool of connections (requests wait for a free one,
and that wait is part of their latency), a timeout on every request. Provisioning and
sampling still use httpx.

A request on a reused connection that fails before any byte of the answer arrived (the
server closed the idle connection) is sent once more on a new connection: the server
never read it. Any other failure is the caller's error to count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import urlsplit

import h11
import msgspec

READ_SIZE = 64 * 1024
IDLE_MAX_S = 4.0  # uvicorn closes keep-alive connections idle for 5 s


class RestClientError(Exception):
    """No usable answer: the connection failed or the protocol broke."""


class Response:
    __slots__ = ("body", "status_code")

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT)
        self.used_at = time.monotonic()
        self.reused = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    async def exchange(self, request: bytes) -> tuple[Response, bool]:
        """(answer, whether any of it arrived); raises on failure, with `received` said."""
        protocol = self.protocol
        self.writer.write(request)
        status = 0
        chunks: list[bytes] = []
        received = False
        try:
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    data = await self.reader.read(READ_SIZE)
                    received = received or bool(data)
                    protocol.receive_data(data)
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise RestClientError("the server closed the connection")
        except (h11.ProtocolError, ConnectionError, OSError) as error:
            raise _Failed(received) from error
        except RestClientError as error:
            raise _Failed(received) from error
        keep = protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
        if keep:
            protocol.start_next_cycle()
        return Response(status, b"".join(chunks)), keep


class _Failed(Exception):
    def __init__(self, received: bool) -> None:
        super().__init__("request failed")
        self.received = received


class RestClient:
    def __init__(
        self,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        connections_max: int = 64,
        timeout_s: float = 30.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http:// URL, not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self._headers = [("Host", parts.netloc), *(headers or {}).items()]
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(connections_max)
        self._open: set[_Connection] = set()

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.used_at < IDLE_MAX_S:
                connection.reused = True
                return connection
            self._discard(connection)
        reader, writer = await asyncio.open_connection(self.host, self.port)
        connection = _Connection(reader, writer)
        self._open.add(connection)
        return connection

    def _discard(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.close()

    def _encode(self, connection: _Connection, method: str, path: str, body: bytes) -> bytes:
        headers = [*self._headers, ("Content-Length", str(len(body)))]
        if body:
            headers.append(("Content-Type", "application/json"))
        protocol = connection.protocol
        data = protocol.send(h11.Request(method=method, target=path, headers=headers)) or b""
        if body:
            data += protocol.send(h11.Data(data=body)) or b""
        return data + (protocol.send(h11.EndOfMessage()) or b"")

    async def _once(self, method: str, path: str, body: bytes) -> Response:
        for attempt in (1, 2):
            connection = await self._connection()
            reused = connection.reused
            try:
                response, keep = await connection.exchange(
                    self._encode(connection, method, path, body)
                )
            except _Failed as failed:
                self._discard(connection)
                if reused and not failed.received and attempt == 1:
                    continue  # an idle connection the server had closed: it never read this
                raise RestClientError(f"{method} {path}: {failed.__cause__!r}") from None
            except BaseException:
                self._discard(connection)  # cancelled or timed out mid-exchange
                raise
            if keep:
                connection.used_at = time.monotonic()
                self._idle.append(connection)
            else:
                self._discard(connection)
            return response
        raise AssertionError("unreachable")

    async def request(self, method: str, path: str, json: Any = None) -> Response:
        body = b"" if json is None else msgspec.json.encode(json)
        async with self._slots:
            return await asyncio.wait_for(self._once(method, path, body), self.timeout_s)

    async def post(self, path: str, json: Any = None) -> Response:
        return await self.request("POST", path, json if json is not None else {})

    async def delete(self, path: str) -> Response:
        return await self.request("DELETE", path)

    async def aclose(self) -> None:
        for connection in list(self._open):
            self._discard(connection)
        self._idle.clear()
