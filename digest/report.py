"""What became of a sent digest: delivered, failed, bounced, complaints, readers who
unsubscribed after it, opens and clicks per article, and the audience over time. The desk,
`digest status --json` and `digest report` all show these same figures."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from digest.bounces.policy import rates
from digest.models import TrackingMode
from digest.state import State
from digest.state.engagement import ArticleTally, AudiencePoint, Tally


@dataclass(frozen=True)
class DigestReport:
    """One digest's figures."""

    digest_id: int
    subject: str
    created_at: datetime
    status: str
    tracking: TrackingMode
    recipients: int
    delivered: int
    failed: int
    pending: int
    bounced: int
    complaints: int
    unsubscribed_after: int
    opens: Tally
    articles: tuple[ArticleTally, ...]

    @property
    def clicks(self) -> Tally:
        """Every article's clicks together."""
        return Tally(sum(a.clicks.people for a in self.articles),
                     sum(a.clicks.automated for a in self.articles))

    def as_json(self) -> dict[str, Any]:
        """The report as `digest status --json` and `digest report --json` print it."""
        return {
            "digest_id": self.digest_id, "subject": self.subject,
            "created_at": self.created_at.isoformat(), "status": self.status,
            "tracking": {"clicks": self.tracking.clicks, "opens": self.tracking.opens,
                         "per_subscriber": self.tracking.per_reader},
            "recipients": self.recipients, "delivered": self.delivered,
            "failed": self.failed, "pending": self.pending, "bounced": self.bounced,
            "complaints": self.complaints, "unsubscribed_after": self.unsubscribed_after,
            "opens": asdict(self.opens), "clicks": asdict(self.clicks),
            "articles": [{"position": a.position, "title": a.title,
                          "source": a.source_name, "url": a.url,
                          "clicks": a.clicks.people, "automated_clicks": a.clicks.automated}
                         for a in self.articles],
        }


CSV_COLUMNS = ("digest_id", "created_at", "row", "position", "title", "source", "url",
               "recipients", "delivered", "failed", "bounced", "complaints",
               "unsubscribed_after", "opens", "automated_opens", "clicks", "automated_clicks")


def report_csv(report: DigestReport) -> str:
    """The report as CSV: a first row for the whole digest, then one row per article."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    common = [report.digest_id, report.created_at.isoformat()]
    total = report.clicks
    writer.writerow([*common, "digest", "", _cell(report.subject), "", "",
                     report.recipients, report.delivered, report.failed, report.bounced,
                     report.complaints, report.unsubscribed_after, report.opens.people,
                     report.opens.automated, total.people, total.automated])
    for a in report.articles:
        writer.writerow([*common, "article", a.position + 1, _cell(a.title),
                         _cell(a.source_name), _cell(a.url), "", "", "", "", "", "", "", "",
                         a.clicks.people, a.clicks.automated])
    return out.getvalue()


def _cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: a leading =, +, - or @ would be a formula
    (a headline from a feed must not run in the editor's spreadsheet)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def digest_report(state: State, digest_id: int) -> DigestReport | None:
    """The figures of one digest, or None when there is no digest with that id."""
    stored = state.ledger.get_digest(digest_id) if 0 < digest_id < 2**63 else None
    if stored is None:
        return None
    counts = state.ledger.delivery_counts(digest_id)
    bounce = rates(state, [digest_id])[digest_id]
    engagement = state.engagement
    return DigestReport(
        digest_id=digest_id, subject=stored.subject, created_at=stored.created_at,
        status=stored.status, tracking=stored.tracking, recipients=counts.total,
        delivered=counts.sent, failed=counts.failed, pending=counts.unsent,
        bounced=bounce.hard + bounce.soft, complaints=bounce.complaints,
        unsubscribed_after=engagement.unsubscribed_after(
            digest_id, stored.created_at, engagement.next_digest_after(digest_id)),
        opens=engagement.open_tally(digest_id),
        articles=tuple(engagement.article_clicks(digest_id)))


def audience(state: State) -> list[AudiencePoint]:
    """Readers each of the latest sent digests reached, oldest first."""
    return state.engagement.audience()
