"""A minimal SMTP server that accepts mail and throws it away, fast enough that it is
never the bottleneck of a sending benchmark (aiosmtpd tops out near 550 messages a second
here). It offers PIPELINING and 8BITMIME, counts what it accepted per recipient, and can
refuse chosen recipients. For benchmarks and tests only."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable


class _Session(asyncio.Protocol):
    def __init__(self, server: NullSmtpServer) -> None:
        self.server = server
        self.buffer = b""
        self.in_data = False
        self.recipient = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport.write(b"220 null ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                self.buffer = self.buffer[end + 5:]
                self.in_data = False
                self.server.accepted(self.recipient)
                self.transport.write(b"250 2.0.0 accepted\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
            self.transport.write(self._answer(line))
            if line.upper().startswith(b"QUIT"):
                self.transport.close()
                return

    def _answer(self, line: bytes) -> bytes:
        command = line.upper()
        if command.startswith((b"EHLO", b"HELO")):
            return b"250-null\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        if command.startswith(b"RCPT TO:"):
            self.recipient = line[8:].strip(b" <>").split(b">")[0].decode("utf-8", "replace")
            if self.server.refuses(self.recipient):
                self.recipient = ""
                return b"550 5.1.1 no such user\r\n"
            return b"250 ok\r\n"
        if command.startswith(b"DATA"):
            if not self.recipient:
                return b"554 5.5.1 no valid recipients\r\n"
            self.in_data = True
            return b"354 go ahead\r\n"
        if command.startswith(b"RSET"):
            self.recipient = ""
        if command.startswith(b"QUIT"):
            return b"221 bye\r\n"
        return b"250 ok\r\n"


class NullSmtpServer:
    """The server on 127.0.0.1 in a thread of its own; port 0 picks a free port."""

    def __init__(self, refuse: Callable[[str], bool] = lambda _r: False) -> None:
        self.refuses = refuse
        self.received: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def accepted(self, recipient: str) -> None:
        with self._lock:
            self.received[recipient] += 1

    def _serve(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            server = await self._loop.create_server(lambda: _Session(self), "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            async with server:
                await server.serve_forever()

        try:
            asyncio.run(main())
        except asyncio.CancelledError:
            pass

    def __enter__(self) -> NullSmtpServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            for task in asyncio.all_tasks(self._loop):
                self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout=5)


def serve_forever() -> None:
    """Run a null server in this process until it is killed (benchmarks start it apart)."""
    import sys

    with NullSmtpServer() as server:
        print(server.port, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
