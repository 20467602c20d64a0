"""Behind a reverse proxy: the client's address and scheme come from the X-Forwarded-For
and X-Forwarded-Proto headers only when the request arrives from a proxy [web]
trusted_proxies names; from anyone else those headers are dropped. Rate limits then key on
the real client, and the Secure cookie attribute follows the scheme the client used."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
             "HTTP_X_FORWARDED_PORT", "HTTP_FORWARDED")


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR networks ('127.0.0.1', '10.0.0.0/8', '::1')."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


class TrustedProxies:
    """WSGI middleware: believe the forwarding headers of trusted proxies only."""

    def __init__(self, app: Callable[..., Any], trusted: tuple[Network, ...],
                 hops: int = 1) -> None:
        self.app, self.trusted, self.hops = app, trusted, max(1, hops)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._trusted(environ.get("REMOTE_ADDR", "")):
            self._believe(environ)
        for name in FORWARDED:
            environ.pop(name, None)
        return self.app(environ, start_response)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def _believe(self, environ: dict[str, Any]) -> None:
        chain = [a.strip() for a in environ.get("HTTP_X_FORWARDED_FOR", "").split(",")
                 if a.strip()]
        if len(chain) >= self.hops:
            client = chain[-self.hops]
            try:
                ipaddress.ip_address(client)
                environ["REMOTE_ADDR"] = client
            except ValueError:
                pass
        schemes = [s.strip().lower() for s in environ.get("HTTP_X_FORWARDED_PROTO", "")
                   .split(",") if s.strip()]
        if schemes and schemes[-1] in ("http", "https"):
            environ["wsgi.url_scheme"] = schemes[-1]
