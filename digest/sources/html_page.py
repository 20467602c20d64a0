"""An HTML category page as a source: the article links on the page, following "next
page" links up to a limit, and only ever on the source's own host."""

from __future__ import annotations

from urllib.parse import urljoin

import lxml.html
from lxml.etree import ParserError

from digest.config import SourceSettings
from digest.errors import FeedError, FetchError
from digest.extract import normalise_space
from digest.fetch import Fetcher, Page
from digest.models import FeedEntry
from digest.urls import is_web_url, same_host, strip_tracking

ARTICLE_LINKS = ("article h1 a, article h2 a, article h3 a, .entry-title a, .post-title a, "
                 "h2.title a, h3.title a, .article-title a")
NEXT_LINKS = "link[rel=next], a[rel=next], a.next, .nav-previous a, .pagination a.next"
NOT_ARTICLES = ("/category/", "/tag/", "/author/", "/page/", "/feed", "#", "/wp-login")


def entries_from_pages(first: Page, *, fetcher: Fetcher,
                       source: SourceSettings) -> list[FeedEntry]:
    """Article links from the first page and up to max_pages - 1 following pages."""
    entries: dict[str, FeedEntry] = {}
    page: Page | None = first
    seen_pages = {first.url}
    for number in range(source.max_pages):
        assert page is not None
        doc = _parse(page)
        for entry in _links(doc, page.url, source):
            entries.setdefault(entry.url, entry)
        following = _next_page(doc, page.url, source.url)
        if number + 1 >= source.max_pages or not following or following in seen_pages:
            break
        seen_pages.add(following)
        try:
            page = fetcher.get(following)
        except FetchError:
            break  # the pages read so far still count
    if not entries:
        raise FeedError(f"{source.url}: no article links found on the page")
    return list(entries.values())


def _parse(page: Page) -> lxml.html.HtmlElement:
    try:
        return lxml.html.document_fromstring(page.body, base_url=page.url)
    except (ParserError, ValueError) as exc:
        raise FeedError(f"{page.url}: not readable HTML ({exc})") from None


def _links(doc: lxml.html.HtmlElement, page_url: str,
           source: SourceSettings) -> list[FeedEntry]:
    found = []
    for anchor in doc.cssselect(ARTICLE_LINKS):
        href = urljoin(page_url, anchor.get("href", ""))
        if not is_web_url(href) or not same_host(href, source.url):
            continue
        if any(marker in href for marker in NOT_ARTICLES):
            continue
        found.append(FeedEntry(url=strip_tracking(href), title=normalise_space(
            anchor.text_content()), source_name=source.name))
    return found


def _next_page(doc: lxml.html.HtmlElement, page_url: str, source_url: str) -> str:
    for el in doc.cssselect(NEXT_LINKS):
        href = urljoin(page_url, el.get("href", ""))
        if is_web_url(href) and same_host(href, source_url):
            return href
    return ""
