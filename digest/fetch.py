"""HTTP fetching for sources and article pages: one requests.Session per host,
timeouts, a real User-Agent, retries with backoff, and a cap on body size."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from digest.errors import FetchError

RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Page:
    """A fetched response: the URL it ended at, its status, type and body."""

    url: str
    status: int
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Fetcher:
    """Fetches URLs politely; every failure is a FetchError naming the URL and the cause."""

    def __init__(self, *, user_agent: str, timeout: float, max_bytes: int,
                 retries: int = 2, backoff: float = 0.5) -> None:
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                            backoff_factor=backoff, backoff_jitter=backoff / 2,
                            status_forcelist=RETRY_STATUSES, allowed_methods=["GET", "HEAD"],
                            respect_retry_after_header=True, raise_on_status=False)
        self._sessions: dict[str, requests.Session] = {}
        self._lock = threading.Lock()

    def _session(self, url: str) -> requests.Session:
        host = urlsplit(url).netloc.lower()
        with self._lock:
            session = self._sessions.get(host)
            if session is None:
                session = requests.Session()
                session.headers["User-Agent"] = self.user_agent
                adapter = HTTPAdapter(max_retries=self._retry)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._sessions[host] = session
            return session

    def get(self, url: str) -> Page:
        """GET a URL and return its body; raise FetchError on any failure or non-2xx status."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise FetchError(f"{url}: only http and https URLs are fetched")
        try:
            with self._session(url).get(url, timeout=(min(self.timeout, 10), self.timeout),
                                        stream=True) as response:
                if response.status_code >= 400:
                    raise FetchError(f"{url}: HTTP {response.status_code} {response.reason}")
                body = self._read_capped(url, response)
                return Page(url=response.url, status=response.status_code,
                            content_type=response.headers.get("Content-Type", ""), body=body)
        except requests.exceptions.Timeout:
            raise FetchError(f"{url}: timed out after {self.timeout:g}s") from None
        except requests.exceptions.TooManyRedirects:
            raise FetchError(f"{url}: too many redirects") from None
        except requests.exceptions.RetryError as exc:
            raise FetchError(f"{url}: gave up after retries ({_reason(exc)})") from None
        except requests.exceptions.RequestException as exc:
            raise FetchError(f"{url}: {_reason(exc)}") from None

    def _read_capped(self, url: str, response: requests.Response) -> bytes:
        chunks, size = [], 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(f"{url}: response larger than {self.max_bytes} bytes, cut off")
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


def _reason(exc: BaseException) -> str:
    text = str(exc.args[0] if exc.args else exc)
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host not found"
    return text.split("(Caused by")[-1].strip(" ()")[:200] or type(exc).__name__
