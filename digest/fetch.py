"""HTTP fetching for sources and article pages, as a good citizen: one requests.Session
per host (connection reuse), connect and read timeouts, a cap on body size, retries with
exponential backoff and jitter on connection errors, 429 and 5xx (honouring Retry-After
up to a limit), none on other 4xx, conditional GET, robots.txt, and a per-host limit on
parallel requests."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from digest.errors import FetchError
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
        self._sessions: dict[str, requests.Session] = {}
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._robots: dict[str, RobotFileParser | None] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, etag: str = "", last_modified: str = "") -> Page:
        """GET a URL (conditionally when validators are given); 2xx and 304 come back as Pages."""
        if not is_web_url(url):
            raise FetchError(f"{url}: only http and https URLs are fetched")
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        host = _host(url)
        session, slot = self._session(host)
        timeout = (min(self.policy.timeout, 10.0), self.policy.timeout)
        with slot:
            try:
                with session.get(url, headers=headers, timeout=timeout, stream=True) as response:
                    return self._page(url, response)
            except requests.exceptions.Timeout:
                raise FetchError(f"{url}: timed out after {self.policy.timeout:g}s") from None
            except requests.exceptions.TooManyRedirects:
                raise FetchError(f"{url}: more than {self.policy.max_redirects} redirects "
                                 "(a redirect loop?)") from None
            except requests.exceptions.RetryError as exc:
                raise FetchError(f"{url}: gave up after retries ({_reason(exc)})") from None
            except requests.exceptions.RequestException as exc:
                if "timed out" in str(exc):
                    raise FetchError(f"{url}: timed out after {self.policy.timeout:g}s") \
                        from None
                raise FetchError(f"{url}: {_reason(exc)}") from None

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
        return Page(url=response.url, status=response.status_code,
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
                adapter = HTTPAdapter(max_retries=self._retry, pool_maxsize=self.policy.per_host)
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
