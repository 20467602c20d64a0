"""RSS and Atom category feeds → FeedEntry list, parsed with feedparser."""

from __future__ import annotations

import calendar
import unicodedata
from datetime import UTC, datetime
from typing import Any

import feedparser

from digest.errors import FeedError
from digest.models import FeedEntry


def normalise_label(label: str) -> str:
    """Casefold and strip accents, so 'SpaceCraft' and 'Spacécraft' compare equal."""
    decomposed = unicodedata.normalize("NFKD", label.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def in_category(entry: FeedEntry, category: str, feed_is_category: bool) -> bool:
    """True when the entry belongs to the category, by its own labels or by its feed's."""
    wanted = normalise_label(category)
    if entry.categories:
        return any(normalise_label(c) == wanted for c in entry.categories)
    return feed_is_category


def entries_from_feed(body: bytes, *, url: str, source_name: str,
                      category: str) -> tuple[list[FeedEntry], bool]:
    """Parse a feed document; return its entries and whether the feed is the category's own."""
    parsed = feedparser.parse(body, response_headers={"content-location": url})
    if not parsed.entries and (parsed.bozo or not parsed.get("version")):
        raise FeedError(f"{url}: not a readable RSS or Atom feed ({_bozo_reason(parsed)})")
    feed_title = normalise_label(parsed.feed.get("title", ""))
    wanted = normalise_label(category)
    feed_is_category = wanted in feed_title or f"/{wanted}/" in normalise_label(url)
    entries = [_entry(item, source_name) for item in parsed.entries if item.get("link")]
    return entries, feed_is_category


def _entry(item: Any, source_name: str) -> FeedEntry:
    content = ""
    if item.get("content"):
        content = item.content[0].get("value", "")
    return FeedEntry(
        url=item.link.strip(),
        title=item.get("title", "").strip(),
        source_name=source_name,
        published=_published(item),
        categories=tuple(t.get("term", "") for t in item.get("tags", []) if t.get("term")),
        summary=item.get("summary", ""),
        content_html=content,
        guid=item.get("id", ""),
    )


def _published(item: Any) -> datetime | None:
    parsed = item.get("published_parsed") or item.get("updated_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)


def _bozo_reason(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "no feed elements found"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
