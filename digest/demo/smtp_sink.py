"""A local SMTP server (aiosmtpd) that writes every message it receives to a folder
as an .eml file, and keeps a copy in memory for whoever started it. Tests can make it
slow (`delay`), have it refuse chosen messages (`answer`) or hang up after every Nth
message (`drop_every`)."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


Answer = Callable[[int, str], str]
VANISH = "vanish"  # an answer that keeps the message and hangs up without replying


def accept_all(_number: int, _recipient: str) -> str:
    return "250 Message accepted for delivery"


class _Keeper:
    def __init__(self, folder: Path | None, answer: Answer, delay: float,
                 drop_every: int) -> None:
        self.folder = folder
        self.answer = answer
        self.delay = delay
        self.drop_every = drop_every
        self._hang_up: set[int] = set()
        self.messages: list[Received] = []
        self.attempts: list[Received] = []  # every message offered, refused ones too
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          address: str, options: list[str]) -> str:
        if id(session) in self._hang_up:
            self._hang_up.discard(id(session))
            server.transport.close()
            return "421 4.3.2 closing connection"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        received = Received(envelope.mail_from, tuple(envelope.rcpt_tos), data)
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            self.attempts.append(received)
            number = next(self._counter)
            reply = self.answer(number, received.recipients[0])
            if reply == VANISH:  # take the message, then drop the line before answering
                self.messages.append(received)
                server.transport.abort()
                return "250 OK"
            if not reply.startswith("250"):
                return reply
            self.messages.append(received)
            if self.drop_every and len(self.messages) % self.drop_every == 0:
                # hang up on this connection's next command, once the 250 has gone out
                self._hang_up.add(id(session))
        if self.folder is not None:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            safe = "".join(c if c.isalnum() or c in "@.-" else "_" for c in received.recipients[0])
            path = self.folder / f"{os.getpid()}-{number:05d}-{safe}.eml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        return reply


class SmtpSink:
    """aiosmtpd on 127.0.0.1 in its own thread; port 0 picks a free port."""

    def __init__(self, folder: Path | None = None, port: int = 0, host: str = "127.0.0.1",
                 answer: Answer = accept_all, delay: float = 0.0, drop_every: int = 0,
                 **server_options: Any) -> None:
        self._keeper = _Keeper(folder, answer, delay, drop_every)
        self._started = False
        self.host = host
        options = {"decode_data": False, "enable_SMTPUTF8": True, **server_options}
        self.controller = Controller(self._keeper, hostname=host, port=port or _free_port(host),
                                     **options)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def messages(self) -> list[Received]:
        return list(self._keeper.messages)

    @property
    def attempts(self) -> list[Received]:
        """Every message the server was offered, the ones it refused included."""
        return list(self._keeper.attempts)

    def start(self) -> SmtpSink:
        """Start listening (once); OSError when the port is taken."""
        if not self._started:
            self.controller.start()
            self._started = True
        return self

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
