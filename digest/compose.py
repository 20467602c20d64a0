"""Articles → Digest: stories grouped across sites, each summarised (an editor's text
wins over the generated one), ordered, with reading times, an opening line and a
preheader. Pure but for the optional abstractive summariser."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache

from digest.abstractive import abstractive_summary
from digest.config import Config
from digest.draft import arrange, included
from digest.group import group_stories
from digest.message import without_bidi
from digest.models import Article, ArticleEdit, Digest, DigestItem, Summary
from digest.summarize import split_sentences, summarize

WORDS_PER_MINUTE = 230
HEADLINES_IN_PREHEADER = 3


def build_digest(config: Config, articles: Iterable[Article], now: datetime,
                 edits: Mapping[str, ArticleEdit | str] | None = None,
                 note: str = "") -> Digest:
    """The digest of these articles with the editor's changes applied: `edits` maps an
    article URL to its ArticleEdit (or just an edited summary); `note` opens the digest."""
    d = config.digest
    changes = {url: e if isinstance(e, ArticleEdit) else ArticleEdit(url=url, summary=e)
               for url, e in (edits or {}).items()}
    shown = [replace(a, title=without_bidi(a.title)) for a in articles]
    stories = group_stories(included(shown, changes), d.group_threshold)
    ordered = arrange(order_articles(stories, d.order), lambda a: a.url, changes)
    items = [DigestItem(article=a, summary=summary_for(config, a, _summary(changes, a.url)),
                        reading_minutes=reading_minutes(a))
             for a in ordered[:d.max_articles]]
    return Digest(title=d.title, category=d.category, created_at=now, items=tuple(items),
                  opening_line=opening_line(d.category, items),
                  preheader=preheader(d.category, items), editor_note=note.strip())


def _summary(edits: Mapping[str, ArticleEdit], url: str) -> str | None:
    edit = edits.get(url)
    return edit.summary if edit and edit.summary else None


def summary_for(config: Config, article: Article, edited: str | None = None) -> Summary:
    """An editor's summary when there is one, else the configured summariser's."""
    if edited:
        return Summary(sentences=tuple(split_sentences(edited)) or (edited,),
                       source_line=article.source_line,
                       disclaimer_line=article.disclaimer_line, method="edited")
    d = config.digest
    small = sum(map(len, article.paragraphs)) <= CACHED_TEXT_CHARS
    extractive = (_extractive if small else _extractive.__wrapped__)(
        article, d.summary_sentences, d.summary_max_words)
    if config.summaries.summarizer == "openai-compatible" and extractive.method != "fallback":
        return abstractive_summary(article, config.summaries, max_words=d.summary_max_words,
                                   fallback=extractive)
    return extractive


CACHED_TEXT_CHARS = 200_000  # longer articles are summarised afresh, never kept in memory


@lru_cache(maxsize=128)
def _extractive(article: Article, max_sentences: int, max_words: int) -> Summary:
    # The desk rebuilds its draft on every edit: the same articles, the same summaries.
    return summarize(article, max_sentences=max_sentences, max_words=max_words)


def order_articles(articles: list[Article], order: str) -> list[Article]:
    """Newest first (default), oldest first, or grouped by source then newest first."""
    def when(article: Article) -> datetime:
        return article.published or datetime.min.replace(tzinfo=UTC)

    if order == "oldest":
        return sorted(articles, key=when)
    newest = sorted(articles, key=when, reverse=True)
    if order == "source":
        return sorted(newest, key=lambda a: a.source_name.casefold())
    return newest


def reading_minutes(article: Article) -> int:
    """Minutes to read the whole article at an average adult pace, at least 1."""
    words = sum(len(p.split()) for p in article.paragraphs)
    return max(1, math.ceil(words / WORDS_PER_MINUTE))


def _count(category: str, items: list[DigestItem]) -> str:
    noun = "story" if len(items) == 1 else "stories"
    return f"{len(items)} new {category} {noun}"


def preheader(category: str, items: list[DigestItem]) -> str:
    """The line inboxes show after the subject: the count and the first headlines."""
    titles = [item.article.title for item in items[:HEADLINES_IN_PREHEADER]]
    more = ", …" if len(items) > HEADLINES_IN_PREHEADER else ""
    return f"{_count(category, items)}: {', '.join(titles)}{more}"


def opening_line(category: str, items: list[DigestItem]) -> str:
    """The sentence that opens the digest."""
    if not items:
        return f"No new {category} stories this time."
    lead = items[0].article.title
    if len(items) == 1:
        return f"One new {category} story since the last digest: {lead}."
    return f"{_count(category, items)} since the last digest, led by {lead}."
