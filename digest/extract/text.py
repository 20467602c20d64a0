"""What every part of extraction shares: whitespace, the text patterns of boilerplate and
of attribution lines, and a parse that shares no lxml parser or tree with anyone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import lxml.html
from lxml.cssselect import LxmlHTMLTranslator
from lxml.etree import ParserError

from digest.errors import ExtractError

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
DISCLAIMER_LINE = re.compile(r"^\(?\s*disclaimer\s*(:|-|–|—)", re.IGNORECASE)
BYLINE = re.compile(
    # "By Priya Natarajan, Science Correspondent" — names, not "By 2030, …" or "By the time …"
    r"^(by|von|par|por|photo by|written by|reporting by|editing by)\s+"
    r"[A-Z\u00c0-\u024f\u0400-\u04ff][\w.'’-]*(\s+(and\s+|&\s+)?[A-Z\u00c0-\u024f\u0400-\u04ff]"
    r"[\w.'’-]*){0,4}\s*([,|/–—-].{0,60})?$"
    r"|^(posted|published|updated|last updated)\b.{0,60}$|^\w+ \d{1,2}, \d{4}$",
)
WHITESPACE = re.compile(r"\s+")
UNREAD_TAGS = frozenset(("script", "style", "template", "noscript"))


@dataclass(frozen=True)
class Block:
    """One block of article text: a heading, a paragraph, a list item or a quote."""

    kind: str
    text: str


def normalise_space(text: str) -> str:
    """Collapse runs of whitespace (including non-breaking spaces) into one space."""
    return WHITESPACE.sub(" ", text.replace("\xa0", " ")).strip()


def parse_html(text: str, url: str) -> lxml.html.HtmlElement:
    """A new tree from its own new parser: nothing lxml holds is shared with another call,
    so extraction in one thread never touches a tree or parser of another."""
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True,
                                  collect_ids=False, default_doctype=False)
    data = text.encode("utf-8", "surrogatepass") if text.strip() else b"<html></html>"
    try:
        doc = lxml.html.document_fromstring(data, parser=parser, base_url=url or None)
    except (ParserError, ValueError) as exc:
        raise ExtractError(f"{url}: page is not readable HTML ({exc})") from None
    return doc


def text_of(el: lxml.html.HtmlElement) -> str:
    """The element's text, whitespace normalised, a <br> counting as a space."""
    return normalise_space("".join(_pieces(el)))


def _pieces(el: lxml.html.HtmlElement) -> Iterator[str]:
    if el.tag == "br":
        yield " "
    if not isinstance(el.tag, str) or el.tag in UNREAD_TAGS:
        return
    yield el.text or ""
    for child in el:
        yield from _pieces(child)
        yield child.tail or ""


def xpath_of(selector: str) -> str:
    """A CSS selector as an XPath string: translated once, evaluated per tree, so no compiled
    selector object is shared between threads."""
    return str(LxmlHTMLTranslator().css_to_xpath(selector))


def select(el: lxml.html.HtmlElement, xpath: str) -> list[lxml.html.HtmlElement]:
    """The elements an XPath (from xpath_of) finds below el."""
    return [found for found in el.xpath(xpath) if isinstance(found, lxml.html.HtmlElement)]
