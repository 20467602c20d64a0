"""A small WordPress-like news site served on 127.0.0.1: home page, category pages,
category RSS feeds and article pages whose source and disclaimer lines are marked up in
several different ways, with the boilerplate real pages carry around an article."""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import struct
import threading
import tomllib
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from digest.sources.feed import normalise_label


@dataclass(frozen=True)
class SampleArticle:
    """One article of the sample site."""

    slug: str
    title: str
    category: str
    published: datetime
    author: str
    standfirst: str
    body: str
    source: str = ""
    source_style: str = "plain"
    disclaimer: str = ""
    disclaimer_style: str = "plain"
    tags: tuple[str, ...] = field(default_factory=tuple)
    image_alt: str = ""  # set: the article has a lead picture

    @property
    def path(self) -> str:
        return f"/{self.published:%Y/%m/%d}/{self.slug}/"

    @property
    def image_path(self) -> str:
        return f"/wp-content/uploads/{self.published:%Y/%m}/{self.slug}.png" \
            if self.image_alt else ""

    @property
    def category_slug(self) -> str:
        return slugify(self.category)


def slugify(text: str) -> str:
    """'Earth Science' → 'earth-science'."""
    return re.sub(r"[^a-z0-9]+", "-", normalise_label(text)).strip("-")


def load_sample_articles() -> list[SampleArticle]:
    """The articles bundled with the package."""
    raw = tomllib.loads(resources.files("digest.demo").joinpath("sample_articles.toml")
                        .read_text(encoding="utf-8"))
    return [_article(item) for item in raw["article"]]


def _article(item: dict[str, Any]) -> SampleArticle:
    values = dict(item)
    values["tags"] = tuple(values.get("tags", ()))
    return SampleArticle(**values)


# --- markup --------------------------------------------------------------------------


def _label_split(line: str) -> tuple[str, str]:
    match = re.match(r"^(\(?\s*[A-Za-z]+\s*(?::|-))(.*)$", line, re.DOTALL)
    return (match.group(1), match.group(2)) if match else ("", line)


def source_markup(line: str, style: str) -> str:
    """The source line as this page style writes it."""
    e = html.escape
    label, rest = _label_split(line)
    return {
        "plain": f"<p>{e(line)}</p>",
        "strong": f"<p><strong>{e(label)}</strong>{e(rest)}</p>",
        "class": f'<p class="article-source">{e(line)}</p>',
        "em": f"<p><em>{e(line)}</em></p>",
        "credit-div": f'<div class="credit">{e(line)}</div>',
    }[style]


def disclaimer_markup(line: str, style: str) -> str:
    """The disclaimer line as this page style writes it."""
    e = html.escape
    label, rest = _label_split(line)
    return {
        "plain": f"<p>{e(line)}</p>",
        "em": f"<p><em>{e(line)}</em></p>",
        "class": f'<p class="disclaimer">{e(line)}</p>',
        "strong": f"<p><strong>{e(label)}</strong>{e(rest)}</p>",
    }[style]


def body_markup(body: str) -> str:
    """'## ' lines become headings, blank-line separated blocks paragraphs."""
    parts = []
    for block in re.split(r"\n\s*\n", body.strip()):
        lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        for line in [ln for ln in lines if ln.startswith("## ")]:
            parts.append(f"<h2>{html.escape(line[3:])}</h2>")
        text = " ".join(ln for ln in lines if not ln.startswith("## "))
        if text:
            parts.append(f"<p>{html.escape(text)}</p>")
    return "\n".join(parts)


class SampleSite:
    """The pages of the site, built from a list of articles (tests pass their own)."""

    name = "Orbital Desk"
    per_page = 5

    def __init__(self, articles: list[SampleArticle]) -> None:
        self.articles = sorted(articles, key=lambda a: a.published, reverse=True)
        self.base_url = ""
        self.requests: list[str] = []

    def respond(self, path: str, query: dict[str, str],
                request_headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one GET, as a WordPress site would answer it."""
        self.requests.append(path)
        picture = next((a for a in self.articles if a.image_path and a.image_path == path), None)
        if picture is not None:
            return 200, {"Content-Type": "image/png", "Cache-Control": "max-age=86400"}, \
                picture_png(picture.slug)
        if path.startswith("/wp-json/wp/v2/"):
            return self._api(path.removeprefix("/wp-json/wp/v2/").strip("/"), query)
        status, content_type, body = self.page(path)
        data = body.encode("utf-8")
        headers = {"Content-Type": content_type}
        if status == 200 and "rss" in content_type:
            etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            modified = max((a.published for a in self.articles), default=None)
            headers["ETag"] = etag
            if modified:
                headers["Last-Modified"] = format_datetime(modified, usegmt=True)
            if request_headers.get("if-none-match") == etag:
                return 304, {"ETag": etag}, b""
        return status, headers, data

    def _api(self, route: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        categories = sorted({a.category for a in self.articles})
        ids = {name: number for number, name in enumerate(categories, start=2)}
        if route == "categories":
            wanted = normalise_label(query.get("slug") or query.get("search") or "")
            found = [{"id": ids[c], "name": c, "slug": slugify(c), "count":
                      len(self.by_category(slugify(c)))} for c in categories
                     if not wanted or wanted in (slugify(c), normalise_label(c))]
            return 200, {"Content-Type": "application/json"}, json.dumps(found).encode()
        if route != "posts":
            return 404, {"Content-Type": "application/json"}, b'{"code":"rest_no_route"}'
        chosen = [a for a in self.articles
                  if not query.get("categories") or str(ids[a.category]) == query["categories"]]
        per_page = int(query.get("per_page", 10))
        number = int(query.get("page", 1))
        pages = max(1, -(-len(chosen) // per_page))
        if number > pages:
            return 400, {"Content-Type": "application/json"}, b'{"code":"rest_post_invalid_page_number"}'
        posts = [self._post(a, ids) for a in chosen[(number - 1) * per_page:number * per_page]]
        headers = {"Content-Type": "application/json; charset=UTF-8",
                   "X-WP-Total": str(len(chosen)), "X-WP-TotalPages": str(pages)}
        return 200, headers, json.dumps(posts).encode()

    def _post(self, a: SampleArticle, ids: dict[str, int]) -> dict[str, Any]:
        return {"id": zlib.crc32(a.slug.encode()) % 99999, "link": self.base_url + a.path,
                "date_gmt": a.published.replace(tzinfo=None).isoformat(timespec="seconds"),
                "guid": {"rendered": f"{self.base_url}/?p={a.slug}"},
                "title": {"rendered": html.escape(a.title)},
                "excerpt": {"rendered": f"<p>{html.escape(a.standfirst)}</p>"},
                "content": {"rendered": body_markup(a.body)},
                "categories": [ids[a.category]]}

    def by_category(self, slug: str) -> list[SampleArticle]:
        return [a for a in self.articles if a.category_slug == slug]

    def page(self, path: str) -> tuple[int, str, str]:
        """(status, content type, body) for a request path."""
        if path in ("/", ""):
            return 200, "text/html; charset=utf-8", self._listing(self.articles, "Latest news")
        if path == "/robots.txt":
            return 200, "text/plain", "User-agent: *\nDisallow: /wp-admin/\nDisallow: /private/\n"
        if path == "/feed/":
            return 200, "application/rss+xml; charset=utf-8", self.feed(self.articles, "")
        match = re.fullmatch(r"/category/([a-z0-9-]+)/(feed/|page/(\d+)/)?", path)
        if match and self.by_category(match.group(1)):
            items = self.by_category(match.group(1))
            if match.group(2) == "feed/":
                return 200, "application/rss+xml; charset=utf-8", self.feed(items, items[0].category)
            number = int(match.group(3) or 1)
            pages = max(1, -(-len(items) // self.per_page))
            if number > pages:
                return 404, "text/html; charset=utf-8", self._layout("Not found", "<p>No such page.</p>")
            chunk = items[(number - 1) * self.per_page:number * self.per_page]
            base = f"/category/{match.group(1)}/"
            next_url = f"{base}page/{number + 1}/" if number < pages else ""
            return 200, "text/html; charset=utf-8", self._listing(chunk, items[0].category, next_url)
        for article in self.articles:
            if article.path == path:
                return 200, "text/html; charset=utf-8", self.article_page(article)
        return 404, "text/html; charset=utf-8", self._layout("Not found", "<p>Page not found.</p>")

    def feed(self, articles: list[SampleArticle], category: str) -> str:
        """An RSS 2.0 feed as WordPress writes it, with content:encoded."""
        e = html.escape
        title = f"{self.name} &#187; {e(category)}" if category else self.name
        items = []
        for a in articles:
            url = self.base_url + a.path
            categories = "".join(f"<category><![CDATA[{c}]]></category>"
                                 for c in (a.category, *a.tags))
            items.append(
                f"<item><title>{e(a.title)}</title><link>{e(url)}</link>"
                f"<dc:creator><![CDATA[{a.author}]]></dc:creator>"
                f"<pubDate>{format_datetime(a.published)}</pubDate>{categories}"
                f'<guid isPermaLink="false">{e(self.base_url)}/?p={zlib.crc32(a.slug.encode()) % 99999}</guid>'
                f"<description><![CDATA[{a.standfirst}]]></description>"
                f"<content:encoded><![CDATA[{body_markup(a.body)}]]></content:encoded></item>")
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
                'xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>'
                f"<title>{title}</title><link>{e(self.base_url)}/</link>"
                "<description>Space news, daily</description><language>en-GB</language>"
                + "\n".join(items) + "</channel></rss>\n")

    def article_page(self, a: SampleArticle) -> str:
        """A full article page with the usual boilerplate around the article."""
        e = html.escape
        others = [o for o in self.articles if o is not a][:3]
        also_read = (f'<p><strong>Also Read:</strong> <a href="{others[0].path}">'
                     f"{e(others[0].title)}</a></p>") if others else ""
        attribution = ""
        if a.source:
            attribution += source_markup(a.source, a.source_style) + "\n"
        if a.disclaimer:
            attribution += disclaimer_markup(a.disclaimer, a.disclaimer_style) + "\n"
        related = "".join(f'<li><a href="{o.path}">{e(o.title)}</a></li>' for o in others)
        picture = self.base_url + a.image_path if a.image_path else ""
        figure = (f'<figure class="wp-block-image size-large"><img src="{e(picture)}" '
                  f'alt="{e(a.image_alt)}" width="240" height="135"></figure>') if picture else ""
        content = f"""
<article class="post type-post status-publish">
<header class="entry-header">
<span class="cat-links"><a href="/category/{a.category_slug}/" rel="category tag">{e(a.category)}</a></span>
<h1 class="entry-title">{e(a.title)}</h1>
<p class="standfirst">{e(a.standfirst)}</p>
<div class="entry-meta">By <span class="author vcard">{e(a.author)}</span> ·
<time class="entry-date published" datetime="{a.published.isoformat()}">{a.published:%B %-d, %Y}</time></div>
</header>
<div class="entry-content">
{figure}
<div class="sharedaddy sd-sharing-enabled"><h3 class="sd-title">Share this:</h3>
<ul><li><a href="#" class="share-twitter">Twitter</a></li><li><a href="#" class="share-facebook">Facebook</a></li></ul></div>
{body_markup(a.body)}
{attribution}<p>&nbsp;</p>
{also_read}
<div class="newsletter-box"><p>Sign up for our weekly newsletter and never miss a launch.</p></div>
</div>
<section class="related-posts"><h3>Related</h3><ul>{related}</ul></section>
<div id="comments" class="comments-area">
<div id="respond" class="comment-respond"><h3 id="reply-title" class="comment-reply-title">Leave a Reply</h3>
<form action="/wp-comments-post.php" method="post" id="commentform" class="comment-form">
<p class="comment-notes">Your email address will not be published. Required fields are marked *</p>
<p><textarea id="comment" name="comment"></textarea></p><p><input type="submit" value="Post Comment"></p>
</form></div></div>
</article>"""
        head = (f'<link rel="canonical" href="{e(self.base_url + a.path)}">'
                f'<meta property="og:title" content="{e(a.title)}">'
                f'<meta name="description" content="{e(a.standfirst)}">'
                f'<meta property="article:published_time" content="{a.published.isoformat()}">'
                f'<meta name="author" content="{e(a.author)}">')
        if picture:
            head += (f'<meta property="og:image" content="{e(picture)}">'
                     f'<meta property="og:image:alt" content="{e(a.image_alt)}">')
        return self._layout(a.title, content, head)

    def _listing(self, articles: list[SampleArticle], heading: str, next_url: str = "") -> str:
        e = html.escape
        items = "".join(
            f'<article class="post"><h2 class="entry-title"><a href="{a.path}">{e(a.title)}</a></h2>'
            f'<div class="entry-summary"><p>{e(a.standfirst)}</p></div></article>'
            for a in articles)
        nav = (f'<nav class="pagination"><a class="next page-numbers" href="{next_url}">Older posts</a></nav>'
               if next_url else "")
        head = f'<link rel="next" href="{next_url}">' if next_url else ""
        return self._layout(heading, f"<h1 class='page-title'>{e(heading)}</h1>{items}{nav}", head)

    def _layout(self, title: str, content: str, head: str = "") -> str:
        e = html.escape
        menu = "".join(f'<li><a href="/category/{slugify(c)}/">{e(c)}</a></li>'
                       for c in sorted({a.category for a in self.articles}))
        return f"""<!DOCTYPE html>
<html lang="en-GB"><head><meta charset="utf-8"><title>{e(title)} – {self.name}</title>
<meta name="generator" content="WordPress 6.6">{head}
<link rel="alternate" type="application/rss+xml" title="{self.name} Feed" href="/feed/"></head>
<body class="single">
<div id="cookie-notice" class="cookie-notice">We use cookies to improve your experience. <button>Accept</button></div>
<header class="site-header"><p class="site-title"><a href="/">{self.name}</a></p>
<nav class="main-navigation"><ul>{menu}</ul></nav></header>
<main id="main" class="site-main">{content}</main>
<aside class="widget-area sidebar"><section class="widget"><h2>Popular</h2></section></aside>
<footer class="site-footer"><p>© 2026 {self.name}. All rights reserved.</p></footer>
</body></html>"""


@lru_cache(maxsize=32)
def picture_png(seed: str, width: int = 240, height: int = 135) -> bytes:
    """A lead picture for a sample article: a night sky with a planet and stars, drawn
    from the slug (the same picture every time), as a PNG. Each row is the sky's colour
    with the planet's span and the stars drawn over it, so a picture takes milliseconds
    (the demo site serves it from the same process as the app under test)."""
    digest = hashlib.sha256(seed.encode()).digest()
    hue = (digest[0], digest[1] // 2, 90 + digest[2] // 3)
    cx, cy, radius = width * (0.25 + digest[3] / 512), height * 0.6, height * 0.35
    stars = {(digest[i] * width // 256, digest[i + 1] * height // 256) for i in range(4, 30, 2)}
    rows = []
    for y in range(height):
        shade = y / height
        row = bytearray(bytes((int(8 + 30 * shade), int(12 + 30 * shade),
                               int(40 + 60 * shade))) * width)
        for x, star_y in stars:
            if star_y == y:
                row[3 * x:3 * x + 3] = b"\xf0\xf0\xff"
        if abs(y - cy) <= radius:
            half = math.sqrt(radius ** 2 - (y - cy) ** 2)
            for x in range(max(0, math.ceil(cx - half)), min(width, math.floor(cx + half) + 1)):
                light = max(0.25, 1 - ((x - cx + radius / 2) ** 2 + (y - cy + radius / 2) ** 2)
                            / (2.2 * radius ** 2))
                row[3 * x:3 * x + 3] = bytes((int(hue[0] * light), int(hue[1] * light),
                                              int(hue[2] * light)))
        rows.append(b"\x00" + bytes(row))  # PNG filter type: none

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


class _Handler(BaseHTTPRequestHandler):
    site: SampleSite

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, response_headers, data = self.site.respond(parts.path, query, headers)
        self.send_response(status)
        for name, value in response_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class SiteServer:
    """The sample site on 127.0.0.1 in a background thread; port 0 picks a free port."""

    def __init__(self, site: SampleSite, port: int = 0, host: str = "127.0.0.1") -> None:
        handler = type("Handler", (_Handler,), {"site": site})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.site = site
        site.base_url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.site.base_url

    def feed_url(self, category: str) -> str:
        return f"{self.url}/category/{slugify(category)}/feed/"

    def __enter__(self) -> SiteServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
