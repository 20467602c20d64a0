"""A WordPress REST API source: the category looked up by slug or name, then its posts
read page by page (`/wp-json/wp/v2/posts?categories=ID`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import nh3

from digest.config import SourceSettings
from digest.errors import FeedError
from digest.fetch import Fetcher
from digest.models import FeedEntry
from digest.sources.feed import normalise_label, plain_text
from digest.urls import is_web_url, same_host

PER_PAGE = 20


def api_root(url: str) -> str:
    """'https://site/wp-json/wp/v2/posts?x' or 'https://site/' → 'https://site/wp-json/wp/v2'."""
    parts = urlsplit(url)
    path = parts.path
    prefix = path.split("/wp-json", 1)[0] if "/wp-json" in path else path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"{prefix}/wp-json/wp/v2", "", ""))


def entries_from_api(source: SourceSettings, *, fetcher: Fetcher,
                     category: str) -> list[FeedEntry]:
    """The posts of one category, newest first, up to max_pages pages of the listing."""
    root = api_root(source.url)
    category_id = _category_id(root, category, fetcher)
    entries: list[FeedEntry] = []
    for page_number in range(1, source.max_pages + 1):
        query = urlencode({"categories": category_id, "per_page": PER_PAGE,
                           "page": page_number, "orderby": "date", "order": "desc"})
        page = fetcher.get(f"{root}/posts?{query}")
        posts = _json_list(page.body, page.url)
        entries += [_entry(post, source) for post in posts
                    if is_web_url(str(post.get("link", ""))) and same_host(post["link"], root)]
        total_pages = page.headers.get("X-WP-TotalPages", "")
        if len(posts) < PER_PAGE or (total_pages.isdigit() and page_number >= int(total_pages)):
            break
    return entries


def _category_id(root: str, category: str, fetcher: Fetcher) -> int:
    wanted = normalise_label(category)
    slug = wanted.replace(" ", "-")
    for query in ({"slug": slug}, {"search": category}):
        page = fetcher.get(f"{root}/categories?{urlencode({**query, 'per_page': 100})}")
        for item in _json_list(page.body, page.url):
            names = (normalise_label(str(item.get("slug", ""))),
                     normalise_label(str(item.get("name", ""))))
            if wanted in names or slug in names:
                return int(item["id"])
    raise FeedError(f"{root}/categories: no category named {category!r}")


def _json_list(body: bytes, url: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except ValueError:
        raise FeedError(f"{url}: not valid JSON from the WordPress API") from None
    if not isinstance(data, list) or not all(isinstance(x, dict) for x in data):
        raise FeedError(f"{url}: expected a JSON list from the WordPress API")
    return data


def _rendered(post: dict[str, Any], key: str) -> str:
    value = post.get(key, "")
    return str(value.get("rendered", "")) if isinstance(value, dict) else str(value or "")


def _entry(post: dict[str, Any], source: SourceSettings) -> FeedEntry:
    return FeedEntry(
        url=str(post["link"]),
        title=plain_text(_rendered(post, "title")),
        source_name=source.name,
        published=_date(post),
        summary=nh3.clean(_rendered(post, "excerpt")),
        content_html=nh3.clean(_rendered(post, "content")),
        guid=_rendered(post, "guid"),
    )


def _date(post: dict[str, Any]) -> datetime | None:
    value = str(post.get("date_gmt") or "")
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None
    except ValueError:
        return None
