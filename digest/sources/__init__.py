"""Sources: a configured [[sources]] block → the entries it lists. A source is a category
feed, a WordPress REST API or an HTML category page; kind "auto" tells them apart by
what the URL returns."""

from __future__ import annotations

import json
from dataclasses import dataclass

from digest.config import SourceSettings
from digest.errors import FeedError
from digest.fetch import Fetcher, Page
from digest.models import FeedEntry
from digest.sources import feed, html_page, wordpress
from digest.sources.feed import in_category, normalise_label

__all__ = ["SourceResult", "Validators", "in_category", "normalise_label", "read_source"]


@dataclass(frozen=True)
class Validators:
    """What a server said last time, for a conditional GET."""

    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class SourceResult:
    """Entries of one source, with whether they are the category's by the source itself."""

    entries: tuple[FeedEntry, ...]
    source_is_category: bool
    kind: str
    not_modified: bool = False
    validators: Validators = Validators()


def read_source(source: SourceSettings, *, fetcher: Fetcher, category: str,
                validators: Validators = Validators()) -> SourceResult:
    """Fetch a source and list its entries; FetchError or FeedError when it cannot be read."""
    wanted = source.category or category
    if source.kind == "wordpress":
        return _wordpress(source, fetcher, wanted)
    page = fetcher.get(source.url, etag=validators.etag, last_modified=validators.last_modified)
    if page.not_modified:
        return SourceResult((), True, "feed", not_modified=True, validators=validators)
    kind = source.kind if source.kind != "auto" else detect_kind(page)
    if kind == "wordpress":
        return _wordpress(source, fetcher, wanted)
    if kind == "html":
        entries = html_page.entries_from_pages(page, fetcher=fetcher, source=source)
        return SourceResult(tuple(entries), True, "html")
    entries, is_category = feed.entries_from_feed(page.body, url=source.url,
                                                  allowed_hosts=source.allowed_hosts,
                                                  source_name=source.name, category=wanted)
    return SourceResult(tuple(entries), is_category, "feed",
                        validators=Validators(page.etag, page.last_modified))


def _wordpress(source: SourceSettings, fetcher: Fetcher, category: str) -> SourceResult:
    entries = wordpress.entries_from_api(source, fetcher=fetcher, category=category)
    return SourceResult(tuple(entries), True, "wordpress")


def detect_kind(page: Page) -> str:
    """'feed', 'wordpress' or 'html', from a response's type and first bytes."""
    content_type = page.content_type.lower()
    start = page.body.lstrip()[:512].lower()
    if "json" in content_type or start.startswith((b"[", b"{")):
        try:
            json.loads(page.body)
        except ValueError:
            raise FeedError(f"{page.url}: answered with malformed JSON") from None
        return "wordpress"
    if any(t in content_type for t in ("rss", "atom", "rdf", "xml")) or \
            start.startswith(b"<?xml") or b"<rss" in start or b"<feed" in start \
            or b"<rdf:rdf" in start:
        return "feed"
    if "html" in content_type or b"<html" in start or b"<!doctype html" in start:
        return "html"
    raise FeedError(f"{page.url}: neither a feed, a WordPress API nor an HTML page "
                    f"(Content-Type {page.content_type or 'missing'})")
