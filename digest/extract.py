"""An article page's HTML → Article: title, date, body paragraphs, and the page's own
source line and disclaimer line, with boilerplate (Also Read, comments, share bars) left out."""

from __future__ import annotations

import re
from datetime import datetime

import lxml.html
from lxml.etree import ParserError

from digest.errors import ExtractError
from digest.models import Article, FeedEntry

BODY_SELECTORS = (
    "article .entry-content", ".entry-content", ".post-content", ".article-body",
    "[itemprop=articleBody]", "article", "main", "body",
)
BOILERPLATE_CLASS = re.compile(
    r"share|social|related|comment|newsletter|subscribe|cookie|also-read|sidebar|widget|"
    r"advert|promo|author-box|breadcrumb|tags|post-nav|navigation",
    re.IGNORECASE,
)
BOILERPLATE_TAGS = ("script", "style", "noscript", "nav", "aside", "form", "footer",
                    "iframe", "button", "svg", "figure", "figcaption")
BOILERPLATE_TEXT = re.compile(
    r"^(also read|read also|related( posts| articles| stories)?|leave a (reply|comment)|"
    r"your email address will not be published|share (this|on)|subscribe to|"
    r"sign up for|we use cookies|click to share)\b",
    re.IGNORECASE,
)
SOURCE_LINE = re.compile(r"^\(?\s*(sources?|courtesy|credits?)\s*(:|-|–|—)", re.IGNORECASE)
DISCLAIMER_LINE = re.compile(r"^\(?\s*disclaimer\s*(:|-|–|—)", re.IGNORECASE)
SOURCE_CLASS = re.compile(r"(^|[\s_-])(source|credit|courtesy)s?($|[\s_-])", re.IGNORECASE)
DISCLAIMER_CLASS = re.compile(r"(^|[\s_-])disclaimer($|[\s_-])", re.IGNORECASE)
BLOCK_TAGS = ("p", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "div")


def normalise_space(text: str) -> str:
    """Collapse runs of whitespace (including non-breaking spaces) into one space."""
    return re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()


def extract_article(html: str | bytes, entry: FeedEntry) -> Article:
    """Reduce an article page to an Article; raise ExtractError when no body text is found."""
    try:
        doc = lxml.html.document_fromstring(html)
    except (ParserError, ValueError) as exc:
        raise ExtractError(f"{entry.url}: page is not readable HTML ({exc})") from None
    container = _body_container(doc)
    _drop_boilerplate(container)
    paragraphs, source_line, disclaimer_line = _split_blocks(container)
    if not paragraphs and not entry.summary:
        raise ExtractError(f"{entry.url}: no article text found on the page")
    return Article(
        url=_canonical(doc, entry.url),
        title=_title(doc) or entry.title,
        source_name=entry.source_name,
        published=_published(doc) or entry.published,
        paragraphs=tuple(paragraphs),
        standfirst=_meta(doc, "description") or _first_text(doc, ".standfirst, .entry-excerpt"),
        author=_meta(doc, "author") or _first_text(doc, ".author, [rel=author]"),
        source_line=source_line,
        disclaimer_line=disclaimer_line,
        feed_summary=_plain(entry.summary),
    )


def _body_container(doc: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    for selector in BODY_SELECTORS:
        found = doc.cssselect(selector)
        if found:
            return found[0]
    return doc


def _drop_boilerplate(container: lxml.html.HtmlElement) -> None:
    doomed = [el for el in container.iter()
              if isinstance(el.tag, str) and (
                  el.tag in BOILERPLATE_TAGS
                  or BOILERPLATE_CLASS.search(f"{el.get('class', '')} {el.get('id', '')}"))]
    for el in doomed:
        if el.getparent() is not None and not _is_attribution(el):
            el.drop_tree()


def _is_attribution(el: lxml.html.HtmlElement) -> bool:
    text = normalise_space(el.text_content())
    return bool(SOURCE_LINE.match(text) or DISCLAIMER_LINE.match(text))


def _split_blocks(container: lxml.html.HtmlElement) -> tuple[list[str], str, str]:
    paragraphs: list[str] = []
    source_line = disclaimer_line = ""
    for el in container.iter(*BLOCK_TAGS):
        if el.tag == "div" and any(child.tag in BLOCK_TAGS for child in el):
            continue  # a wrapper: its own blocks are visited on their own
        if el.tag in ("p", "li", "div") and el.getparent() is not None and \
                el.getparent().tag in ("li", "blockquote", "p"):
            continue
        text = normalise_space(el.text_content())
        if not text or BOILERPLATE_TEXT.match(text):
            continue
        classes = el.get("class", "")
        if SOURCE_LINE.match(text) or SOURCE_CLASS.search(classes):
            source_line = source_line or text
        elif DISCLAIMER_LINE.match(text) or DISCLAIMER_CLASS.search(classes):
            disclaimer_line = disclaimer_line or text
        elif el.tag in ("p", "blockquote", "div"):
            paragraphs.append(text)
    return paragraphs, source_line, disclaimer_line


def _title(doc: lxml.html.HtmlElement) -> str:
    return (_meta(doc, "og:title") or _first_text(doc, "h1.entry-title, article h1, h1")
            or _first_text(doc, "title"))


def _published(doc: lxml.html.HtmlElement) -> datetime | None:
    candidates = [_meta(doc, "article:published_time")]
    candidates += [t.get("datetime", "") for t in doc.cssselect("time[datetime]")[:1]]
    for value in candidates:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            continue
        if parsed.tzinfo is not None:
            return parsed
    return None


def _canonical(doc: lxml.html.HtmlElement, fallback: str) -> str:
    for link in doc.cssselect("link[rel=canonical]"):
        href = (link.get("href") or "").strip()
        if href.startswith(("http://", "https://")):
            return href
    return fallback


def _meta(doc: lxml.html.HtmlElement, name: str) -> str:
    for el in doc.cssselect(f'meta[name="{name}"], meta[property="{name}"]'):
        content = normalise_space(el.get("content", ""))
        if content:
            return content
    return ""


def _first_text(doc: lxml.html.HtmlElement, selector: str) -> str:
    for el in doc.cssselect(selector):
        text = normalise_space(el.text_content())
        if text:
            return text
    return ""


def _plain(html: str) -> str:
    if not html.strip():
        return ""
    try:
        return normalise_space(lxml.html.fragment_fromstring(html, create_parent="div")
                               .text_content())
    except (ParserError, ValueError):
        return normalise_space(html)
