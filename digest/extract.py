"""An article page's HTML → Article: title, author, date, lead image, standfirst, body
paragraphs, and the page's own source line and disclaimer line. The body comes from
trafilatura (falling back to our own reading of the page, then to the feed's content);
boilerplate — Also Read, Related lists, comments, share bars, newsletter boxes, photo
credits — is left out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import lxml.html
import trafilatura
from lxml.etree import ParserError

from digest.errors import ExtractError
from digest.models import Article, FeedEntry
from digest.urls import canonical_url

BODY_SELECTORS = (
    "article .entry-content", ".entry-content", ".post-content", ".article-body",
    "[itemprop=articleBody]", "article", "main", "body",
)
BOILERPLATE_CLASS = re.compile(
    r"share|sharing|social|related|comment|respond|newsletter|subscribe|signup|cookie|consent|"
    r"also-read|sidebar|widget|advert|promo|author-box|breadcrumb|post-nav|navigation|popup",
    re.IGNORECASE,
)
BOILERPLATE_TAGS = ("script", "style", "noscript", "nav", "aside", "form", "footer", "header",
                    "iframe", "button", "svg", "figure", "figcaption", "template")
BOILERPLATE_TEXT = re.compile(
    r"^(also read|read also|read more|more from|see also|related( posts| articles| stories"
    r"| coverage| content)?\b|you (may|might) also like|recommended|leave a (reply|comment)|"
    r"\d* ?comments?$|you must (be )?log(ged)? in|your email address will not be published|"
    r"share (this|on)|click (here )?to share|subscribe (to|now|for)|sign up (for|to|now)|"
    r"(click|tap) here to|we use cookies|this (site|website) uses cookies|follow (us|him|her) on|"
    r"advertisement$|get the (quiz|newsletter|app)|tell us what you think|"
    r"(email|contact) \w+( \w+)? at )",
    re.IGNORECASE,
)
FOLLOWS_BOILERPLATE = re.compile(r"^(related|read more|also read|you (may|might) also like|"
                                 r"more from|see also|recommended)", re.IGNORECASE)
PHOTO_CREDIT = re.compile(
    r"^\(?(photo|image|picture|illustration|video|graphic)s?( credits?| courtesy)?\s*(:|by\b|-|–)"
    r"|\b(getty images|shutterstock|ap photo|afp via getty|reuters/)\b",
    re.IGNORECASE,
)
SOURCE_LINE = re.compile(r"^\(?\s*(sources?|courtesy|credits?)\s*(:|-|–|—)", re.IGNORECASE)
SOURCE_WORD = re.compile(r"^\(?\s*sources?\b", re.IGNORECASE)
DISCLAIMER_LINE = re.compile(r"^\(?\s*disclaimer\s*(:|-|–|—)", re.IGNORECASE)
SOURCE_CLASS = re.compile(r"(^|[\s_-])(source|credit|courtesy)s?($|[\s_-])", re.IGNORECASE)
DISCLAIMER_CLASS = re.compile(r"(^|[\s_-])disclaimer($|[\s_-])", re.IGNORECASE)
BLOCK_TAGS = ("p", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "div")
ATTRIBUTION_MAX_WORDS = 60
NOT_ARTICLE_TAGS = ("figure", "figcaption", "nav", "footer", "aside", "form", "header")


@dataclass(frozen=True)
class Block:
    """One block of article text: a heading, a paragraph, a list item or a quote."""

    kind: str
    text: str


def normalise_space(text: str) -> str:
    """Collapse runs of whitespace (including non-breaking spaces) into one space."""
    return re.sub(r"\s+", " ", text.replace("\xa0", " ")).strip()


def extract_article(html: str | bytes, entry: FeedEntry, *, page_url: str = "") -> Article:
    """Reduce an article page to an Article; raise ExtractError when it holds no article."""
    page_url = page_url or entry.url
    doc = _parse(html, page_url)
    source_line, disclaimer_line = find_attribution(doc)
    if entry.content_html and not (source_line and disclaimer_line):
        feed_source, feed_disclaimer = find_attribution(_parse(entry.content_html, entry.url))
        source_line = source_line or feed_source
        disclaimer_line = disclaimer_line or feed_disclaimer
    blocks = body_blocks(html, page_url) or (
        _own_blocks(_parse(entry.content_html, entry.url)) if entry.content_html else [])
    attribution = {source_line, disclaimer_line} - {""}
    paragraphs = [b.text for b in blocks
                  if b.kind in ("paragraph", "quote") and not _is_attribution_text(b.text)
                  and b.text not in attribution]
    if not paragraphs and not entry.summary:
        raise ExtractError(f"{entry.url}: no article text found on the page")
    meta = _trafilatura_metadata(html, page_url)
    image_url, image_alt = _lead_image(doc, page_url, meta)
    return Article(
        url=canonical_url(page_url, _canonical_link(doc)),
        title=_meta(doc, "og:title") or _first_text(doc, "h1") or meta.get("title") or entry.title,
        source_name=entry.source_name,
        published=_published(doc) or _date_only(meta.get("date")) or entry.published,
        paragraphs=tuple(paragraphs),
        standfirst=(_first_text(doc, ".standfirst, .entry-excerpt, .article-dek, .deck")
                    or _meta(doc, "description") or meta.get("description") or ""),
        author=_meta(doc, "author") or meta.get("author") or "",
        source_line=source_line,
        disclaimer_line=disclaimer_line,
        feed_summary=_plain(entry.summary),
        image_url=image_url,
        image_alt=image_alt,
        guid=entry.guid,
    )


def extract_body_text(html: str, url: str) -> str:
    """The article body as text, one block a line: what the extraction benchmark scores."""
    return "\n".join(b.text for b in body_blocks(html, url))


def body_blocks(html: str | bytes, url: str) -> list[Block]:
    """The article's text blocks, boilerplate removed: trafilatura first, our reading second."""
    blocks = _trafilatura_blocks(html, url)
    words = sum(len(b.text.split()) for b in blocks if b.kind == "paragraph")
    if words >= 40 and len(blocks) >= 3:
        return blocks
    try:
        own = _own_blocks(_parse(html, url))
    except ExtractError:
        return blocks
    return own if len(own) > len(blocks) else blocks


# --- trafilatura ---------------------------------------------------------------------


def _trafilatura_blocks(html: str | bytes, url: str) -> list[Block]:
    document = trafilatura.bare_extraction(html, url=url or None, include_comments=False,
                                           include_tables=True, include_images=False,
                                           with_metadata=False)
    body = getattr(document, "body", None)
    if body is None:
        return []
    return list(_clean(_walk_trafilatura(body)))


def _walk_trafilatura(body: Any) -> Iterator[Block]:
    kinds = {"head": "heading", "p": "paragraph", "quote": "quote", "code": "code"}
    for el in body:
        if el.tag == "list":
            for item in el.iter("item"):
                yield Block("item", normalise_space("".join(item.itertext())))
        elif el.tag == "table":
            for row in el.iter("row"):
                cells = [normalise_space("".join(c.itertext())) for c in row.iter("cell")]
                yield Block("table", " ".join(c for c in cells if c))
        elif el.tag in kinds:
            yield Block(kinds[el.tag], normalise_space("".join(el.itertext())))


def _trafilatura_metadata(html: str | bytes, url: str) -> dict[str, str]:
    try:
        meta = trafilatura.extract_metadata(html, default_url=url or None)
    except (ValueError, TypeError):
        return {}
    if meta is None:
        return {}
    return {k: v for k, v in meta.as_dict().items() if isinstance(v, str) and v}


# --- our own reading of the page (fallback) -------------------------------------------


def _own_blocks(doc: lxml.html.HtmlElement) -> list[Block]:
    container = _body_container(doc)
    _drop_boilerplate(container)
    blocks = []
    for el in container.iter(*BLOCK_TAGS):
        if el.tag == "div" and any(child.tag in BLOCK_TAGS for child in el):
            continue  # a wrapper: its own blocks are visited on their own
        parent = el.getparent()
        if el.tag != "li" and parent is not None and parent.tag in ("li", "blockquote", "p"):
            continue
        kind = ("heading" if el.tag.startswith("h") else "item" if el.tag == "li"
                else "quote" if el.tag == "blockquote" else "paragraph")
        blocks.append(Block(kind, normalise_space(el.text_content())))
    return list(_clean(blocks))


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
        if el.getparent() is not None:
            el.drop_tree()


def _clean(blocks: Iterable[Block]) -> Iterator[Block]:
    """Drop empty, boilerplate and photo-credit blocks, and the list after a 'Related' line."""
    skipping_list = False
    for block in blocks:
        text = block.text
        if not text:
            continue
        if block.kind == "item" and skipping_list:
            continue
        skipping_list = False
        if BOILERPLATE_TEXT.match(text) or (len(text.split()) < 25 and PHOTO_CREDIT.search(text)):
            skipping_list = bool(FOLLOWS_BOILERPLATE.match(text))
            continue
        yield block


# --- source and disclaimer lines -------------------------------------------------------


def find_attribution(doc: lxml.html.HtmlElement) -> tuple[str, str]:
    """The page's source line and disclaimer line, as written (whitespace normalised)."""
    sources: list[str] = []
    disclaimers: list[str] = []
    for el in doc.iter(*BLOCK_TAGS):
        if el.tag == "div" and any(child.tag in BLOCK_TAGS for child in el):
            continue
        if any(a.tag in NOT_ARTICLE_TAGS or _is_comment_area(a) for a in el.iterancestors()):
            continue
        text = normalise_space(el.text_content())
        if not text or len(text.split()) > ATTRIBUTION_MAX_WORDS:
            continue
        parent = el.getparent()
        classes = f"{el.get('class', '')} {parent.get('class', '') if parent is not None else ''}"
        if DISCLAIMER_LINE.match(text) or DISCLAIMER_CLASS.search(classes):
            disclaimers.append(text)
        elif SOURCE_LINE.match(text) or (SOURCE_CLASS.search(classes) and len(text.split()) < 15):
            sources.append(text)
    return _best_source(sources), disclaimers[-1] if disclaimers else ""


def _best_source(lines: list[str]) -> str:
    """'Source(s):' lines win over 'Credit:'/'Courtesy:'; the last one on the page wins a tie."""
    named = [line for line in lines if SOURCE_WORD.match(line)]
    chosen = named or lines
    return chosen[-1] if chosen else ""


def _is_comment_area(el: lxml.html.HtmlElement) -> bool:
    return bool(re.search(r"comment|respond|related|newsletter",
                          f"{el.get('class', '')} {el.get('id', '')}", re.IGNORECASE))


def _is_attribution_text(text: str) -> bool:
    return bool(DISCLAIMER_LINE.match(text) or
                (SOURCE_LINE.match(text) and len(text.split()) < 15))


# --- metadata --------------------------------------------------------------------------


def _parse(html: str | bytes, url: str) -> lxml.html.HtmlElement:
    try:
        return lxml.html.document_fromstring(html, base_url=url or None)
    except (ParserError, ValueError) as exc:
        raise ExtractError(f"{url}: page is not readable HTML ({exc})") from None


def _published(doc: lxml.html.HtmlElement) -> datetime | None:
    candidates = [_meta(doc, "article:published_time"), _meta(doc, "datePublished"),
                  _meta(doc, "date")]
    candidates += [t.get("datetime", "") for t in doc.cssselect("time[datetime]")[:1]]
    for script in doc.cssselect('script[type="application/ld+json"]'):
        match = re.search(r'"datePublished"\s*:\s*"([^"]+)"', script.text or "")
        if match:
            candidates.append(match.group(1))
    for value in candidates:
        parsed = _aware(value)
        if parsed is not None:
            return parsed
    return None


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


def _canonical_link(doc: lxml.html.HtmlElement) -> str:
    for link in doc.cssselect("link[rel=canonical]"):
        href = (link.get("href") or "").strip()
        if href:
            return href
    return ""


def _lead_image(doc: lxml.html.HtmlElement, page_url: str,
                meta: dict[str, str]) -> tuple[str, str]:
    src = _meta(doc, "og:image") or _meta(doc, "twitter:image") or meta.get("image", "")
    alt = _meta(doc, "og:image:alt") or _meta(doc, "twitter:image:alt")
    if not src:
        container = _body_container(doc)
        for img in container.iter("img"):
            if img.get("src") and not img.get("src", "").startswith("data:"):
                src, alt = img.get("src", ""), img.get("alt", "")
                break
    if not src:
        return "", ""
    url = urljoin(page_url, src.strip())
    if not url.startswith(("http://", "https://")):
        return "", ""
    if not alt:
        for img in doc.iter("img"):
            if img.get("src") and urljoin(page_url, img.get("src", "")) == url:
                alt = img.get("alt", "")
                break
    return url, normalise_space(alt)


def _meta(doc: lxml.html.HtmlElement, name: str) -> str:
    for el in doc.cssselect(f'meta[name="{name}"], meta[property="{name}"], '
                            f'meta[itemprop="{name}"]'):
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
