"""Building the next digest the same way for every path (run, preview, the editor's desk,
a test send): compose it from the new articles with the editor's changes, render it with
the configured templates, and check it as the sample subscriber would receive it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from digest import bundled
from digest.compose import build_digest
from digest.config import Config
from digest.deliver.send import envelope, message_signer
from digest.errors import PreflightError
from digest.message import build_message, new_message_id, sender_domain, web_version_url
from digest.models import Article, Digest, RenderedDigest, Subscriber, TrackingMode
from digest.preflight import Check, PreflightReport, check_spam, run_preflight
from digest.render import Logo, RenderOptions, personalise, render_digest
from digest.slots import cadence
from digest.state import State
from digest.tracking import longest_click_url

log = logging.getLogger(__name__)

SAMPLE_SUBSCRIBER = Subscriber(email="reader@example.com", name="Sample Reader")


def compose_next(config: Config, state: State, articles: Sequence[Article],
                 now: datetime) -> Digest:
    """The next digest of these articles with the editor's changes and note applied."""
    note = state.editorial.note()
    return build_digest(config, articles, now, state.editorial.article_edits(),
                        note.text if note else "")


def sample_digest(config: Config, now: datetime) -> Digest:
    """A digest of the bundled sample articles, for checking templates without a network."""
    from digest.demo.site import load_sample_articles

    articles = [Article(url=f"https://news.example.org{a.path}", title=a.title,
                        source_name="Orbital Desk", published=a.published,
                        paragraphs=tuple(p for p in a.body.split("\n\n")
                                         if p.strip() and not p.startswith("#")),
                        standfirst=a.standfirst, author=a.author, source_line=a.source,
                        disclaimer_line=a.disclaimer)
                for a in load_sample_articles()[:3]]
    return build_digest(config, articles, now)


def render(config: Config, digest: Digest) -> RenderedDigest:
    """Render a digest with the configured templates and subject."""
    own, email, tracking = config.template_folder, config.email, config.tracking
    mode = TrackingMode(clicks=tracking.clicks, opens=tracking.opens,
                        per_reader=tracking.per_subscriber and (tracking.clicks or
                                                                tracking.opens))
    return render_digest(digest, RenderOptions(
        templates=own or bundled.templates(), fallback=bundled.templates() if own else None,
        subject_template=email.subject, base_url=email.base_url,
        postal_address=email.postal_address, utm_campaign=email.utm_campaign,
        max_html_bytes=email.max_html_bytes, period=cadence(config.schedule.cron)[1],
        tracking=mode, link_length=len(longest_click_url(email.base_url, mode)),
        logo=Logo(email.logo_url, email.logo_width, email.logo_height,
                  email.logo_alt or config.digest.title) if email.logo_url else None))


def sample_unsubscribe_url(config: Config) -> str:
    """The unsubscribe link the sample subscriber's copy carries."""
    return f"{config.email.base_url.rstrip('/')}/unsubscribe/SAMPLE-TOKEN"


def sample_parts(config: Config, rendered: RenderedDigest) -> tuple[str, str]:
    """HTML and text of a digest as the sample subscriber would get them."""
    return personalise(rendered, name=SAMPLE_SUBSCRIBER.name, email=SAMPLE_SUBSCRIBER.email,
                       unsubscribe_url=sample_unsubscribe_url(config),
                       web_url=web_version_url(config.email.base_url, 0),
                       open_url=f"{config.email.base_url.rstrip('/')}/o/preview.gif")


def preflight_digest(config: Config, rendered: RenderedDigest, now: datetime, *,
                     spam: bool = True) -> PreflightReport:
    """The preflight checks on the digest as the sample subscriber would receive it."""
    html, text = sample_parts(config, rendered)
    unsubscribe = sample_unsubscribe_url(config)
    message = build_message(rendered, SAMPLE_SUBSCRIBER, envelope=envelope(config),
                            digest_id=0, created_at=now, unsubscribe_url=unsubscribe,
                            message_id=new_message_id(0, sender_domain(config.email.from_address)))
    report = run_preflight(html=html, text=text, message=message_signer(config)(
        message.as_bytes()), unsubscribe_url=unsubscribe,
        max_html_bytes=config.email.max_html_bytes, max_spam_score=config.email.max_spam_score,
        spam=spam)
    for check, line in zip(report.checks, report.lines(), strict=True):
        log.log(logging.DEBUG if check.status in ("ok", "skipped") else logging.WARNING,
                "%s", line)
    return report


def spam_check(config: Config, rendered: RenderedDigest, now: datetime) -> Check:
    """The SpamAssassin check alone, on the sample subscriber's message."""
    unsubscribe = sample_unsubscribe_url(config)
    message = build_message(rendered, SAMPLE_SUBSCRIBER, envelope=envelope(config),
                            digest_id=0, created_at=now, unsubscribe_url=unsubscribe,
                            message_id=new_message_id(0, sender_domain(config.email.from_address)))
    return check_spam(message_signer(config)(message.as_bytes()), config.email.max_spam_score)


def refuse_on_failure(report: PreflightReport) -> None:
    """Raise PreflightError naming the failed checks."""
    if report.failed:
        names = ", ".join(f"{c.name} ({c.detail})" for c in report.failed)
        raise PreflightError(f"preflight failed: {names}; nothing sent and nothing recorded "
                             "(fix it, or pass --force to send anyway)")
