"""What a page says about its article besides the text: headline, publication date,
canonical link, lead image (one URL, the best of a srcset), standfirst and author."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import lxml.html
import trafilatura

from digest.extract.text import normalise_space, select, text_of, xpath_of

ELLIPSIS = re.compile(r"(\.\.\.|…|\[\s*(\.\.\.|…)\s*\])$")
SEPARATORS = (" | ", " - ", " – ", " — ", " :: ", " · ", " • ", " » ", ": ")
CHROME_TITLE = re.compile(
    r"thanks? (you )?for visiting|^(main |site |mobile )?menu$|^(skip to|jump to) "
    r"|^(home|homepage|search|navigation|sign in|log ?in|subscribe|register|advertisement"
    r"|breaking news|latest news|top stories|news|page not found|not found|access denied"
    r"|just a moment|welcome( to .*)?|privacy policy|cookie (policy|settings)|error \d+|\d{3})$",
    re.IGNORECASE,
)
ARTICLE_H1 = tuple(xpath_of(css) for css in (
    "article h1", "[itemprop=articleBody] h1", "main h1", "h1[itemprop=headline]",
    "h1.entry-title", "h1.post-title", "h1.article-title", "h1.headline", "[role=main] h1"))
STANDFIRST = xpath_of(".standfirst, .entry-excerpt, .article-dek, .deck")
ARTICLE_TYPES = re.compile(r"article|posting|report|blog", re.IGNORECASE)
SRCSET_DESCRIPTOR = re.compile(r"^(\d+(\.\d+)?)([wxh])$", re.IGNORECASE)
QUOTED_SRCSET = re.compile(r"%20\d+(\.\d+)?[wx](%2C|,)", re.IGNORECASE)
LAZY_SOURCES = ("data-srcset", "srcset", "data-lazy-srcset")
LAZY_SRC = ("data-src", "data-lazy-src", "data-original", "data-url", "src")
MAX_URL = 2048


class PageMeta:
    """Reads one parsed page's metadata; trafilatura's reading only when ours finds nothing."""

    def __init__(self, doc: lxml.html.HtmlElement, page_url: str) -> None:
        self.doc = doc
        self.page_url = page_url

    def meta(self, *names: str) -> str:
        """The first non-empty <meta> content among the names (name, property or itemprop)."""
        for name in names:
            # RDFa allows several space-separated names in one property attribute
            for el in self.doc.xpath(f'//meta[@name="{name}" or @itemprop="{name}" or contains('
                                     f'concat(" ", normalize-space(@property), " "), " {name} ")]'):
                content = normalise_space(el.get("content", ""))
                if content:
                    return content
        return ""

    @cached_property
    def json_ld(self) -> list[dict[str, Any]]:
        """Every JSON-LD object of the page, @graph members and lists flattened."""
        found: list[dict[str, Any]] = []
        for script in self.doc.xpath('//script[@type="application/ld+json"]'):
            try:
                data = json.loads(script.text or "", strict=False)
            except ValueError:
                continue
            found.extend(_objects(data))
        return found

    @cached_property
    def trafilatura(self) -> dict[str, str]:
        """trafilatura's own metadata reading (htmldate for the date), on a copy of the tree."""
        try:
            meta = trafilatura.extract_metadata(copy.deepcopy(self.doc),
                                                default_url=self.page_url or None)
        except (ValueError, TypeError):
            return {}
        return {k: v for k, v in meta.as_dict().items() if isinstance(v, str) and v}

    @cached_property
    def base_url(self) -> str:
        """Where the page's relative links point: its <base href>, else its own URL."""
        for base in self.doc.xpath("//base[@href]"):
            return urljoin(self.page_url, base.get("href", "").strip())
        return self.page_url

    def ld_values(self, key: str, *, articles_only: bool = False) -> Iterator[Any]:
        """Values of one JSON-LD key, article objects first."""
        ranked = sorted(self.json_ld, key=lambda o: not _is_article(o))
        for obj in ranked:
            if articles_only and not _is_article(obj):
                continue
            if obj.get(key):
                yield obj[key]


def _objects(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _objects(item)
    elif isinstance(data, dict):
        yield data
        yield from _objects(data.get("@graph", []))


def _is_article(obj: dict[str, Any]) -> bool:
    kind = obj.get("@type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    return any(isinstance(k, str) and ARTICLE_TYPES.search(k) for k in kinds)


# --- headline --------------------------------------------------------------------------


def headline(page: PageMeta, feed_title: str) -> str:
    """The feed's title; the page's own only where the feed has none or cut it short."""
    feed = normalise_space(feed_title)
    if feed and not ELLIPSIS.search(feed) and not _extended(page, feed):
        return feed
    stem = _key(ELLIPSIS.sub("", feed))
    sites = site_names(page)
    for candidate in page_titles(page):
        title = strip_site_name(candidate, sites)
        if is_chrome_title(title, sites):
            continue
        if not stem or _key(title).startswith(stem):
            return title
    return feed


def _extended(page: PageMeta, feed: str) -> bool:
    """Whether the page's headline goes on where the feed's title stops (cut, no ellipsis)."""
    stem = _key(feed)
    sites = site_names(page)
    for candidate in page_titles(page, cheap=True):
        title = strip_site_name(candidate, sites)
        if _key(title).startswith(stem) and len(_key(title)) > len(stem) + 3:
            rest = normalise_space(title)[len(feed):].lstrip()
            return rest[:1] not in "|-–—:·•»"
    return False


def page_titles(page: PageMeta, *, cheap: bool = False) -> Iterator[str]:
    """Headline candidates of the page, best first (`cheap`: without trafilatura's)."""
    yield page.meta("og:title")
    for value in page.ld_values("headline", articles_only=True):
        yield normalise_space(str(value))
    for selector in ARTICLE_H1:
        for el in select(page.doc, selector)[:1]:
            yield text_of(el)
    yield page.meta("twitter:title", "title", "headline")
    for el in page.doc.xpath("//head/title")[:1]:
        yield text_of(el)
    if not cheap:
        yield page.trafilatura.get("title", "")


def site_names(page: PageMeta) -> set[str]:
    """Keys of the names the site goes by: og:site_name, JSON-LD publisher, host name."""
    names = {page.meta("og:site_name")}
    for publisher in page.ld_values("publisher"):
        if isinstance(publisher, dict):
            names.add(str(publisher.get("name", "")))
    for obj in page.json_ld:
        if obj.get("@type") in ("WebSite", "Organization", "NewsMediaOrganization"):
            names.add(str(obj.get("name", "")))
    host = urlsplit(page.page_url).hostname or ""
    labels = [label for label in host.split(".") if label not in ("www", "m", "amp")]
    names.update(labels[:-1])
    names.add(".".join(labels))
    return {_key(n) for n in names if _key(n)}


def strip_site_name(title: str, sites: set[str]) -> str:
    """'Probe reaches Venus | Orbital Desk' → 'Probe reaches Venus', when that is the site."""
    title = normalise_space(title)
    for _ in range(2):
        for separator in SEPARATORS:
            head, _, tail = title.rpartition(separator)
            if head and _key(tail) in sites:
                title = head.strip()
            first, _, rest = title.partition(separator)
            if rest and _key(first) in sites:
                title = rest.strip()
    return title


def is_chrome_title(title: str, sites: set[str]) -> bool:
    """Text no article is titled: a menu label, the site's name, a greeting, a lone word."""
    words = title.split()
    return (len(words) < 2 or _key(title) in sites or bool(CHROME_TITLE.search(title))
            or (len(words) < 3 and title.isupper()))


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", "", text.casefold())


# --- date, link, standfirst, author -------------------------------------------------


def published(page: PageMeta) -> datetime | None:
    """When the article was published: the page's metadata, then trafilatura's reading."""
    candidates = [page.meta("article:published_time", "datePublished", "date",
                            "og:published_time", "publish-date", "pubdate")]
    candidates += [str(v) for v in page.ld_values("datePublished")]
    candidates += [t.get("datetime", "") for t in page.doc.xpath("//time[@datetime]")[:1]]
    for value in candidates:
        parsed = _aware(value)
        if parsed is not None:
            return parsed
    return _date_only(page.trafilatura.get("date"))


def _aware(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _date_only(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value[:10]).replace(tzinfo=UTC)
    except ValueError:
        return None


def canonical_link(page: PageMeta) -> str:
    """The page's rel=canonical link, as written (resolved later)."""
    for link in page.doc.xpath('//link[@rel="canonical"][@href]'):
        href = (link.get("href") or "").strip()
        if href:
            return urljoin(page.base_url, href)
    return ""


def standfirst(page: PageMeta) -> str:
    """The article's standfirst (dek), else the page's description."""
    for el in select(page.doc, STANDFIRST):
        text = text_of(el)
        if text:
            return text
    return (page.meta("description", "og:description")
            or page.trafilatura.get("description", ""))


def author(page: PageMeta) -> str:
    """The article's author as the page's metadata names them."""
    named = page.meta("author", "article:author")
    if named and not named.startswith(("http://", "https://")):
        return named
    for value in page.ld_values("author", articles_only=True):
        people = value if isinstance(value, list) else [value]
        names = [str(p.get("name", "")) if isinstance(p, dict) else str(p) for p in people]
        joined = ", ".join(normalise_space(n) for n in names if n.strip())
        if joined:
            return joined
    return ""


# --- lead image ------------------------------------------------------------------------


def lead_image(page: PageMeta, container: lxml.html.HtmlElement) -> tuple[str, str]:
    """The lead image as one absolute http(s) URL and its alt text, or ("", "")."""
    declared = [page.meta("og:image", "og:image:url", "og:image:secure_url", "twitter:image",
                          "twitter:image:src")]
    declared += [_ld_image(v) for v in page.ld_values("image", articles_only=True)]
    for value in declared:
        url = image_url(value, page.base_url)
        if url:
            alt = page.meta("og:image:alt", "twitter:image:alt") or _alt_for(page, url)
            return url, normalise_space(alt)
    for img in container.iter("img"):
        url = image_url(_img_source(img), page.base_url)
        if url:
            return url, normalise_space(img.get("alt", ""))
    return "", ""


def image_url(value: str, base: str) -> str:
    """One absolute http(s) URL from a src, a srcset or a srcset pasted into a src; else ''."""
    value = (value or "").strip()
    if QUOTED_SRCSET.search(value):
        value = unquote(value)
    if re.search(r"\s", value):
        value = best_of_srcset(value)
    if not value or value.startswith("data:"):
        return ""
    url = urljoin(base, value)
    if not url.startswith(("http://", "https://")) or re.search(r"\s", url) or len(url) > MAX_URL:
        return ""
    return url


def best_of_srcset(srcset: str) -> str:
    """The widest (or densest) candidate of a srcset; the first when none says."""
    best, best_size = "", -1.0
    for url, descriptor in _srcset_candidates(srcset):
        match = SRCSET_DESCRIPTOR.match(descriptor)
        size = float(match.group(1)) if match else 0.0
        if size > best_size:
            best, best_size = url, size
    return best


def _srcset_candidates(srcset: str) -> Iterator[tuple[str, str]]:
    # WHATWG srcset parsing, simplified: a URL is a run of non-space characters (commas may
    # be part of it, as in CDN transform URLs), and its descriptors run up to the next comma.
    position, text = 0, srcset.strip()
    while position < len(text):
        while position < len(text) and (text[position].isspace() or text[position] == ","):
            position += 1
        start = position
        while position < len(text) and not text[position].isspace():
            position += 1
        url = text[start:position]
        if url.endswith(","):
            yield url.rstrip(","), ""
            continue
        end = text.find(",", position)
        end = len(text) if end < 0 else end
        descriptor = text[position:end].strip().split(" ")[0] if url else ""
        position = end + 1
        if url:
            yield url, descriptor


def _img_source(img: lxml.html.HtmlElement) -> str:
    parent = img.getparent()
    if parent is not None and parent.tag == "picture":
        for source in parent.iter("source"):
            if source.get("srcset"):
                return source.get("srcset", "")
    for name in LAZY_SOURCES + LAZY_SRC:
        value = (img.get(name) or "").strip()
        if value and not value.startswith("data:"):
            return value
    return ""


def _ld_image(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, dict):
        value = value.get("url") or value.get("contentUrl") or ""
    return value if isinstance(value, str) else ""


def _alt_for(page: PageMeta, url: str) -> str:
    for img in page.doc.iter("img"):
        if image_url(_img_source(img), page.base_url) == url or \
                image_url(img.get("src", ""), page.base_url) == url:
            return img.get("alt", "")
    return ""
