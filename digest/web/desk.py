"""The draft the editor's desk shows: the next digest built the way a run builds it, from
candidate articles gathered now and then (not on every click), with the editor's stored
changes applied on every view."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime

from digest.build import compose_next, preflight_digest, render, sample_parts, spam_check
from digest.clock import utc_now
from digest.compose import summary_for
from digest.config import Config
from digest.draft import move
from digest.errors import DigestError, EditorialError
from digest.gather import gather, make_fetcher
from digest.models import Article, Digest, GatherResult, RenderedDigest
from digest.preflight import Check, PreflightReport
from digest.state import State

DRAFT_MAX_AGE = 600.0  # seconds before the desk gathers the sources again on its own
SPAM_SETTLE_SECONDS = 2.0
PENDING = Check("spam", "skipped", "SpamAssassin score being worked out; reload in a moment")
ARTICLE_ACTIONS = {"exclude": "Article excluded.", "include": "Article included again.",
                   "pin": "Article pinned to the top.", "unpin": "Article unpinned.",
                   "up": "Article moved up.", "down": "Article moved down.",
                   "edit": "Changes saved.",
                   "restore": "Generated headline and summary restored."}


@dataclass
class Draft:
    """The next digest as the desk shows it."""

    digest: Digest
    rendered: RenderedDigest
    html: str
    text: str
    checks: PreflightReport
    candidates: tuple[Article, ...]
    generated: dict[str, str] = field(default_factory=dict)  # URL -> generated summary


class DraftDesk:
    """Gathers the candidate articles now and then and builds the draft from them. The
    candidates are read again when a digest went out meanwhile (or on request), and the
    SpamAssassin score, which takes a second or two, is worked out in the background so an
    edit answers at once."""

    def __init__(self, config: Config, state: State) -> None:
        self.config, self.state = config, state
        self._gathered: GatherResult | None = None
        self._gathered_at = 0.0
        self._latest_digest: int | None = None
        self._spam: dict[str, Check] = {}
        self._last_draft: tuple[object, Draft] | None = None
        self._lock = threading.Lock()

    def gathered(self, refresh: bool = False) -> GatherResult:
        """The candidate articles: read from the sources at most every DRAFT_MAX_AGE, and
        again once a digest has gone out; never one that is in a digest already."""
        latest = self._newest_digest()
        with self._lock:
            stale = time.monotonic() - self._gathered_at > DRAFT_MAX_AGE or \
                latest != self._latest_digest
            if self._gathered is None or refresh or stale:
                with make_fetcher(self.config) as fetcher:
                    self._gathered = gather(self.config, self.state, fetcher, record=False)
                self._gathered_at, self._latest_digest = time.monotonic(), latest
            gathered = self._gathered
        sent = self.state.ledger.sent_urls(a.url for a in gathered.articles)
        if sent:
            gathered = replace(gathered, articles=tuple(a for a in gathered.articles
                                                        if a.url not in sent))
        return gathered

    def _newest_digest(self) -> int | None:
        newest = self.state.ledger.recent_digests(1)
        return newest[0].digest.id if newest else None

    def draft(self, refresh: bool = False) -> Draft:
        """The draft as it stands now (built once per state of the articles and edits:
        the page and its preview frame ask for it one after the other)."""
        result = self.gathered(refresh)
        note = self.state.editorial.note()
        key = (id(result), self._gathered_at, tuple(sorted(
            self.state.editorial.article_edits().items())), note.text if note else "")
        with self._lock:
            if self._last_draft is not None and self._last_draft[0] == key:
                return self._last_draft[1]
        draft = self._build(result)
        with self._lock:
            self._last_draft = (key, draft)
        return draft

    def _build(self, result: GatherResult) -> Draft:
        now = utc_now()
        digest = compose_next(self.config, self.state, result.articles, now)
        rendered = render(self.config, digest)
        html, text = sample_parts(self.config, rendered)
        checks = preflight_digest(self.config, rendered, now, spam=False)
        checks = PreflightReport(checks.checks + (self._spam_check(rendered, now),))
        generated = {item.article.url: " ".join(
            summary_for(self.config, item.article).sentences)
            for item in digest.items if item.summary.method == "edited"}
        return Draft(digest=digest, rendered=rendered, html=html, text=text, checks=checks,
                     candidates=result.articles, generated=generated)

    def _spam_check(self, rendered: RenderedDigest, now: datetime) -> Check:
        fingerprint = hashlib.sha256(rendered.html.encode()).hexdigest()
        with self._lock:
            known = self._spam.get(fingerprint)
            if known is None:
                self._spam = {fingerprint: PENDING}
                threading.Thread(target=self._score, args=(fingerprint, rendered, now),
                                 name="desk-spam-score", daemon=True).start()
        return known or PENDING

    def _score(self, fingerprint: str, rendered: RenderedDigest, now: datetime) -> None:
        # Wait until the editor pauses: SpamAssassin takes a core for a second or two, and
        # a draft changed again meanwhile needs no score.
        time.sleep(SPAM_SETTLE_SECONDS)
        with self._lock:
            if fingerprint not in self._spam:
                return
        try:
            check = spam_check(self.config, rendered, now)
        except DigestError as exc:
            check = Check("spam", "warning", f"no score ({exc})")
        with self._lock:
            if fingerprint in self._spam:
                self._spam[fingerprint] = check

    def generated_summary(self, url: str) -> str:
        """The summary the summariser writes for a candidate article."""
        article = next(a for a in self.gathered().articles if a.url == url)
        return " ".join(summary_for(self.config, article).sentences)

    def edit_article(self, url: str, action: str, who: str, *, headline: str = "",
                     summary: str = "") -> str:
        """Apply one of ARTICLE_ACTIONS to a candidate article; what to tell the editor."""
        if action not in ARTICLE_ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if url not in {a.url for a in self.gathered().articles}:
            raise EditorialError("That article is no longer in the draft.")
        records, now = self.state.editorial, utc_now()
        if action in ("exclude", "include"):
            records.save_article_edit(url, now, who, excluded=int(action == "exclude"))
        elif action in ("pin", "unpin"):
            records.save_article_edit(url, now, who, pinned=int(action == "pin"))
        elif action in ("up", "down"):
            order = [item.article.url for item in self.draft().digest.items]
            for position, moved in enumerate(move(order, url, -1 if action == "up" else 1)):
                records.save_article_edit(moved, now, who, position=position)
        elif action == "edit":
            records.save_article_edit(url, now, who, headline=headline,
                                      text="" if summary == self.generated_summary(url)
                                      else summary)
        else:
            records.save_article_edit(url, now, who, headline="", text="")
        return ARTICLE_ACTIONS[action]

    def withdraw_approval(self) -> str:
        """An approval covers the draft as it was: a changed draft needs a new one."""
        if not self.state.editorial.withdraw_approval(utc_now()):
            return ""
        return " The approval was withdrawn: approve the changed draft again."
