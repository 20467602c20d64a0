"""HTTP fetching for sources and article pages, as a good citizen: one requests.Session
per host (connection reuse), connect and read timeouts, a cap on body size, retries with
exponential backoff and jitter on connection errors, 429 and 5xx (honouring Retry-After
up to a limit), none on other 4xx, conditional GET, robots.txt, and a per-host limit on
parallel requests."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import requests
from urllib3.util.retry import Retry

from digest.errors import FetchError
from digest.netguard import (
    AddressPolicy,
    Deadline,
    Origin,
    Refused,
    guarded_adapter,
    origin_of,
    origins_from,
)
from digest.urls import is_web_url

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Page:
    """A fetched response: the URL it ended at, its status, headers and body."""

    url: str
    status: int
    content_type: str
    body: bytes
    etag: str = ""
    last_modified: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class _CappedRetry(Retry):
    """urllib3's Retry, but a Retry-After longer than the cap ends the retries instead of
    stalling the whole run for as long as the server asks."""

    max_retry_after: float = 60.0

    def get_retry_after(self, response):  # type: ignore[no-untyped-def]
        seconds = super().get_retry_after(response)
        if seconds is not None and seconds > self.max_retry_after:
            raise requests.exceptions.RetryError(
                f"server asked to wait {seconds:g}s (Retry-After), more than "
                f"{self.max_retry_after:g}s")
        return seconds

    def new(self, **kw):  # type: ignore[no-untyped-def]
        fresh = super().new(**kw)
        fresh.max_retry_after = self.max_retry_after
        return fresh


@dataclass(frozen=True)
class FetchPolicy:
    """How politely to fetch: the [fetch] settings."""

    user_agent: str
    timeout: float = 20.0
    max_bytes: int = 10_000_000
    retries: int = 2
    backoff: float = 0.5
    max_retry_after: float = 60.0
    max_redirects: int = 5
    per_host: int = 4
    respect_robots: bool = True
    request_deadline: float = 30.0  # connect + headers + body of one request, in all
    source_deadline: float = 120.0  # everything read from one source
    run_deadline: float = 900.0  # everything fetched by one run
    private_ok: frozenset[tuple[str, int]] = frozenset()  # sources on non-public addresses
    allow_private: bool = False


@dataclass(frozen=True)
class Scope:
    """What the fetches of one source may reach, and until when."""

    name: str
    allowed: frozenset[Origin]
    ends: float | None = None  # monotonic time the source's deadline passes

    def permits(self, url: str) -> bool:
        return origin_of(url) in self.allowed


REDIRECTS = (301, 302, 303, 307, 308)
_scope = threading.local()


class Fetcher:
    """Fetches URLs; every failure is a FetchError naming the URL and the cause."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        retry = _CappedRetry(total=policy.retries, connect=policy.retries,
                             read=policy.retries, status=policy.retries, redirect=None,
                             backoff_factor=policy.backoff, backoff_jitter=policy.backoff / 2,
                             status_forcelist=RETRY_STATUSES, allowed_methods=["GET"],
                             respect_retry_after_header=True, raise_on_status=False)
        retry.max_retry_after = policy.max_retry_after
        self._retry = retry
        self._addresses = AddressPolicy(policy.private_ok, policy.allow_private)
        self._run_ends = time.monotonic() + policy.run_deadline
        self._sessions: dict[str, requests.Session] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._robots: dict[str, RobotFileParser | None] = {}
        self._lock = threading.Lock()

    @contextmanager
    def scope(self, name: str, source_url: str, allowed_hosts: Iterable[str] = ()
              ) -> Iterator[Scope]:
        """Within this block, this thread fetches for one source: only its own origin and
        the ones [[sources]] allowed_hosts names, within [fetch] source_deadline."""
        scope = Scope(name, frozenset({origin_of(source_url)}) | origins_from(allowed_hosts),
                      time.monotonic() + self.policy.source_deadline)
        previous = getattr(_scope, "current", None)
        _scope.current = scope
        try:
            yield scope
        finally:
            _scope.current = previous

    def get(self, url: str, *, etag: str = "", last_modified: str = "") -> Page:
        """GET a URL (conditionally when validators are given); 2xx and 304 come back as
        Pages. Redirects are followed here, each hop checked against the source's scope."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        first = url
        for _hop in range(self.policy.max_redirects + 1):
            self._permitted(first, url)
            page = self._one(url, headers)
            if page.status not in REDIRECTS:
                return page
            target = page.headers.get("Location", "")
            if not target:
                raise FetchError(f"{url}: HTTP {page.status} without a Location")
            url = urljoin(url, target.strip())
        raise FetchError(f"{first}: more than {self.policy.max_redirects} redirects "
                         "(a redirect loop?)")

    def _permitted(self, first: str, url: str) -> None:
        if not is_web_url(url):
            raise FetchError(f"{first}: only http and https URLs are fetched"
                             + (f" (redirected to {url})" if url != first else ""))
        scope = getattr(_scope, "current", None)
        if scope is not None and not scope.permits(url):
            how = f"redirected to {url}, which is" if url != first else "it is"
            raise FetchError(f"{first}: {how} not on the origin of source {scope.name!r} "
                             "(scheme, host and port); [[sources]] allowed_hosts can allow it")

    def _one(self, url: str, headers: dict[str, str]) -> Page:
        seconds = self._deadline_seconds()
        if seconds <= 0:
            raise FetchError(f"{url}: not fetched, the {self._which_deadline()} has passed")
        session, slot = self._session(_host(url))
        timeout = (min(self.policy.timeout, 10.0), self.policy.timeout)
        with slot, Deadline(seconds) as deadline:
            try:
                with session.get(url, headers=headers, timeout=timeout, stream=True,
                                 allow_redirects=False) as response:
                    return self._page(url, response)
            except Refused as exc:
                raise FetchError(f"{url}: refused: {exc}") from None
            except (requests.exceptions.RequestException, OSError) as exc:
                if deadline.expired:
                    raise FetchError(f"{url}: gave up after {seconds:g}s, the "
                                     f"{self._which_deadline()}") from None
                self._failed(url, exc)

    def _deadline_seconds(self) -> float:
        scope = getattr(_scope, "current", None)
        ends = [self._run_ends] + ([scope.ends] if scope and scope.ends else [])
        return min([self.policy.request_deadline] + [end - time.monotonic() for end in ends])

    def _which_deadline(self) -> str:
        scope = getattr(_scope, "current", None)
        now = time.monotonic()
        if self._run_ends - now < self.policy.request_deadline and \
                (scope is None or scope.ends is None or self._run_ends <= scope.ends):
            return f"run's deadline ([fetch] run_deadline = {self.policy.run_deadline:g}s)"
        if scope is not None and scope.ends is not None and \
                scope.ends - now < self.policy.request_deadline:
            return (f"deadline of source {scope.name!r} ([fetch] source_deadline = "
                    f"{self.policy.source_deadline:g}s)")
        return f"request deadline ([fetch] request_deadline = {self.policy.request_deadline:g}s)"

    def _failed(self, url: str, exc: BaseException) -> NoReturn:
        """Turn a requests error into one FetchError line."""
        if isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc):
            raise FetchError(f"{url}: timed out after {self.policy.timeout:g}s") from None
        if isinstance(exc, requests.exceptions.RetryError):
            raise FetchError(f"{url}: gave up after retries ({_reason(exc)})") from None
        if isinstance(exc, requests.exceptions.RequestException):
            raise FetchError(f"{url}: {_reason(exc)}") from None
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FetchError(f"{url}: {reason}") from None

    def allowed(self, url: str) -> bool:
        """Whether robots.txt of the URL's site lets our User-Agent fetch it."""
        if not self.policy.respect_robots:
            return True
        host = _host(url)
        with self._lock:
            known = host in self._robots
        if not known:
            parser = self._read_robots(url)
            with self._lock:
                self._robots[host] = parser
        parser = self._robots[host]
        return parser is None or parser.can_fetch(self.policy.user_agent, url)

    def _read_robots(self, url: str) -> RobotFileParser | None:
        parts = urlsplit(url)
        robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
        try:
            page = self.get(robots_url)
        except FetchError as exc:
            log.debug("no usable robots.txt (%s): everything allowed", exc)
            return None
        parser = RobotFileParser(robots_url)
        parser.parse(page.text.splitlines())
        return parser

    def _page(self, url: str, response: requests.Response) -> Page:
        if response.status_code >= 400:
            raise FetchError(f"{url}: HTTP {response.status_code} {response.reason}")
        body = b"" if response.status_code == 304 else self._read_capped(url, response)
        return Page(url=url, status=response.status_code,
                    content_type=response.headers.get("Content-Type", ""), body=body,
                    etag=response.headers.get("ETag", ""),
                    last_modified=response.headers.get("Last-Modified", ""),
                    headers=dict(response.headers))

    def _session(self, host: str) -> tuple[requests.Session, threading.BoundedSemaphore]:
        with self._lock:
            session = self._sessions.get(host)
            if session is None:
                session = requests.Session()
                session.headers["User-Agent"] = self.policy.user_agent
                session.max_redirects = self.policy.max_redirects
                adapter = guarded_adapter(self._addresses, max_retries=self._retry,
                                          pool_maxsize=self.policy.per_host)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._sessions[host] = session
                self._slots[host] = threading.BoundedSemaphore(self.policy.per_host)
            return session, self._slots[host]

    def _read_capped(self, url: str, response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.policy.max_bytes:
            raise FetchError(f"{url}: response of {int(declared)} bytes is over the "
                             f"{self.policy.max_bytes}-byte limit, not read")
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.policy.max_bytes:
                raise FetchError(f"{url}: response over the {self.policy.max_bytes}-byte "
                                 "limit, cut off")
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close every per-host session."""
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()


def _reason(exc: BaseException) -> str:
    text = str(exc.args[0] if exc.args else exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host not found"
    if "Retry-After" in text:
        return text
    if "too many 429" in text or "429" in text:
        return "HTTP 429 Too Many Requests, still after retries"
    if "too many 5" in text or "error responses" in text:
        return "server errors (5xx), still after retries"
    return text.split("(Caused by")[-1].strip(" ()")[:200] or type(exc).__name__
