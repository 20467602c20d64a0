"""Digest → RenderedDigest: Jinja2 templates rendered and CSS inlined by premailer once
per digest, with placeholders that `personalise` fills in for each subscriber."""

from __future__ import annotations

import html
import logging
import textwrap
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from premailer import Premailer

from digest.errors import ConfigError
from digest.models import Digest, RenderedDigest

PLACEHOLDERS = {
    "name": "%%SUBSCRIBER_NAME%%",
    "email": "%%SUBSCRIBER_EMAIL%%",
    "unsubscribe_url": "%%UNSUBSCRIBE_URL%%",
}
TEXT_WIDTH = 76


@dataclass(frozen=True)
class RenderOptions:
    """What the templates need besides the digest itself."""

    templates: Path
    subject_template: str
    base_url: str
    postal_address: str = ""


def render_digest(digest: Digest, options: RenderOptions) -> RenderedDigest:
    """Render subject, HTML (CSS inlined once) and text of a digest, with placeholders."""
    env = _environment(options.templates)
    context = {
        "digest": digest,
        "title": digest.title,
        "category": digest.category,
        "count": len(digest.items),
        "items": digest.items,
        "preheader": digest.preheader,
        "opening_line": digest.opening_line,
        "subscriber": PLACEHOLDERS,
        "base_url": options.base_url.rstrip("/"),
        "postal_address": options.postal_address,
    }
    try:
        subject = SandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string(
            options.subject_template).render(context)
        page = env.get_template("digest.html").render(context)
        text = env.get_template("digest.txt").render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{exc.filename or '[email] subject'}: line {exc.lineno}: "
                          f"template error: {exc.message}") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"{options.templates}: template error: {exc}") from None
    return RenderedDigest(subject=" ".join(subject.split()), html=inline_css(page),
                          text=text.strip() + "\n")


def inline_css(page: str) -> str:
    """Move stylesheet rules into style attributes; media queries stay in a <style> block."""
    return Premailer(page, keep_style_tags=False, remove_classes=False, strip_important=False,
                     allow_network=False, disable_validation=True,
                     cssutils_logging_level=logging.CRITICAL).transform()


def personalise(rendered: RenderedDigest, *, name: str, email: str,
                unsubscribe_url: str) -> tuple[str, str]:
    """Fill one subscriber's values into the rendered HTML (escaped) and text."""
    values = {"name": name, "email": email, "unsubscribe_url": unsubscribe_url}
    page, text = rendered.html, rendered.text
    for key, marker in PLACEHOLDERS.items():
        page = page.replace(marker, html.escape(values[key], quote=True))
        text = text.replace(marker, values[key])
    return page, text


def _environment(folder: Path) -> jinja2.Environment:
    if not (folder / "digest.html").is_file():
        raise ConfigError(f"[email] templates: {folder} has no digest.html template")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=jinja2.select_autoescape(["html", "htm"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["wrap"] = _wrap
    env.filters["longdate"] = lambda d: f"{d:%-d %B %Y}" if d else ""
    return env


def _wrap(text: str, width: int = TEXT_WIDTH, indent: str = "") -> str:
    return "\n".join(textwrap.wrap(text, width=width, initial_indent=indent,
                                   subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False))
