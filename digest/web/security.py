"""One policy for every page: the response headers (a strict Content-Security-Policy, no
framing, no caching, no sniffing), CSRF tokens on every form, and rate limits.

CSRF: a random nonce lives in an HttpOnly, SameSite=Strict cookie; each form carries the
nonce with an HMAC over it and what it is bound to (the editor's session, when logged in).
A POST passes when the form's nonce is the cookie's and the HMAC is genuine."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from flask import Response, abort, g, request

CSRF_COOKIE = "digest_csrf"
PAGE_CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
DESK_CSP = PAGE_CSP + "; frame-src 'self'; script-src 'self'; connect-src 'self'"
# The email itself (desk preview, archive): its own remote images may load, nothing else;
# scripts never run.
EMAIL_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
             "frame-ancestors 'self'; sandbox")
ARCHIVE_CSP = EMAIL_CSP.replace("frame-ancestors 'self'; sandbox", "frame-ancestors 'none'")


class RateLimit:
    """At most `count` events per key within `window` seconds."""

    def __init__(self, count: int, window: float) -> None:
        self.count, self.window = count, window
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            events = self._events[key]
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.count:
                return False
            events.append(now)
            return True


def apply_headers(response: Response, secure: bool, key: bytes) -> Response:
    """The headers every response carries (a view may have set a stricter CSP), and the
    CSRF cookie when this request issued a token."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", PAGE_CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    nonce = g.get("csrf_new_nonce")
    if nonce:
        response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="Strict", secure=secure)
    return response


def csrf_token(key: bytes, binding: str = "") -> str:
    """The token for this request's forms (one nonce per browser, kept in a cookie)."""
    nonce = _cookie_nonce() or g.get("csrf_new_nonce")
    if not nonce:
        nonce = g.csrf_new_nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_signature(key, nonce, binding)}"


def require_csrf(key: bytes, binding: str = "") -> None:
    """Refuse (403) a POST whose form token is missing, forged or not this browser's."""
    sent = request.form.get("csrf_token", "")
    nonce, _, signature = sent.partition(".")
    cookie = _cookie_nonce()
    if not (nonce and cookie and _equal(nonce, cookie)
            and _equal(signature, _signature(key, nonce, binding))):
        abort(403)


def _cookie_nonce() -> str:
    return request.cookies.get(CSRF_COOKIE, "")


def _signature(key: bytes, nonce: str, binding: str) -> str:
    message = f"csrf:{binding}:{nonce}".encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:40]


def _equal(a: str, b: str) -> bool:
    """Constant-time comparison that copes with any characters a client sends."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"),
                               b.encode("utf-8", "surrogatepass"))


class LoginThrottle:
    """Failed logins slow down the name and client they came from, not anyone else: after
    FREE_FAILURES wrong passwords for one name from one client, each further try from there
    waits twice as long as the last (up to MAX_WAIT). The right password from another
    client always gets through, and a success clears the count."""

    FREE_FAILURES = 5
    MAX_WAIT = 900.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def wait(self, name: str, client: str) -> float:
        """Seconds before this name may be tried again from this client (0: now)."""
        with self._lock:
            count, last = self._failures.get((name, client), (0, 0.0))
        if count < self.FREE_FAILURES:
            return 0.0
        delay = min(self.MAX_WAIT, 2.0 ** (count - self.FREE_FAILURES + 1))
        return max(0.0, last + delay - self._clock())

    def failed(self, name: str, client: str) -> None:
        with self._lock:
            count, _ = self._failures.get((name, client), (0, 0.0))
            self._failures[(name, client)] = (count + 1, self._clock())
            if len(self._failures) > 100_000:  # a flood of made-up names: forget the oldest
                self._failures.pop(next(iter(self._failures)))

    def succeeded(self, name: str, client: str) -> None:
        with self._lock:
            self._failures.pop((name, client), None)
