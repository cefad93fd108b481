"""An asyncio MTF member connection over the sans-I/O `MemberSession`.

Used by `strongroom mtf`, the end-to-end tests and the benchmark: it logs in, sends
what the session queues, keeps the session's heartbeats going and hands received
frames out in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import time
from collections import deque
from collections.abc import Callable

from strongroom.wire.mtf import Code, Frame, MemberSession

TICK_INTERVAL_S = 0.2
READ_SIZE = 256 * 1024


class MtfError(Exception):
    pass


class MtfClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: MemberSession,
        *,
        heartbeats: bool = True,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.session = session
        self._frames: deque[Frame] = deque()
        self._arrived = asyncio.Event()
        self._eof = False
        self._reader_task = asyncio.create_task(self._read(), name="mtf-client-read")
        self._ticker = (
            asyncio.create_task(self._tick(), name="mtf-client-ticks") if heartbeats else None
        )

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        client_id: int,
        secret: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        heartbeats: bool = True,
    ) -> MtfClient:
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context)
        session = MemberSession(client_id, secret, wall_ns=time.time_ns, monotonic=time.monotonic)
        return cls(reader, writer, session, heartbeats=heartbeats)

    async def login(self, nonce: int | None = None, timeout_s: float = 10.0) -> Frame:
        """Send `L`; the answer, `l` or `j`."""
        self.session.login(nonce if nonce is not None else secrets.randbits(63))
        self.flush()
        return await self.next_frame(timeout_s, skip_heartbeats=True)

    def flush(self) -> None:
        data = self.session.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    break
                self.session.receive_data(data)
                self._frames.extend(self.session.frames())
                self._arrived.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self._eof = True
            self._arrived.set()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL_S)
            self.session.tick()
            self.flush()

    @property
    def closed_by_peer(self) -> bool:
        return self._eof and not self._frames

    def pending(self) -> list[Frame]:
        """Every frame received and not taken yet."""
        frames = list(self._frames)
        self._frames.clear()
        return frames

    async def next_frame(self, timeout_s: float = 10.0, *, skip_heartbeats: bool = True) -> Frame:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            while self._frames:
                frame = self._frames.popleft()
                if not (skip_heartbeats and frame.code == Code.HEARTBEAT):
                    return frame
            if self._eof:
                raise MtfError("the connection was closed")
            self._arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("no frame in time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def frames_until(
        self, done: Callable[[Frame], bool], timeout_s: float = 10.0
    ) -> list[Frame]:
        """Frames (heartbeats left out) up to and including the first for which `done`."""
        frames: list[Frame] = []
        while True:
            frame = await self.next_frame(timeout_s)
            frames.append(frame)
            if done(frame):
                return frames

    async def wait_closed(self, timeout_s: float = 10.0) -> None:
        await asyncio.wait_for(asyncio.shield(self._reader_task), timeout_s)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
        self._reader_task.cancel()
        await asyncio.gather(self._reader_task, return_exceptions=True)
        if self._ticker is not None:
            await asyncio.gather(self._ticker, return_exceptions=True)
