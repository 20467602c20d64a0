"""Digest → RenderedDigest: Jinja2 templates rendered and CSS inlined by premailer once
per digest, with placeholders that `personalise` fills in for each subscriber. A size
guard keeps the HTML under the limit at which Gmail clips a message."""

from __future__ import annotations

import html
import logging
import re
import secrets
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from premailer import Premailer

from digest.errors import ConfigError
from digest.models import Digest, DigestItem, RenderedDigest, TrackingMode
from digest.tracking import first_name, greeting

log = logging.getLogger(__name__)

# What stands in the rendered digest where each subscriber's own values go. The marker of
# each digest is random, so a title, a summary or a URL cannot carry one and get a
# reader's address or unsubscribe token filled in (digests made before keep the fixed ones).
LEGACY_PLACEHOLDERS = {
    "name": "%%SUBSCRIBER_NAME%%",
    "email": "%%SUBSCRIBER_EMAIL%%",
    "unsubscribe_url": "%%UNSUBSCRIBE_URL%%",
    "web_url": "%%WEB_VERSION_URL%%",
}
# What templates may use besides those: the greeting ("Hello Ada," or "Hello,"), the
# first name alone, and the open image's URL ([tracking] opens).
READER_KEYS = (*LEGACY_PLACEHOLDERS, "first_name", "greeting", "open_url")


def placeholders(marker: str) -> dict[str, str]:
    """The placeholders of a digest whose marker is `marker`."""
    if not marker:
        return LEGACY_PLACEHOLDERS
    return {key: f"%%{marker}-{key.upper()}%%" for key in READER_KEYS}


def link_placeholder(marker: str, position: int) -> str:
    """What stands where a tracked link to the article at `position` goes."""
    return f"%%{marker}-LINK-{position}%%"


def _link_holes(marker: str) -> re.Pattern[str]:
    return re.compile(re.escape(f"%%{marker}-LINK-") + r"(\d+)%%")


def new_marker(digest: Digest) -> str:
    """A marker that appears nowhere in the digest's content."""
    content = repr(digest)
    while True:
        marker = secrets.token_hex(8)
        if marker not in content:
            return marker
TEXT_WIDTH = 76
BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
MAX_HTML_LINE = 240  # characters; up to 4 UTF-8 octets each, still under 998
# Room left under the limit for what personalisation adds (name, address, two URLs).
PERSONAL_HEADROOM = 1024


@dataclass(frozen=True)
class RenderOptions:
    """What the templates need besides the digest itself."""

    templates: Path
    subject_template: str
    base_url: str
    postal_address: str = ""
    utm_campaign: str = ""
    max_html_bytes: int = 100_000
    fallback: Path | None = None  # templates missing from `templates` come from here
    period: str = "this week"  # "More this week": how far back a digest reaches
    tracking: TrackingMode = TrackingMode()
    logo: Logo | None = None
    # How long a tracked link to this install is, for the size guard to count it whole.
    link_length: int = 0


@dataclass(frozen=True)
class Logo:
    """The masthead image ([email] logo_url, with its size and alternative text)."""

    url: str
    width: int
    height: int
    alt: str


@dataclass(frozen=True)
class Layout:
    """How much of the digest goes into the body; the size guard trims it step by step."""

    images: bool = True
    short_summaries: bool = False
    full_items: int | None = None  # the rest go to "More this week"


def render_digest(digest: Digest, options: RenderOptions) -> RenderedDigest:
    """Render subject, inlined HTML and text, trimming the layout until the HTML fits."""
    env = _environment(options)
    limit = options.max_html_bytes - PERSONAL_HEADROOM
    marker = new_marker(digest)

    def attempt(layout: Layout) -> tuple[str, str, bool]:
        page, text = _render(env, digest, options, layout, placeholders(marker), marker)
        return page, text, _size_as_sent(page, marker, options) <= limit

    layout = Layout()
    page, text, fits = attempt(layout)
    actions: list[str] = []
    for changed, action in ((replace(layout, images=False), "dropped article images"),
                            (Layout(images=False, short_summaries=True),
                             "shortened summaries to their first sentence")):
        if fits:
            break
        layout = changed
        page, text, fits = attempt(layout)
        actions.append(action)
    if not fits and len(digest.items) > 1:
        kept = _most_items_that_fit(lambda k: attempt(replace(layout, full_items=k))[2],
                                    len(digest.items) - 1)
        layout = replace(layout, full_items=kept)
        page, text, fits = attempt(layout)
        actions.append(f"moved the last {len(digest.items) - kept} article(s) to "
                       f"'More {options.period}'")
    for action in actions:
        log.info("digest HTML over %d bytes: %s", limit, action)
    if actions:
        log.info("digest HTML now %d bytes%s", len(page.encode("utf-8")),
                 "" if fits else ", still over the limit")
    tracking = options.tracking
    return RenderedDigest(subject=_subject(digest, options), html=page, text=text,
                          size_actions=tuple(actions), marker=marker, tracking=tracking,
                          links=_targets(digest, options) if tracking.clicks else ())


def _targets(digest: Digest, options: RenderOptions) -> tuple[str, ...]:
    return tuple(with_utm(item.article.url, options.utm_campaign) for item in digest.items)


def _size_as_sent(page: str, marker: str, options: RenderOptions) -> int:
    """The HTML's size in bytes with each tracked link as long as it will be."""
    size = len(page.encode("utf-8"))
    if options.tracking.clicks:
        links = page.count(f"%%{marker}-LINK-")
        size += links * max(0, options.link_length - len(link_placeholder(marker, 99)))
    return size


def _most_items_that_fit(fits: Any, most: int) -> int:
    """Binary search for the largest number of full articles (at least 1) that fits."""
    low, high = 1, most
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _render(env: jinja2.Environment, digest: Digest, options: RenderOptions,
            layout: Layout, holes: dict[str, str], marker: str) -> tuple[str, str]:
    items = [_trimmed(item, layout) for item in digest.items]
    cut = layout.full_items if layout.full_items is not None else len(items)
    tracked: dict[str, str] = {}
    if options.tracking.clicks:
        for position, item in enumerate(digest.items):
            tracked.setdefault(item.article.url, link_placeholder(marker, position))
    context = {
        "digest": digest,
        "title": digest.title,
        "category": digest.category,
        "count": len(items),
        "items": items[:cut],
        "more": items[cut:],
        "preheader": digest.preheader,
        "opening_line": digest.opening_line,
        "editor_note": digest.editor_note,
        "subscriber": holes,
        "web_url": holes["web_url"],
        "base_url": options.base_url.rstrip("/"),
        "postal_address": options.postal_address,
        "show_images": layout.images,
        "period": options.period,
        "tracked_links": tracked,
        "open_pixel": options.tracking.opens,
        "logo": options.logo,
    }
    try:
        page = env.get_template("digest.html").render(context)
        text = env.get_template("digest.txt").render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{exc.filename}: line {exc.lineno}: template error: "
                          f"{exc.message}") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{_failing_line(exc) or options.templates}: template error: "
                          f"{exc}") from None
    return inline_css(page), BLANK_LINES.sub("\n\n", text.strip()) + "\n"


def _failing_line(error: BaseException) -> str:
    """'file: line N' of the template line that raised, from the traceback Jinja2 writes
    with the templates' own file names and lines."""
    trace, found = error.__traceback__, ""
    while trace is not None:
        name = trace.tb_frame.f_code.co_filename
        if name.endswith((".html", ".txt", ".css")):
            found = f"{name}: line {trace.tb_lineno}"
        trace = trace.tb_next
    return found


def _trimmed(item: DigestItem, layout: Layout) -> DigestItem:
    if layout.short_summaries and len(item.summary.sentences) > 1:
        return replace(item, summary=replace(item.summary, sentences=item.summary.sentences[:1]))
    return item


def _subject(digest: Digest, options: RenderOptions) -> str:
    context = {"title": digest.title, "category": digest.category, "count": len(digest.items),
               "items": digest.items}
    try:
        subject = SandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string(
            options.subject_template).render(context)
    except jinja2.TemplateError as exc:
        raise ConfigError(f"[email] subject: template error: {exc}") from None
    return " ".join(subject.split())


def inline_css(page: str) -> str:
    """Move stylesheet rules into style attributes; media queries stay in a <style> block."""
    # disable_basic_attributes: keep the width/height attributes the templates write
    # (Outlook reads those) instead of premailer's copies of the CSS values.
    inlined = Premailer(page, keep_style_tags=False, remove_classes=False,
                        strip_important=False, allow_network=False, disable_validation=True,
                        disable_basic_attributes=["width", "height"],
                        cssutils_logging_level=logging.CRITICAL).transform()
    return fold_long_lines(inlined)


ATTRIBUTE_GAP = re.compile(r'(?<=") (?=[a-zA-Z-]+=")')


def fold_long_lines(page: str, limit: int = MAX_HTML_LINE) -> str:
    """Break HTML lines longer than `limit` so the message can go 8bit (SMTP allows 998
    octets a line) with room for the values filled in later. Breaks go between a tag's
    attributes, where a newline changes nothing; failing that, at a space in the text."""
    lines = []
    for line in page.split("\n"):
        while len(line) > limit:
            gaps = [m.start() for m in ATTRIBUTE_GAP.finditer(line, 1, limit)]
            cut = gaps[-1] if gaps else line.rfind(" ", 1, limit)
            if cut <= 0:
                break
            lines.append(line[:cut])
            line = line[cut + 1:]
        lines.append(line)
    return "\n".join(lines)


def personalise(rendered: RenderedDigest, *, name: str, email: str, unsubscribe_url: str,
                web_url: str = "", link: LinkFiller | None = None,
                open_url: str = "") -> tuple[str, str]:
    """Fill one subscriber's values into the rendered HTML (escaped) and text. Tracked
    links become `link(position)`, or without it the article's own URL."""
    values = reader_values(name=name, email=email, unsubscribe_url=unsubscribe_url,
                           web_url=web_url, open_url=open_url)
    filled = fill(rendered, values, link or direct_links(rendered))
    return filled.html, filled.text


LinkFiller = Callable[[int], str]


def reader_values(*, name: str, email: str, unsubscribe_url: str, web_url: str,
                  open_url: str = "") -> dict[str, str]:
    """Every per-reader value a template may use, from the reader's name and links."""
    return {"name": name, "email": email, "unsubscribe_url": unsubscribe_url,
            "web_url": web_url, "first_name": first_name(name), "greeting": greeting(name),
            "open_url": open_url}


def direct_links(rendered: RenderedDigest) -> LinkFiller:
    """Tracked links that lead straight to the article: for a message not part of a sent
    digest (a preview, a test), which no click could be counted for."""
    return lambda position: rendered.links[position] if position < len(rendered.links) else ""


def fill(rendered: RenderedDigest, values: dict[str, str],
         link: LinkFiller | None = None) -> RenderedDigest:
    """The rendered digest with the given placeholders (and, with `link`, every tracked
    link) filled in; the rest stay for a later fill."""
    page, text = rendered.html, rendered.text
    holes = placeholders(rendered.marker)
    for key, value in values.items():
        if key in holes:
            page = page.replace(holes[key], html.escape(value, quote=True))
            text = text.replace(holes[key], value)
    if link is not None and rendered.marker:
        pattern = _link_holes(rendered.marker)
        page = pattern.sub(lambda m: html.escape(link(int(m.group(1))), quote=True), page)
        text = pattern.sub(lambda m: link(int(m.group(1))), text)
    return replace(rendered, html=page, text=text)


def with_utm(url: str, campaign: str) -> str:
    """The URL with utm_source/medium/campaign added, when a campaign is configured."""
    if not campaign or not url.startswith(("http://", "https://")):
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.startswith("utm_")]
    query += [("utm_source", "newsletter"), ("utm_medium", "email"),
              ("utm_campaign", campaign)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _environment(options: RenderOptions) -> jinja2.Environment:
    folder = options.templates
    if not folder.is_dir():
        raise ConfigError(f"[email] templates: {folder} is not a folder")
    folders = (folder,) + ((options.fallback,) if options.fallback else ())
    if not any((f / "digest.html").is_file() for f in folders):
        raise ConfigError(f"[email] templates: {folder} has no digest.html template")
    return _cached_environment(folders, options.utm_campaign)


# One environment per template set: Jinja2 then compiles each template once (and again
# only when its file changes), instead of on every render of the desk's draft.
@lru_cache(maxsize=16)
def _cached_environment(folders: tuple[Path, ...], campaign: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(f)) for f in folders]),
        autoescape=jinja2.select_autoescape(["html", "htm"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["wrap"] = _wrap
    env.filters["longdate"] = lambda d: f"{d:%-d %B %Y}" if d else ""
    env.filters["track"] = jinja2.pass_context(
        lambda context, url: context.get("tracked_links", {}).get(url)
        or with_utm(url, campaign))
    return env


def _wrap(text: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    return "\n".join(textwrap.wrap(text, width=width, initial_indent=indent,
                                   subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False))
