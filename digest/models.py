"""Plain frozen dataclasses passed between the pipeline stages. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FeedEntry:
    """One item a source lists: where the article is and what the source says of it."""

    url: str
    title: str
    source_name: str
    published: datetime | None = None
    categories: tuple[str, ...] = ()
    summary: str = ""
    content_html: str = ""
    guid: str = ""
    also_reported_by: tuple[tuple[str, str], ...] = ()  # (source name, URL) of duplicates
    source_url: str = ""  # the [[sources]] url that listed it: what its page may be fetched as


@dataclass(frozen=True)
class Article:
    """An article page reduced to what a digest needs."""

    url: str
    title: str
    source_name: str
    published: datetime | None
    paragraphs: tuple[str, ...]
    standfirst: str = ""
    author: str = ""
    source_line: str = ""
    disclaimer_line: str = ""
    feed_summary: str = ""
    image_url: str = ""
    image_alt: str = ""
    guid: str = ""
    feed_url: str = ""  # the URL the source listed, when it differs from the canonical one
    also_reported_by: tuple[tuple[str, str], ...] = ()  # (source name, URL) of duplicates


@dataclass(frozen=True)
class Summary:
    """A few sentences taken whole from the article, plus its own attribution lines."""

    sentences: tuple[str, ...]
    source_line: str
    disclaimer_line: str
    method: str = "extractive"  # extractive | abstractive | edited | fallback

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass(frozen=True)
class DigestItem:
    """One article as it appears in a digest."""

    article: Article
    summary: Summary
    reading_minutes: int = 1


@dataclass(frozen=True)
class Digest:
    """What one email holds before it is rendered."""

    title: str
    category: str
    created_at: datetime
    items: tuple[DigestItem, ...]
    opening_line: str = ""
    preheader: str = ""
    editor_note: str = ""  # the editor's words that open the digest


@dataclass(frozen=True)
class ArticleEdit:
    """An editor's changes to one article of the next digest, kept by URL so they survive
    a rebuild of the draft when new articles arrive."""

    url: str
    excluded: bool = False
    pinned: bool = False
    position: int | None = None  # manual order among the articles the editor has moved
    headline: str = ""  # replaces the title when set
    summary: str = ""  # replaces the generated summary when set


@dataclass(frozen=True)
class TrackingMode:
    """What a digest's links and images count ([tracking]), fixed when it is rendered so
    every message of it, and a resume days later, carries the same kind of links."""

    clicks: bool = False
    opens: bool = False
    per_reader: bool = False  # tokens name the reader too: personal data

    def encode(self) -> str:
        """As stored with the digest: 'clicks,opens,reader', '' for none."""
        return ",".join(name for name, on in (("clicks", self.clicks), ("opens", self.opens),
                                              ("reader", self.per_reader)) if on)

    @classmethod
    def decode(cls, stored: str | None) -> TrackingMode:
        """The mode a digest was stored with."""
        names = set((stored or "").split(","))
        return cls(clicks="clicks" in names, opens="opens" in names,
                   per_reader="reader" in names)


@dataclass(frozen=True)
class RenderedDigest:
    """A digest rendered once: subject, inlined HTML and text, with subscriber placeholders."""

    subject: str
    html: str
    text: str
    size_actions: tuple[str, ...] = ()  # what the size guard had to do
    # The random part of this digest's per-subscriber placeholders ("" in digests made
    # before placeholders were random): content cannot know it, so cannot forge one.
    marker: str = ""
    tracking: TrackingMode = TrackingMode()
    # Where each article's tracked links lead (utm parameters added), by position: what a
    # message not yet part of a sent digest (a preview, a test) links to directly.
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subscriber:
    """One person on the list."""

    email: str
    name: str = ""
    status: str = "active"
    format: str = "html"  # html (multipart) | text (plain text only)
    token_id: str = ""  # the opaque id their links carry (never the address)


@dataclass(frozen=True)
class Recipient:
    """One delivery of a committed digest: who gets it, and the identifiers their message
    carries, fixed in the ledger before the first attempt (a retry reuses them)."""

    delivery_id: int
    email: str
    name: str = ""
    format: str = "html"
    token_id: str = ""
    message_id: str = ""


@dataclass(frozen=True)
class SourceFailure:
    """A source or page that could not be read this run, and why."""

    url: str
    reason: str


@dataclass(frozen=True)
class GatherResult:
    """What gathering found: the new articles and what went wrong on the way."""

    found: int
    new_entries: int
    articles: tuple[Article, ...]
    failures: tuple[SourceFailure, ...] = ()
    newly_failing: tuple[SourceFailure, ...] = ()  # sources that just reached the limit
    sources_failed: int = 0  # sources (not pages) that could not be read


@dataclass
class RunReport:
    """What one digest cycle did, for the operator."""

    found: int = 0
    new: int = 0
    summarized: int = 0
    recipients: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    remaining: int = 0
    deferred: int = 0
    unconfirmed: int = 0
    excluded: int = 0  # new articles the editor excluded
    digest_id: int | None = None
    resumed_digest_id: int | None = None
    dry_run: bool = False
    outcome: str = ""  # sent | skipped | failed | resumed, once the cycle is over
    reason: str = ""  # why it was skipped or failed
    alert_skip: bool = True  # a skip worth telling [alerts] email about
    newly_failing: list[SourceFailure] = field(default_factory=list)
    failures: list[SourceFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    preflight: list[str] = field(default_factory=list)
