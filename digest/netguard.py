"""What the fetcher may reach, and for how long. A hostile feed must not turn the digest
into a way to read internal services: an article is fetched only from its source's own
origin (scheme, host and port) or an origin the operator allowed, on every redirect hop;
and whatever a host name resolves to, a connection to a loopback, private, link-local or
metadata address is refused unless the operator configured that very origin as a source.
The address is checked on the socket actually connected, so DNS cannot be rebound between
a check and the connection. A deadline closes a request's socket when the whole request
(connect, headers, body) runs over, however slowly the bytes trickle."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

Origin = tuple[str, str, int]  # scheme, host (lower case), port
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> Origin:
    """The origin a URL is on."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def origins_from(entries: Iterable[str]) -> frozenset[Origin]:
    """Origins from [[sources]] allowed_hosts: 'host' (http and https on their default
    ports), 'host:port' (both schemes on that port) or a full 'https://host:port'."""
    found: set[Origin] = set()
    for entry in entries:
        entry = entry.strip()
        if "://" in entry:
            found.add(origin_of(entry))
            continue
        host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        for scheme, default in DEFAULT_PORTS.items():
            found.add((scheme, host.lower(), int(port) if port.isdigit() else default))
    return frozenset(found)


def is_public(address: str) -> bool:
    """False for loopback, private, link-local (cloud metadata), multicast, reserved."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class Refused(Exception):
    """The policy refuses this connection; the message says why."""


@dataclass(frozen=True)
class AddressPolicy:
    """Which origins may live on non-public addresses (the configured sources' own)."""

    private_ok: frozenset[tuple[str, int]] = frozenset()  # (host, port)
    allow_private: bool = False

    def check(self, host: str, port: int, peer: str) -> None:
        """Refuse a connection to `host:port` that reached the non-public `peer`."""
        if self.allow_private or is_public(peer):
            return
        if (host.lower(), port) in self.private_ok:
            return
        raise Refused(f"{host} resolves to {peer}, a non-public address; only a configured "
                      "source may be fetched there")


# --- deadlines ------------------------------------------------------------------------

_current = threading.local()


class Deadline:
    """A request's whole-time limit: when it passes, every socket the request opened or
    reused is shut down, so a read blocked on a server that drips bytes returns at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> Deadline:
        self._timer.start()
        _current.deadline = self
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _current.deadline = None


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _watch(sock: Any) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


@contextmanager
def no_deadline() -> Iterator[None]:
    """Outside any request's deadline (a thread that fetched before)."""
    _current.deadline = None
    yield


# --- the connections ------------------------------------------------------------------


class _Guarded:
    """Checks the connected peer against the policy, and puts the socket under the
    current request's deadline, on every request (a pooled connection is reused)."""

    policy: AddressPolicy = AddressPolicy()

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        sock = self.sock  # type: ignore[attr-defined]
        _watch(sock)
        peer = sock.getpeername()[0]
        try:
            self.policy.check(self.host, self.port, peer)  # type: ignore[attr-defined]
        except Refused:
            self.close()  # type: ignore[attr-defined]
            raise

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _watch(getattr(self, "sock", None))
        return super().request(*args, **kwargs)  # type: ignore[misc]


def guarded_adapter(policy: AddressPolicy, **options: Any) -> HTTPAdapter:
    """A requests adapter whose connections follow the policy."""

    class Http(_Guarded, HTTPConnection):
        pass

    class Https(_Guarded, HTTPSConnection):
        pass

    Http.policy = Https.policy = policy

    class HttpPool(HTTPConnectionPool):
        ConnectionCls = Http

    class HttpsPool(HTTPSConnectionPool):
        ConnectionCls = Https

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HttpPool, "https": HttpsPool}

    return Adapter(**options)


def remaining(until: float | None) -> float | None:
    """Seconds left before a monotonic end time (None: no end)."""
    return None if until is None else until - time.monotonic()
