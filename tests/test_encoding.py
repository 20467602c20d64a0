"""A page's encoding chosen as browsers choose it (WHATWG): byte-order mark, HTTP charset,
<meta>, then detection — each case served by a real local HTTP server with its own
Content-Type, fetched by our Fetcher and extracted from the bytes."""

from __future__ import annotations

import codecs
from collections.abc import Iterator

import pytest

from digest.extract import extract_article
from digest.extract.encoding import decode_page
from digest.fetch import Fetcher, FetchPolicy
from digest.models import FeedEntry
from tests.http_server import Reply, RouteServer, fixed

TEXT = ("It’s “lift-off” for Ariane 6 — the launcher’s first flight from Kourou, "
        "in French « décollage », went exactly as the engineers had planned it.")
RUSSIAN = ("Ракета «Союз» стартовала с космодрома Байконур, и экипаж из трёх человек "
           "направился к Международной космической станции.")


def article_page(text: str, meta: str = "") -> str:
    body = "".join(f"<p>{text} Paragraph {i} goes on about the launch.</p>" for i in range(4))
    return f"<html><head>{meta}<title>Launch</title></head><body><article>{body}</article>" \
           "</body></html>"


CASES = {
    # path: (body bytes, Content-Type, text expected, how the encoding was found)
    "/utf8-http-no-meta": (article_page(TEXT).encode(), "text/html; charset=utf-8", TEXT, "http"),
    "/http-beats-meta": (article_page(TEXT, '<meta charset="iso-8859-1">').encode(),
                         "text/html; charset=UTF-8", TEXT, "http"),
    "/bom-beats-all": (codecs.BOM_UTF8 + article_page(TEXT, '<meta charset="windows-1252">')
                       .encode(), "text/html; charset=iso-8859-1", TEXT, "bom"),
    "/meta-only": (article_page(TEXT, '<meta http-equiv="Content-Type" content="text/html; '
                               'charset=windows-1252">').encode("cp1252"), "text/html", TEXT,
                   "meta"),
    "/latin1-label-is-windows-1252": (article_page(TEXT, '<meta charset="ISO-8859-1">')
                                      .encode("cp1252"), "text/html", TEXT, "meta"),
    "/utf8-nothing-declared": (article_page(TEXT).encode(), "text/html", TEXT, "detected"),
    "/cp1251-nothing-declared": (article_page(RUSSIAN).encode("cp1251"), "text/html",
                                 RUSSIAN, "detected"),
}


@pytest.fixture(scope="module")
def server() -> Iterator[RouteServer]:
    routes = {path: fixed(Reply(200, body, {"Content-Type": content_type}))
              for path, (body, content_type, _, _) in CASES.items()}
    with RouteServer(routes) as running:
        yield running


@pytest.mark.parametrize("path", sorted(CASES))
def test_page_text_is_decoded_as_a_browser_would(server: RouteServer, path: str) -> None:
    _, _, expected, found_by = CASES[path]
    with Fetcher(FetchPolicy(user_agent="test", respect_robots=False,
                             allow_private=True)) as fetcher:
        page = fetcher.get(server.url + path)
    assert decode_page(page.body, page.content_type).found_by == found_by
    entry = FeedEntry(url=server.url + path, title="Launch", source_name="Test")
    article = extract_article(page.body, entry, page_url=page.url,
                              content_type=page.content_type)
    assert article.paragraphs[0].startswith(expected)
    assert "â€" not in " ".join(article.paragraphs)


def test_a_meta_that_names_utf16_means_utf8() -> None:
    decoded = decode_page(article_page(TEXT, '<meta charset="utf-16">').encode())
    assert (decoded.encoding, decoded.found_by) == ("utf-8", "meta")


def test_a_meta_in_a_comment_is_not_read() -> None:
    html = article_page(TEXT, '<!-- <meta charset="koi8-r"> -->').encode()
    assert decode_page(html).found_by == "detected"


def test_a_few_stray_latin1_bytes_do_not_make_a_utf8_page_latin1() -> None:
    html = article_page(TEXT).encode() + b"<!-- caf\xe9 -->"
    decoded = decode_page(html)
    assert decoded.encoding == "utf-8" and TEXT in decoded.text
