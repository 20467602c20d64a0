"""Every kind of source against the real sample site and hand-made feeds over HTTP."""

from __future__ import annotations

import pytest

from digest.config import SourceSettings
from digest.demo.site import SiteServer
from digest.errors import FeedError
from digest.fetch import Fetcher, FetchPolicy
from digest.sources import read_source
from digest.sources.feed import entries_from_feed, in_category
from tests.http_server import Reply, RouteServer, fixed


@pytest.fixture
def fetcher() -> Fetcher:
    return Fetcher(FetchPolicy(user_agent="DigestTest/1.0", timeout=5, backoff=0.05,
                               allow_private=True))


def read(url: str, fetcher: Fetcher, **options: object) -> list[str]:
    source = SourceSettings(name="S", url=url, **options)  # type: ignore[arg-type]
    result = read_source(source, fetcher=fetcher, category="Spacecraft")
    return sorted(e.url for e in result.entries
                  if in_category(e, "Spacecraft", result.source_is_category))


def spacecraft_urls(site: SiteServer) -> list[str]:
    return sorted(site.url + a.path for a in site.site.by_category("spacecraft"))


@pytest.mark.parametrize("path", ["/category/spacecraft/feed/", "/feed/",
                                  "/wp-json/wp/v2/posts", "/category/spacecraft/"])
def test_auto_kind_reads_every_kind_the_site_serves(site: SiteServer, fetcher: Fetcher,
                                                    path: str) -> None:
    assert read(site.url + path, fetcher) == spacecraft_urls(site)


def test_html_category_page_follows_next_links_up_to_the_limit(site: SiteServer,
                                                               fetcher: Fetcher) -> None:
    assert len(read(site.url + "/category/spacecraft/", fetcher, max_pages=2)) == 10
    assert len(read(site.url + "/category/spacecraft/", fetcher, max_pages=1)) == 5
    assert site.site.requests.count("/category/spacecraft/page/3/") == 0


def test_wordpress_category_is_found_by_name_or_slug_in_any_case(site: SiteServer,
                                                                 fetcher: Fetcher) -> None:
    for category in ("SpaceCraft", "spacecraft", "Spacécraft"):
        urls = read(site.url + "/wp-json/wp/v2/posts", fetcher, kind="wordpress",
                    category=category)
        assert urls == spacecraft_urls(site)
    earth = read(site.url + "/", fetcher, kind="wordpress", category="earth-science")
    assert len(earth) == 2


def test_wordpress_unknown_category_is_reported(site: SiteServer, fetcher: Fetcher) -> None:
    with pytest.raises(FeedError, match="no category named 'Rockets'"):
        read(site.url + "/wp-json/wp/v2/posts", fetcher, kind="wordpress", category="Rockets")


RSS1 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://n.example/"><title>N</title><link>https://n.example/</link></channel>
<item rdf:about="https://n.example/a"><title>A</title><link>https://n.example/a</link>
<dc:subject>Spacecraft</dc:subject><dc:date>2026-11-24T09:30:00+01:00</dc:date></item>
<item rdf:about="https://n.example/b"><title>B</title><link>https://n.example/b</link>
<dc:subject>Astronomy</dc:subject></item>
</rdf:RDF>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>N</title><link href="https://n.example/"/>
<entry><title>A</title><link href="https://n.example/a"/><id>tag:n,1</id>
<category term="SPACECRAFT"/><updated>2026-11-24T09:30:00Z</updated>
<content type="html">&lt;p&gt;Body&lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</content></entry>
<entry><title>B</title><link href="https://elsewhere.example/b"/><id>tag:n,2</id>
<category term="Spacecraft"/></entry>
</feed>"""


def test_rss1_and_atom_are_read_with_their_categories() -> None:
    for body in (RSS1, ATOM):
        entries, _ = entries_from_feed(body, url="https://n.example/feed", source_name="N",
                                       category="Spacecraft")
        kept = [e for e in entries if in_category(e, "Spacecraft", False)]
        assert [e.url for e in kept] == ["https://n.example/a"]
        assert kept[0].published is not None and kept[0].published.tzinfo is not None


def test_feed_html_is_sanitised_and_off_host_links_are_not_followed() -> None:
    entries, _ = entries_from_feed(ATOM, url="https://n.example/feed", source_name="N",
                                   category="Spacecraft")
    assert [e.url for e in entries] == ["https://n.example/a"]
    assert "<script" not in entries[0].content_html and "Body" in entries[0].content_html


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>&lol3;</title></channel></rss>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>&xxe;</title></channel></rss>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE])
def test_entity_attacks_are_refused(body: bytes) -> None:
    with pytest.raises(FeedError, match=r"https://n.example/feed: feed refused"):
        entries_from_feed(body, url="https://n.example/feed", source_name="N",
                          category="Spacecraft")


@pytest.mark.parametrize(("body", "content_type"), [
    (b"<?xml version='1.0'?><rss><channel><item><title>x</ti", "application/rss+xml"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    (b"{not json", "application/json"),
])
def test_malformed_answers_are_one_line_errors(fetcher: Fetcher, body: bytes,
                                               content_type: str) -> None:
    with RouteServer({"/feed": fixed(Reply(body=body, headers={"Content-Type":
                                                                content_type}))}) as server:
        with pytest.raises(FeedError) as caught:
            read(server.url + "/feed", fetcher)
        assert str(caught.value).startswith(server.url + "/feed")
        assert "\n" not in str(caught.value)


def test_html_instead_of_a_feed_is_refused_when_a_feed_was_asked_for(
        site: SiteServer, fetcher: Fetcher) -> None:
    with pytest.raises(FeedError, match="not a readable RSS or Atom feed"):
        read(site.url + "/category/spacecraft/", fetcher, kind="feed")


def test_html_page_ignores_links_to_other_hosts(fetcher: Fetcher) -> None:
    page = (b"<html><body><article><h2 class='entry-title'><a href='/2026/a/'>A</a></h2>"
            b"</article><article><h2 class='entry-title'><a href='https://evil.example/b/'>B"
            b"</a></h2></article><a class='next' href='https://evil.example/page/2/'>next</a>"
            b"</body></html>")
    with RouteServer({"/cat/": fixed(Reply(body=page, headers={"Content-Type":
                                                                "text/html"}))}) as server:
        source = SourceSettings(name="S", url=server.url + "/cat/")
        result = read_source(source, fetcher=fetcher, category="Spacecraft")
        assert [e.url for e in result.entries] == [server.url + "/2026/a/"]
