"""The article's own source line ("Source: (Reuters)", "Sources: NASA, ESA") and disclaimer
line ("(Disclaimer: …)"), found in whatever markup carries them and taken from nothing else.

The page is read as the lines a reader sees: every block element, <br> and <hr> ends one,
so two lines in one paragraph stay two lines. Only lines of the article itself count — the
element that holds its body paragraphs and what follows it — and never lines of chrome
(navigation, sidebars, related lists, comments, captions, headings), links to other
stories, affiliate or legal notices, or timestamps."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import lxml.html

from digest.extract.body import body_container
from digest.extract.text import UNREAD_TAGS, normalise_space, text_of

LABEL = re.compile(r"\(?\s*(?P<label>sources?|courtesy|credits?|disclaimer)"
                   r"(\s*:|\s+[-–—]|\s*[–—]\s)\s*", re.IGNORECASE)
MID_LABEL = re.compile(r"\(?\s*(?P<label>sources?|disclaimer)\s*:\s*", re.IGNORECASE)
MID_LINE = re.compile(r"(?<=[.!?\"”’)\]])\s+(?=\(?(sources?|disclaimer)\s*:)", re.IGNORECASE)
MAX_WORDS = {"source": 30, "disclaimer": 100}
MAX_WORDS_MID_LINE = {"source": 12, "disclaimer": 60}
BLOCK_LEVEL = frozenset("""p div li blockquote section article main aside header footer nav
h1 h2 h3 h4 h5 h6 ul ol dl dt dd table tbody thead tfoot tr td th caption figure figcaption pre
address form fieldset hr br center details summary body html hgroup""".split())
CHROME_TAGS = frozenset("""header footer nav aside form figure figcaption caption button select
textarea label menu dialog svg iframe object video audio picture tfoot th""".split())
CHROME_WORDS = re.compile(
    r"sidebar|widget|related|recommend|promo|newsletter|subscri|signup|sign-up|sharing|"
    r"sharedaddy|social|comment|respond|disqus|footer|masthead|navigation|navbar|breadcrumb|"
    r"popular|trending|most-?read|most-?viewed|outbrain|taboola|advert|sponsor|caption|"
    r"gallery|slideshow|read-?more|also-?read|pagination|toolbar|modal|popup|cookie|consent|"
    r"teaser|more-?stories|recirc|carousel", re.IGNORECASE)
CHROME_TOKENS = frozenset("nav menu ad ads tags tag header share next prev more".split())
HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
MEDIA = frozenset("img picture video iframe svg figure object embed audio".split())
CAPTION_WORDS = 40
NOTICE = re.compile(
    r"affiliate|commission|\bearns?\b|\bearned\b|sponsor|paid (for|partnership|promotion|content)"
    r"|compensat|amazon associate|partner links|advertis|informational purposes"
    r"|\b(medical|legal|financial|investment|tax|professional) advice|consult (a|your|with)"
    r"|terms (of|and) (use|service|conditions)|privacy policy|copyright|all rights reserved|©"
    r"|trademark|cookies", re.IGNORECASE)
TIME_TOKEN = re.compile(
    r"\d{1,2}:\d{2}(:\d{2})?|\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}|\b\d{4}-\d{2}-\d{2}t[\d:.+z-]*"
    r"|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
    r"|\b(mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?|\b\d+(st|nd|rd|th)?\b|\bago\b|\bjust now\b"
    r"|\b(updated|published|posted|last|modified|on|at|hours?|hrs?|minutes?|mins?|seconds?"
    r"|days?|weeks?|months?|years?|yesterday|today|[ap]\.?m\.?|[a-z]{1,2}[sd]t|gmt|utc|ist"
    r"|et|pt)\b|[|,·•:–—-]", re.IGNORECASE)
PICTURE_CREDIT = re.compile(
    r"\b(image|photo|picture|illustration|graphic|video|footage)s?( credits?)?\s*(:|by\b)"
    r"|\bcc[ -]by\b|\b(getty images|shutterstock|ap photo|afp via getty|reuters/)", re.IGNORECASE)
HEADLINE_LINK_WORDS = 4
REGION_SHARE = 0.8


@dataclass
class Segment:
    """A run of text of one line, with where it sits."""

    text: str
    link: str = ""  # href of the <a> it is in
    opens_inline: bool = False  # the first text of an inline element (<em>, <small>, …)


@dataclass
class Line:
    """One line as a reader sees it, and the block element that holds it."""

    block: lxml.html.HtmlElement
    segments: list[Segment] = field(default_factory=list)

    @property
    def raw(self) -> str:
        return "".join(s.text for s in self.segments)


@dataclass(frozen=True)
class Attribution:
    """The source line and disclaimer line of an article, verbatim ('' when none)."""

    source_line: str = ""
    disclaimer_line: str = ""


def find_attribution(doc: lxml.html.HtmlElement, paragraphs: Iterable[str] = (),
                     page_url: str = "") -> tuple[str, str]:
    """The page's source line and disclaimer line, as written (whitespace normalised)."""
    found = attribution(doc, paragraphs, page_url)
    return found.source_line, found.disclaimer_line


def attribution(doc: lxml.html.HtmlElement, paragraphs: Iterable[str] = (),
                page_url: str = "") -> Attribution:
    """The article's own attribution lines, looked for where its body paragraphs are."""
    sources: list[str] = []
    disclaimers: list[str] = []
    host = urlsplit(page_url).hostname or ""
    region = article_region(doc, paragraphs)
    for root in _search_roots(region.root):
        for line in _lines(root, region.body):
            kind, text = _candidate(line, root, host, page_url)
            if kind == "source":
                sources.append(text)
            elif kind == "disclaimer":
                disclaimers.append(text)
    return Attribution(_best_source(sources), disclaimers[-1] if disclaimers else "")


def _best_source(lines: list[str]) -> str:
    """'Source(s):' lines win over 'Credit:'/'Courtesy:'; the last one on the page wins a tie."""
    named = [line for line in lines if re.match(r"\(?\s*sources?\b", line, re.IGNORECASE)]
    chosen = named or lines
    return chosen[-1] if chosen else ""


# --- where the article is ----------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """Where the article is: the element holding its paragraphs, and every element that
    holds one of them (never page furniture, whatever its class says: 'read-more' …)."""

    root: lxml.html.HtmlElement
    body: frozenset[lxml.html.HtmlElement] = frozenset()


def _search_roots(region: lxml.html.HtmlElement) -> Iterator[lxml.html.HtmlElement]:
    """The element holding the article's paragraphs, then the siblings that follow it."""
    yield region
    for sibling in region.itersiblings():
        if isinstance(sibling.tag, str) and not is_chrome(sibling):
            yield sibling


def article_region(doc: lxml.html.HtmlElement, paragraphs: Iterable[str]) -> Region:
    """The deepest element that holds most of the body paragraphs (the likeliest body
    container when they are not found on the page)."""
    keys = {_match_key(p) for p in paragraphs if len(p) >= 20}
    matched = [el for el in doc.iter("p", "li", "blockquote", "pre", "td", "dd", "div")
               if not (el.tag == "div" and _has_block_child(el))
               and _match_key(el.text_content()) in keys] if keys else []
    if not matched:
        return Region(body_container(doc))
    depth: dict[lxml.html.HtmlElement, int] = {}
    counts: Counter[lxml.html.HtmlElement] = Counter()
    for el in matched:
        chain = [el, *el.iterancestors()]
        for level, ancestor in enumerate(reversed(chain)):
            counts[ancestor] += 1
            depth[ancestor] = level
    enough = [el for el, n in counts.items() if n >= REGION_SHARE * len(matched)]
    return Region(max(enough, key=lambda el: depth[el]), frozenset(counts))


def _match_key(text: str) -> str:
    return normalise_space(text)[:60].casefold()


def _has_block_child(el: lxml.html.HtmlElement) -> bool:
    return any(isinstance(child.tag, str) and child.tag in BLOCK_LEVEL and child.tag != "br"
               for child in el)


# --- lines ---------------------------------------------------------------------------------


def _lines(root: lxml.html.HtmlElement,
           body: frozenset[lxml.html.HtmlElement]) -> Iterator[Line]:
    """The lines of an element as a reader sees them; chrome is a break and is not read."""
    current = Line(root)
    for item in _walk(root, root, "", body):
        if isinstance(item, Segment):
            current.segments.append(item)
            continue
        if current.raw.strip():
            yield current
        current = Line(item)
    if current.raw.strip():
        yield current


def _walk(el: lxml.html.HtmlElement, block: lxml.html.HtmlElement, link: str,
          body: frozenset[lxml.html.HtmlElement]) -> Iterator[Segment | lxml.html.HtmlElement]:
    """Segments of text, and the block element a new line starts in at each line break."""
    tag = el.tag if isinstance(el.tag, str) else ""
    if not tag or tag in UNREAD_TAGS:
        return
    if el is not block and el not in body and is_chrome(el):
        yield block
        return
    outer = block
    if tag in ("br", "hr"):
        yield block
    elif tag in BLOCK_LEVEL:
        yield el
        block = el
    if tag == "a" and el.get("href"):
        link = el.get("href", "")
    yield Segment(el.text or "", link, opens_inline=tag not in BLOCK_LEVEL)
    for child in el:
        yield from _walk(child, block, link, body)
        yield Segment(child.tail or "", link)
    if block is not outer:
        yield outer


def is_chrome(el: lxml.html.HtmlElement) -> bool:
    """Page furniture no attribution line comes from: navigation, sidebars, captions, …"""
    if el.tag in CHROME_TAGS or el.get("hidden") is not None or \
            el.get("aria-hidden") == "true":
        return True
    names = f"{el.get('class', '')} {el.get('id', '')} {el.get('role', '')}"
    if CHROME_WORDS.search(names):
        return True
    tokens = set(re.split(r"[\s_-]+", names.lower()))
    return bool(tokens & CHROME_TOKENS) or "display:none" in el.get("style", "").replace(" ", "")


# --- which lines are attribution lines --------------------------------------------------------


def _candidate(line: Line, root: lxml.html.HtmlElement, host: str,
               page_url: str) -> tuple[str, str]:
    """('source' | 'disclaimer' | '', the line as written)."""
    raw = line.raw
    if PICTURE_CREDIT.search(raw):
        return "", ""  # a picture's caption or credit, wherever the picture is
    for start, mid_line, inline in _label_starts(line):
        # in running text only "Source(s):" and "Disclaimer:" are labels; an inline element
        # of its own (<em>Courtesy: JAXA</em>) or a line of its own may use any label
        match = (MID_LABEL if mid_line and not inline else LABEL).match(raw, start)
        if not match:
            continue
        kind = "disclaimer" if match.group("label").lower() == "disclaimer" else "source"
        rest = normalise_space(raw[match.end():])
        limits = MAX_WORDS_MID_LINE if mid_line else MAX_WORDS
        if _acceptable(rest, len(rest.split()) <= limits[kind]) and \
                not _is_story_link(line, start, rest, host, page_url) and \
                not _in_furniture(line.block, root):
            return kind, normalise_space(raw[start:])
    return "", ""


def _label_starts(line: Line) -> Iterator[tuple[int, bool, bool]]:
    """Where a label may start (offset, mid-line, at an inline element): the line's start,
    the start of an inline element (<p>… <em>Source: X</em></p>), after a sentence."""
    raw = line.raw
    yield len(raw) - len(raw.lstrip()), False, False
    offset = 0
    for segment in line.segments:
        if segment.opens_inline and raw[:offset].strip():
            yield offset + len(segment.text) - len(segment.text.lstrip()), True, True
        offset += len(segment.text)
    for match in MID_LINE.finditer(raw):
        yield match.end(), True, False


def _acceptable(rest: str, short_enough: bool) -> bool:
    return (short_enough and any(c.isalnum() for c in rest) and not NOTICE.search(rest)
            and not _is_timestamp(rest))


def _is_timestamp(rest: str) -> bool:
    """'2 hours ago', 'Updated 10:32 AM ET, Jan 5, 2019': a time, not a source."""
    left = TIME_TOKEN.sub(" ", rest)
    return sum(c.isalpha() for c in left) < 2


def _is_story_link(line: Line, start: int, rest: str, host: str, page_url: str) -> bool:
    """A link to another story that happens to start with the word (a related headline)."""
    linked, offset = [], 0
    for segment in line.segments:
        if segment.link and offset + len(segment.text) > start:
            linked.append((segment.text, segment.link))
        offset += len(segment.text)
    link_text = normalise_space(" ".join(text for text, _ in linked))
    if not linked or len(link_text.replace(" ", "")) < 0.5 * len(rest.replace(" ", "")):
        return False
    headline_like = (len(link_text.split()) >= HEADLINE_LINK_WORDS
                     or bool(re.search(r"(\.\.\.|…)$|[\"“”‘’']", link_text)))
    return headline_like or any(_same_site_story(href, host, page_url) for _, href in linked)


def _same_site_story(href: str, host: str, page_url: str) -> bool:
    parts = urlsplit(urljoin(page_url, href))
    path = [p for p in parts.path.split("/") if p]
    same_site = not parts.hostname or (bool(host) and parts.hostname.endswith(host.removeprefix(
        "www.")))
    return same_site and (len(path) >= 3 or any(p.count("-") >= 3 for p in path))


def _in_furniture(block: lxml.html.HtmlElement, root: lxml.html.HtmlElement) -> bool:
    """A heading, or a caption: a short block that holds or follows an image."""
    if block.tag in HEADINGS:
        return True
    above_root = {id(a) for a in root.iterancestors()} | {id(root)}
    for el in (block, block.getparent()):
        if el is None or id(el) in above_root:
            break
        if any(m.tag in MEDIA for m in el.iterdescendants()) and \
                len(text_of(el).split()) < CAPTION_WORDS:
            return True
    return _follows_bare_image(block) and len(text_of(block).split()) < CAPTION_WORDS


def _follows_bare_image(block: lxml.html.HtmlElement) -> bool:
    """A short block right after an image that is not in a <figure> is its caption."""
    previous = block.getprevious()
    while previous is not None and not isinstance(previous.tag, str):
        previous = previous.getprevious()
    return previous is not None and previous.tag != "figure" and (previous.tag in MEDIA or (
        not text_of(previous) and any(m.tag in MEDIA for m in previous.iter())))
