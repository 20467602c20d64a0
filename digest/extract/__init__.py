"""An article page → Article: title, author, date, lead image, standfirst, body paragraphs,
and the page's own source line and disclaimer line.

`extract_article` is pure and runs in the calling process: every call decodes the bytes
itself (encoding.py), parses them with a parser of its own and shares no lxml tree or
parser with any other call. The digest runs it in worker processes (isolated.py) so that
a page that crashes or stalls the extraction costs only that page."""

from __future__ import annotations

from lxml.html import HtmlElement

from digest.errors import ExtractError
from digest.extract.attribution import Attribution, attribution, find_attribution
from digest.extract.body import body_blocks, body_container, own_blocks
from digest.extract.encoding import decode_page
from digest.extract.meta import (
    PageMeta,
    author,
    canonical_link,
    headline,
    lead_image,
    published,
    standfirst,
)
from digest.extract.text import (
    BOILERPLATE_TEXT,
    BYLINE,
    DISCLAIMER_LINE,
    PHOTO_CREDIT,
    SOURCE_LINE,
    Block,
    normalise_space,
    parse_html,
)
from digest.models import Article, FeedEntry
from digest.urls import canonical_url

__all__ = ["BOILERPLATE_TEXT", "BYLINE", "DISCLAIMER_LINE", "PHOTO_CREDIT", "SOURCE_LINE", "Block",
           "extract_article", "extract_body_text", "find_attribution", "normalise_space",
           "page_text"]


def page_text(html: str | bytes, content_type: str = "") -> str:
    """The page as text: bytes decoded as a browser would (see encoding.py)."""
    return html if isinstance(html, str) else decode_page(html, content_type).text


def extract_article(html: str | bytes, entry: FeedEntry, *, page_url: str = "",
                    content_type: str = "") -> Article:
    """Reduce an article page to an Article; raise ExtractError when it holds no article."""
    page_url = page_url or entry.url
    doc = parse_html(page_text(html, content_type), page_url)
    blocks = body_blocks(doc, page_url)
    fragment = parse_html(entry.content_html, entry.url) if entry.content_html else None
    if not blocks and fragment is not None:
        blocks = own_blocks(fragment)
    lines = _attribution(doc, fragment, blocks, page_url)
    paragraphs = body_paragraphs(blocks, lines)
    if not paragraphs and not entry.summary:
        raise ExtractError(f"{entry.url}: no article text found on the page")
    page = PageMeta(doc, page_url)
    image_url, image_alt = lead_image(page, body_container(doc))
    return Article(
        url=canonical_url(page_url, canonical_link(page)), title=headline(page, entry.title),
        source_name=entry.source_name, published=published(page) or entry.published,
        paragraphs=tuple(paragraphs), standfirst=standfirst(page), author=author(page),
        source_line=lines.source_line, disclaimer_line=lines.disclaimer_line,
        feed_summary=_plain(entry.summary), image_url=image_url, image_alt=image_alt,
        guid=entry.guid,
    )


def extract_body_text(html: str | bytes, url: str, content_type: str = "") -> str:
    """The article body as text, one block a line: what the extraction benchmark scores."""
    return "\n".join(b.text for b in body_blocks(parse_html(page_text(html, content_type),
                                                            url), url))


def body_paragraphs(blocks: list[Block], lines: Attribution) -> list[str]:
    """The paragraphs and quotes of the body, without the attribution lines in them."""
    paragraphs = []
    for block in blocks:
        if block.kind not in ("paragraph", "quote"):
            continue
        text = block.text
        for line in (lines.source_line, lines.disclaimer_line):
            if line and line in text:
                text = normalise_space(text.replace(line, " "))
        if text and not _is_attribution_text(text):
            paragraphs.append(text)
    return paragraphs


def _attribution(doc: HtmlElement, fragment: HtmlElement | None, blocks: list[Block],
                 page_url: str) -> Attribution:
    texts = [b.text for b in blocks if b.kind in ("paragraph", "quote", "item")]
    found = attribution(doc, texts, page_url)
    if fragment is None or (found.source_line and found.disclaimer_line):
        return found
    feed = attribution(fragment, (), page_url)
    return Attribution(found.source_line or feed.source_line,
                       found.disclaimer_line or feed.disclaimer_line)


def _is_attribution_text(text: str) -> bool:
    return bool(DISCLAIMER_LINE.match(text) or
                (SOURCE_LINE.match(text) and len(text.split()) < 15))


def _plain(html: str) -> str:
    if not html.strip():
        return ""
    return normalise_space(parse_html(f"<div>{html}</div>", "").text_content())
