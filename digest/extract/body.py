"""The article's text blocks, boilerplate removed: trafilatura first (handed a tree of our
own, never a string it would parse with its shared module-level parser), our own reading of
the page second. Also Read, Related lists, comments, share bars, newsletter boxes and photo
credits are left out."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from typing import Any

import lxml.html
import trafilatura

from digest.extract.text import (
    BOILERPLATE_TEXT,
    FOLLOWS_BOILERPLATE,
    PHOTO_CREDIT,
    Block,
    normalise_space,
    select,
    text_of,
    xpath_of,
)

BODY_SELECTORS = tuple(xpath_of(css) for css in (
    "article .entry-content", ".entry-content", ".post-content", ".article-body",
    "[itemprop=articleBody]", "article", "main", "body",
))
BOILERPLATE_CLASS = re.compile(
    r"share|sharing|social|related|comment|respond|newsletter|subscribe|signup|cookie|consent|"
    r"also-read|sidebar|widget|advert|promo|author-box|breadcrumb|post-nav|navigation|popup",
    re.IGNORECASE,
)
BOILERPLATE_TAGS = ("script", "style", "noscript", "nav", "aside", "form", "footer", "header",
                    "iframe", "button", "svg", "figure", "figcaption", "template")
BLOCK_TAGS = ("p", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "div")
ENOUGH_WORDS, ENOUGH_BLOCKS = 40, 3


def body_blocks(doc: lxml.html.HtmlElement, url: str) -> list[Block]:
    """The article's text blocks from a parsed page (left untouched)."""
    blocks = _trafilatura_blocks(doc, url)
    words = sum(len(b.text.split()) for b in blocks if b.kind == "paragraph")
    if words >= ENOUGH_WORDS and len(blocks) >= ENOUGH_BLOCKS:
        return blocks
    own = own_blocks(doc)
    return own if len(own) > len(blocks) else blocks


def own_blocks(doc: lxml.html.HtmlElement) -> list[Block]:
    """Our own reading of a page or fragment: the blocks of its likeliest body container."""
    container = body_container(copy.deepcopy(doc))
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
        blocks.append(Block(kind, text_of(el)))
    return list(clean(blocks))


def body_container(doc: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """The first element that looks like the article's body, or the whole page."""
    for selector in BODY_SELECTORS:
        found = select(doc, selector)
        if found:
            return found[0]
    return doc


def clean(blocks: Iterable[Block]) -> Iterator[Block]:
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


def _trafilatura_blocks(doc: lxml.html.HtmlElement, url: str) -> list[Block]:
    # Handed a tree, trafilatura works on a copy of it and parses nothing itself.
    document = trafilatura.bare_extraction(doc, url=url or None, include_comments=False,
                                           include_tables=True, include_images=False,
                                           with_metadata=False, fast=True)
    body = getattr(document, "body", None)
    if body is None:
        return []
    return list(clean(_walk_trafilatura(body)))


def _walk_trafilatura(body: Any) -> Iterator[Block]:
    kinds = {"head": "heading", "p": "paragraph", "quote": "quote", "code": "code"}
    for el in body:
        if el.tag == "list":
            for item in el.iter("item"):
                yield Block("item", normalise_space(" ".join(_xml_lines(item))))
        elif el.tag == "table":
            for row in el.iter("row"):
                cells = [normalise_space(" ".join(_xml_lines(c))) for c in row.iter("cell")]
                yield Block("table", " ".join(c for c in cells if c))
        elif el.tag in kinds:
            for line in _paragraph_lines(_xml_lines(el)):
                yield Block(kinds[el.tag], line)


def _paragraph_lines(lines: list[str]) -> list[str]:
    """A <br> ends a paragraph of its own ('Headline<br>by X<br>Date<br>Lead …') unless the
    next line goes on in lower case, as a hard-wrapped sentence does."""
    joined: list[str] = []
    for line in (normalise_space(line) for line in lines):
        if not line:
            continue
        if joined and line[0].islower():
            joined[-1] = f"{joined[-1]} {line}"
        else:
            joined.append(line)
    return joined


def _xml_lines(el: Any) -> list[str]:
    """The element's text, split where trafilatura wrote a <br> as <lb/>."""
    lines = [el.text or ""]
    for child in el:
        if child.tag == "lb":
            lines.append("")
        else:
            inner = _xml_lines(child)
            lines[-1] += inner[0]
            lines.extend(inner[1:])
        lines[-1] += child.tail or ""
    return lines


def _drop_boilerplate(container: lxml.html.HtmlElement) -> None:
    doomed = [el for el in container.iter()
              if isinstance(el.tag, str) and (
                  el.tag in BOILERPLATE_TAGS
                  or BOILERPLATE_CLASS.search(f"{el.get('class', '')} {el.get('id', '')}"))]
    for el in doomed:
        if el.getparent() is not None:
            el.drop_tree()
