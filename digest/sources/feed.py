"""RSS 2.0, RSS 1.0 and Atom category feeds → FeedEntry list, parsed with feedparser
after defusedxml has refused entity tricks; entry HTML sanitised with nh3."""

from __future__ import annotations

import calendar
import html
import logging
import unicodedata
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree
import feedparser
import nh3
from defusedxml import DefusedXmlException

from digest.errors import FeedError
from digest.models import FeedEntry
from digest.netguard import origin_of, origins_from
from digest.urls import is_web_url, same_host

log = logging.getLogger(__name__)


def normalise_label(label: str) -> str:
    """Casefold and strip accents, so 'SpaceCraft' and 'Spacécraft' compare equal."""
    decomposed = unicodedata.normalize("NFKD", label.strip())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def in_category(entry: FeedEntry, category: str, source_is_category: bool) -> bool:
    """True when the entry belongs to the category, by its own labels or by its source's."""
    wanted = normalise_label(category)
    slug = wanted.replace(" ", "-")
    if entry.categories:
        return any(normalise_label(c) in (wanted, slug) for c in entry.categories)
    return source_is_category


def refuse_entity_tricks(body: bytes, url: str) -> None:
    """Raise FeedError for DTD entity declarations or external references (billion laughs,
    XXE). Merely malformed XML is left to feedparser, which copes with much of it."""
    try:
        defusedxml.ElementTree.fromstring(body, forbid_dtd=False, forbid_entities=True,
                                          forbid_external=True)
    except DefusedXmlException as exc:
        raise FeedError(f"{url}: feed refused: {type(exc).__name__} (XML entity attack?)") \
            from None
    except (ParseError, ValueError):
        pass


def entries_from_feed(body: bytes, *, url: str, source_name: str, category: str,
                      allowed_hosts: tuple[str, ...] = ()) -> tuple[list[FeedEntry], bool]:
    """Parse a feed document; return its entries and whether the feed is the category's own."""
    refuse_entity_tricks(body, url)
    # Without a Content-Type feedparser flags every feed as malformed; the caller has
    # already decided this is a feed, so tell it so.
    headers = {"content-location": url, "content-type": "application/xml"}
    parsed = feedparser.parse(body, response_headers=headers,
                              sanitize_html=False, resolve_relative_uris=True)
    feed_title = normalise_label(parsed.feed.get("title", ""))
    wanted = normalise_label(category)
    slug = wanted.replace(" ", "-")
    feed_is_category = wanted in feed_title or f"/{slug}/" in normalise_label(url) \
        or f"category={slug}" in normalise_label(url)
    # Only links on the feed's own host: the feed's <channel><link> is what the feed says
    # of itself, and never widens what may be fetched.
    also = origins_from(allowed_hosts)
    entries = [_entry(item, source_name) for item in parsed.entries
               if is_web_url(item.get("link", "").strip())
               and (same_host(item.link, url) or origin_of(item.link.strip()) in also)]
    if not entries and (parsed.bozo or not parsed.get("version")):
        raise FeedError(f"{url}: not a readable RSS or Atom feed ({_bozo_reason(parsed)})")
    if parsed.bozo:
        log.warning("%s: malformed feed, read what could be read (%s)", url,
                    _bozo_reason(parsed))
    return entries, feed_is_category


def _entry(item: Any, source_name: str) -> FeedEntry:
    content = ""
    if item.get("content"):
        content = item.content[0].get("value", "")
    return FeedEntry(
        url=item.link.strip(),
        title=plain_text(item.get("title", "")),
        source_name=source_name,
        published=_published(item),
        categories=tuple(t.get("term", "") for t in item.get("tags", []) if t.get("term")),
        summary=nh3.clean(item.get("summary", "")),
        content_html=nh3.clean(content),
        guid=item.get("id", ""),
    )


def plain_text(markup: str) -> str:
    """Text of a title or label that may carry HTML tags or entities."""
    if "<" not in markup and "&" not in markup:
        return " ".join(markup.split())
    return " ".join(html.unescape(nh3.clean(markup, tags=set())).split())


def _published(item: Any) -> datetime | None:
    # Plain dict lookups: FeedParserDict's own mapping between the two keys warns.
    parsed = dict.get(item, "published_parsed") or dict.get(item, "updated_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)


def _bozo_reason(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    if exc is None:
        return "no feed elements found"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
