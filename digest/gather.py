"""Gathering: every source read (conditionally), entries kept to the category, merged
across sources, filtered to the new ones, and their pages fetched in parallel (per-host
limit, robots.txt) and extracted. One failing source or page never stops the others."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from digest.clock import Clock, utc_now
from digest.config import Config, SourceSettings
from digest.dedupe import merge_articles, merge_entries
from digest.errors import ExtractError, FeedError, FetchError
from digest.extract.isolated import MAX_WORKERS as EXTRACT_WORKERS
from digest.extract.isolated import ExtractionPool
from digest.fetch import Fetcher, FetchPolicy
from digest.models import Article, FeedEntry, GatherResult, SourceFailure
from digest.netguard import origin_of
from digest.progress import progress
from digest.sources import Validators, in_category, read_source
from digest.state import State
from digest.state.sources import FAILING_AFTER
from digest.urls import strip_tracking

log = logging.getLogger(__name__)

KEEP_ENTRIES_FOR = timedelta(days=60)
MAX_WORKERS = 16


@dataclass(frozen=True)
class SourceOutcome:
    """The entries one source contributed, or why it contributed none."""

    source: SourceSettings
    entries: tuple[FeedEntry, ...] = ()
    failure: SourceFailure | None = None
    newly_failing: bool = False  # this failure is the one that made the source "failing"
    unchanged: int = 0  # entries a not-modified source still lists that were sent already


def make_fetcher(config: Config) -> Fetcher:
    """A fetcher with the [fetch] settings."""
    f = config.fetch
    sources = frozenset((origin_of(s.url)[1], origin_of(s.url)[2]) for s in config.sources)
    return Fetcher(FetchPolicy(user_agent=f.user_agent, timeout=f.timeout,
                               max_bytes=f.max_bytes, retries=f.retries,
                               max_retry_after=f.max_retry_after, max_redirects=f.max_redirects,
                               per_host=f.per_host_concurrency,
                               respect_robots=f.respect_robots,
                               request_deadline=f.request_deadline,
                               source_deadline=f.source_deadline, run_deadline=f.run_deadline,
                               private_ok=sources, allow_private=f.allow_private_addresses))


def gather(config: Config, state: State, fetcher: Fetcher, *, record: bool,
           clock: Clock = utc_now) -> GatherResult:
    """Find the new articles of the category on every source; `record` keeps what was learnt
    (validators, entries, failure counts) in the state database."""
    outcomes = [_read(source, config, state, fetcher, record, clock)
                for source in config.sources]
    failures = [o.failure for o in outcomes if o.failure]
    entries = merge_entries([e for o in outcomes for e in o.entries])
    known = state.ledger.sent_urls(e.url for e in entries)
    fresh = [e for e in entries if e.url not in known]
    fresh.sort(key=lambda e: e.published or datetime.min.replace(tzinfo=UTC), reverse=True)
    fresh = fresh[:config.digest.max_articles]
    articles = fetch_articles(fresh, fetcher, failures, workers=_workers(config, fresh),
                              sources=config.sources)
    known_canonical = state.ledger.sent_urls(a.url for a in articles)
    articles = merge_articles([a for a in articles if a.url not in known_canonical])
    if record:
        state.sources.forget_entries_before(clock() - KEEP_ENTRIES_FOR)
    found = len(entries) + sum(o.unchanged for o in outcomes)
    return GatherResult(found=found, new_entries=len(fresh), articles=tuple(articles),
                        failures=tuple(failures),
                        sources_failed=sum(1 for o in outcomes if o.failure),
                        newly_failing=tuple(o.failure for o in outcomes
                                            if o.failure and o.newly_failing))


def capture(config: Config, state: State, fetcher: Fetcher, *,
            clock: Clock = utc_now) -> GatherResult:
    """Read every source and keep its entries for the next digest, without fetching article
    pages: run more often than the digest, it catches entries a short feed would drop."""
    outcomes = [_read(source, config, state, fetcher, True, clock) for source in config.sources]
    entries = merge_entries([e for o in outcomes for e in o.entries])
    known = state.ledger.sent_urls(e.url for e in entries)
    return GatherResult(found=len(entries), new_entries=sum(e.url not in known for e in entries),
                        articles=(), failures=tuple(o.failure for o in outcomes if o.failure),
                        sources_failed=sum(1 for o in outcomes if o.failure),
                        newly_failing=tuple(o.failure for o in outcomes
                                            if o.failure and o.newly_failing))


def _read(source: SourceSettings, config: Config, state: State, fetcher: Fetcher,
          record: bool, clock: Clock) -> SourceOutcome:
    category = source.category or config.digest.category
    memory = state.sources.state(source.url)
    try:
        with fetcher.scope(source.name, source.url, source.allowed_hosts):
            result = read_source(source, fetcher=fetcher, category=config.digest.category,
                                 validators=Validators(memory.etag, memory.last_modified))
    except (FetchError, FeedError) as exc:
        failure = SourceFailure(source.url, str(exc))
        count = (state.sources.record_failure(source.url, str(exc), clock())
                 if record else 0)
        log.warning("source %s failed%s: %s", source.name,
                    f" ({count} cycles in a row)" if count > 1 else "", exc)
        return SourceOutcome(source, failure=failure, newly_failing=count == FAILING_AFTER)
    matching = [replace(e, url=strip_tracking(e.url), source_url=source.url)
                for e in result.entries if in_category(e, category, result.source_is_category)]
    if result.not_modified:
        log.info("source %s: not modified since last time", source.name)
    else:
        log.info("source %s (%s): %d entries, %d in %s", source.name, result.kind,
                 len(result.entries), len(matching), category)
    if record:
        state.sources.record_success(source.url, result.validators.etag,
                                     result.validators.last_modified, clock(),
                                     listed=None if result.not_modified else len(matching))
        state.sources.remember_entries(source.url, matching, clock())
    kept = [replace(e, source_url=source.url)
            for e in state.sources.remembered_entries(source.url)]
    listed = {e.url for e in matching}
    unchanged = max(0, memory.listed - len(kept)) if result.not_modified else 0
    return SourceOutcome(source, tuple(matching) + tuple(e for e in kept if e.url not in listed),
                         unchanged=unchanged)


def fetch_articles(entries: list[FeedEntry], fetcher: Fetcher, failures: list[SourceFailure],
                   *, workers: int, sources: Sequence[SourceSettings] = ()) -> list[Article]:
    """Fetch each entry's page in parallel threads and extract it in an isolated worker
    process; failures (a crash or overrun of the extraction included) are recorded and
    skipped."""
    if not entries:
        return []
    articles: list[Article] = []
    with progress("Fetching articles", len(entries)) as advance, \
            ExtractionPool(min(EXTRACT_WORKERS, len(entries))) as extraction, \
            ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        by_url = {s.url: s for s in sources}
        for outcome in pool.map(lambda e: _article(e, fetcher, extraction,
                                                   by_url.get(e.source_url)), entries):
            advance()
            if isinstance(outcome, SourceFailure):
                log.warning("article skipped: %s", outcome.reason)
                failures.append(outcome)
            else:
                articles.append(outcome)
    return articles


def _article(entry: FeedEntry, fetcher: Fetcher, extraction: ExtractionPool,
             source: SourceSettings | None) -> Article | SourceFailure:
    # An article page is fetched as its source allows (its origin and allowed_hosts);
    # one listed by no configured source (a test's hand-made entry) has its own origin.
    scope = fetcher.scope(source.name, source.url, source.allowed_hosts) if source else \
        fetcher.scope(entry.source_name, entry.url)
    try:
        with scope:
            if not fetcher.allowed(entry.url):
                return SourceFailure(entry.url, f"{entry.url}: disallowed by robots.txt")
            page = fetcher.get(entry.url)
        article = extraction.extract(page.body, entry, page_url=page.url,
                                     content_type=page.content_type)
    except (FetchError, ExtractError) as exc:
        return SourceFailure(entry.url, str(exc))
    feed_url = entry.url if entry.url != article.url else ""
    return replace(article, feed_url=feed_url, also_reported_by=entry.also_reported_by)


def _workers(config: Config, entries: list[FeedEntry]) -> int:
    hosts = {urlsplit(e.url).netloc for e in entries} or {""}
    return min(MAX_WORKERS, config.fetch.per_host_concurrency * len(hosts))
