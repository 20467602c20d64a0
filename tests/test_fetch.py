"""The fetcher against real misbehaving HTTP servers on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from digest.errors import FetchError
from digest.fetch import Fetcher, FetchPolicy
from tests.http_server import Reply, RouteServer, fixed, sequence


def fetcher(**overrides: object) -> Fetcher:
    # The servers here stand for configured sources, which may be on 127.0.0.1.
    options: dict[str, object] = {"user_agent": "DigestTest/1.0", "timeout": 2.0,
                                  "backoff": 0.05, "allow_private": True, **overrides}
    return Fetcher(FetchPolicy(**options))  # type: ignore[arg-type]


def test_sends_a_real_user_agent() -> None:
    with RouteServer({"/": fixed(Reply(body=b"ok"))}) as server, fetcher() as f:
        assert f.get(server.url + "/").body == b"ok"
        assert server.seen_headers[0]["user-agent"] == "DigestTest/1.0"


def test_slow_server_times_out_with_the_url_named() -> None:
    with RouteServer({"/slow": fixed(Reply(body=b"late", delay=3))}) as server, \
            fetcher(timeout=0.5, retries=0) as f:
        started = time.monotonic()
        with pytest.raises(FetchError, match=rf"^{server.url}/slow: timed out after 0.5s$"):
            f.get(server.url + "/slow")
        assert time.monotonic() - started < 2.5


def test_huge_body_is_cut_off_and_reported() -> None:
    def endless() -> Iterator[bytes]:
        chunk = b"x" * 65536
        for _ in range(8000):  # 500 MB, were it all read
            yield chunk

    with RouteServer({"/huge": lambda _h: Reply(body=endless())}) as server, \
            fetcher(max_bytes=1_000_000) as f:
        started = time.monotonic()
        with pytest.raises(FetchError, match="over the 1000000-byte limit, cut off"):
            f.get(server.url + "/huge")
        assert time.monotonic() - started < 5


def test_declared_huge_body_is_not_read_at_all() -> None:
    with RouteServer({"/big": fixed(Reply(body=b"x" * 2_000_001))}) as server, \
            fetcher(max_bytes=1_000_000) as f:
        with pytest.raises(FetchError, match="2000001 bytes is over the 1000000-byte limit"):
            f.get(server.url + "/big")


def test_429_with_retry_after_is_retried_after_the_wait() -> None:
    route = sequence(Reply(429, b"slow down", {"Retry-After": "1"}), Reply(body=b"fine"))
    with RouteServer({"/feed": route}) as server, fetcher() as f:
        started = time.monotonic()
        assert f.get(server.url + "/feed").body == b"fine"
        assert time.monotonic() - started >= 0.9
        assert server.hits["/feed"] == 2


def test_a_retry_after_beyond_the_limit_fails_at_once() -> None:
    route = fixed(Reply(429, b"go away", {"Retry-After": "3600"}))
    with RouteServer({"/feed": route}) as server, fetcher(max_retry_after=5) as f:
        started = time.monotonic()
        with pytest.raises(FetchError, match="asked to wait 3600s"):
            f.get(server.url + "/feed")
        assert time.monotonic() - started < 2


def test_5xx_is_retried_then_reported() -> None:
    with RouteServer({"/x": fixed(Reply(503, b"down"))}) as server, fetcher(retries=2) as f:
        with pytest.raises(FetchError, match=r"/x: HTTP 503"):
            f.get(server.url + "/x")
        assert server.hits["/x"] == 3


def test_other_4xx_is_not_retried() -> None:
    with RouteServer({"/gone": fixed(Reply(404, b"no"))}) as server, fetcher(retries=3) as f:
        with pytest.raises(FetchError, match=r"/gone: HTTP 404 Not Found"):
            f.get(server.url + "/gone")
        assert server.hits["/gone"] == 1


def test_redirect_loop_is_given_up() -> None:
    routes = {"/a": fixed(Reply(302, b"", {"Location": "/b"})),
              "/b": fixed(Reply(302, b"", {"Location": "/a"}))}
    with RouteServer(routes) as server, fetcher(max_redirects=5) as f:
        with pytest.raises(FetchError, match=r"/a: more than 5 redirects"):
            f.get(server.url + "/a")


def test_redirects_end_at_the_final_url() -> None:
    routes = {"/old": fixed(Reply(301, b"", {"Location": "/new"})),
              "/new": fixed(Reply(body=b"here"))}
    with RouteServer(routes) as server, fetcher() as f:
        page = f.get(server.url + "/old")
        assert page.url == server.url + "/new" and page.body == b"here"


def test_conditional_get_sends_validators_and_returns_not_modified() -> None:
    def route(headers: dict[str, str]) -> Reply:
        if headers.get("if-none-match") == '"v1"':
            return Reply(304, b"")
        return Reply(body=b"<rss/>", headers={"ETag": '"v1"',
                                              "Last-Modified": "Wed, 25 Nov 2026 13:00:00 GMT"})

    with RouteServer({"/feed": route}) as server, fetcher() as f:
        first = f.get(server.url + "/feed")
        assert (first.etag, first.last_modified) == ('"v1"', "Wed, 25 Nov 2026 13:00:00 GMT")
        second = f.get(server.url + "/feed", etag=first.etag,
                       last_modified=first.last_modified)
        assert second.not_modified and second.body == b""
        assert server.seen_headers[1]["if-modified-since"] == first.last_modified


def test_only_http_and_https_are_fetched() -> None:
    with fetcher() as f, pytest.raises(FetchError, match="only http and https"):
        f.get("file:///etc/passwd")


def test_robots_txt_is_obeyed() -> None:
    routes = {"/robots.txt": fixed(Reply(body=b"User-agent: *\nDisallow: /private/\n")),
              "/private/a": fixed(Reply(body=b"secret"))}
    with RouteServer(routes) as server, fetcher() as f:
        assert not f.allowed(server.url + "/private/a")
        assert f.allowed(server.url + "/public/b")
        assert server.hits["/robots.txt"] == 1  # read once per host


def test_missing_robots_txt_allows_everything() -> None:
    with RouteServer({}) as server, fetcher() as f:
        assert f.allowed(server.url + "/anything")


def test_one_connection_is_reused_for_a_host() -> None:
    with RouteServer({"/p": fixed(Reply(body=b"ok"))}) as server, fetcher() as f:
        for _ in range(5):
            f.get(server.url + "/p")
        assert len(f._sessions) == 1
