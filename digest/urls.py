"""URL rules shared by fetching and extraction: which URLs we follow, and the one
canonical form an article is remembered by."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

TRACKING_PARAMS = ("utm_", "fbclid", "gclid", "mc_cid", "mc_eid", "_ga", "igshid", "ref_src")


def is_web_url(url: str) -> bool:
    """True for an absolute http or https URL with a host."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def same_host(url: str, other: str) -> bool:
    """True when both URLs name the same host (ignoring case and a leading 'www.')."""
    def host(u: str) -> str:
        name = (urlsplit(u).hostname or "").lower()
        return name[4:] if name.startswith("www.") else name
    return host(url) == host(other)


def strip_tracking(url: str) -> str:
    """The URL without utm_* and other click-tracking parameters, and without a fragment."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith(TRACKING_PARAMS)]
    return urlunsplit((parts.scheme, parts.netloc.lower(), parts.path or "/",
                       urlencode(query), ""))


def canonical_url(final_url: str, canonical_link: str = "") -> str:
    """The URL an article is known by: its rel=canonical when usable, else where we ended up."""
    if canonical_link:
        candidate = urljoin(final_url, canonical_link)
        # A canonical link to another site is not this article's address (a hostile page
        # could point its readers anywhere with one).
        if is_web_url(candidate) and same_host(candidate, final_url):
            return strip_tracking(candidate)
    return strip_tracking(final_url)


def is_loopback_host(host: str) -> bool:
    """True when every address the host name resolves to is this machine's."""
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback
                   for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False
