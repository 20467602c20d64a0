"""The draft the editor's desk shows: the next digest built the way a run builds it, from
candidate articles gathered now and then (not on every click), with the editor's stored
changes applied on every view."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

from digest.build import compose_next, preflight_digest, render, sample_parts
from digest.clock import utc_now
from digest.compose import summary_for
from digest.config import Config
from digest.draft import move
from digest.errors import EditorialError
from digest.gather import gather, make_fetcher
from digest.models import Article, Digest, GatherResult, RenderedDigest
from digest.preflight import PreflightReport
from digest.state import State

DRAFT_MAX_AGE = 600.0  # seconds before the desk gathers the sources again on its own
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
    """Gathers the candidate articles now and then and builds the draft from them."""

    def __init__(self, config: Config, state: State) -> None:
        self.config, self.state = config, state
        self._gathered: GatherResult | None = None
        self._gathered_at = 0.0
        self._checks: dict[str, PreflightReport] = {}
        self._lock = threading.Lock()

    def gathered(self, refresh: bool = False) -> GatherResult:
        """The candidate articles, read from the sources at most every DRAFT_MAX_AGE."""
        with self._lock:
            stale = time.monotonic() - self._gathered_at > DRAFT_MAX_AGE
            if self._gathered is None or refresh or stale:
                with make_fetcher(self.config) as fetcher:
                    self._gathered = gather(self.config, self.state, fetcher, record=False)
                self._gathered_at = time.monotonic()
            return self._gathered

    def draft(self, refresh: bool = False) -> Draft:
        """The draft as it stands now."""
        result = self.gathered(refresh)
        now = utc_now()
        digest = compose_next(self.config, self.state, result.articles, now)
        rendered = render(self.config, digest)
        html, text = sample_parts(self.config, rendered)
        fingerprint = hashlib.sha256(html.encode()).hexdigest()
        with self._lock:
            checks = self._checks.get(fingerprint)
        if checks is None:
            checks = preflight_digest(self.config, rendered, now)
            with self._lock:
                self._checks = {fingerprint: checks}
        generated = {item.article.url: " ".join(
            summary_for(self.config, item.article).sentences)
            for item in digest.items if item.summary.method == "edited"}
        return Draft(digest=digest, rendered=rendered, html=html, text=text, checks=checks,
                     candidates=result.articles, generated=generated)

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
