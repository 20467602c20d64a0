"""What a report does. Matching: the signed VERP address it came back to names the
delivery (else a Message-ID of ours it quotes); forged or unknown ids are only counted.
Thresholds: a complaint marks the address `complained` at once, `hard_limit` hard bounces
or `soft_limit` soft ones within `soft_days` mark it `bounced`, each with a cause that
holds the status code and the server's words. Rates: a digest's hard bounces and
complaints as a share of its messages sent, and the alert when one passes its limit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.bounces.parse import Report
from digest.bounces.verp import delivery_of
from digest.config import Config
from digest.state import State
from digest.state.bounces import BounceTally, Decide, Decision, History, NewBounce
from digest.state.ledger import Addressee

ACTIVE = ("active", "pending")
Lookup = Callable[[int | None, Sequence[str]], Addressee | None]


@dataclass(frozen=True)
class Thresholds:
    """The [bounces] limits."""

    hard_limit: int
    soft_limit: int
    soft_days: float
    hard_rate: float
    complaint_rate: float

    @classmethod
    def of(cls, config: Config) -> Thresholds:
        """The thresholds a config sets."""
        b = config.bounces
        return cls(b.hard_limit, b.soft_limit, b.soft_days, b.hard_rate_alert,
                   b.complaint_rate_alert)

    def soft_since(self, now: datetime) -> datetime:
        """Where the window of counted soft bounces begins."""
        return now - timedelta(days=self.soft_days)


def matched(report: Report, *, source: str, now: datetime, keys: Sequence[bytes],
            lookup: Lookup) -> NewBounce:
    """The report as it will be recorded: which delivery it is about, and whether it counts
    (a bounce or complaint about one of ours) or why not."""
    ids = [i for i in (delivery_of(a, keys) for a in report.verp) if i is not None]
    target = lookup(ids[0] if ids else None, report.message_ids)
    if target is None:
        outcome = "unknown" if ids else "forged" if report.verp else "unmatched"
    elif report.is_bounce or report.kind == "complaint":
        outcome = "counted"
    else:
        outcome = "ignored"
    why = {"unknown": "a signed id naming no delivery of this database",
           "forged": "its bounce address is not one we signed (forged or mangled)",
           "unmatched": "it names no delivery of ours",
           "ignored": f"{report.kind}: nothing to do"}.get(outcome, "")
    return NewBounce(fingerprint=report.fingerprint, received_at=now, source=source,
                     kind=report.kind, outcome=outcome, status=report.status,
                     diagnostic=report.diagnostic or report.problem, action=why,
                     target=target)


def decider(report: Report, digest_id: int | None, limits: Thresholds) -> Decide:
    """What the report does to its subscriber, given their history."""
    return lambda history: decide(report, digest_id, history, limits)


def decide(report: Report, digest_id: int | None, history: History,
           limits: Thresholds) -> Decision:
    """A new status when a threshold is reached, with the code and text in its cause."""
    days = f"{limits.soft_days:g} days"
    tally = f"{history.hard} hard, {history.soft} soft within {days}"
    if history.status not in ACTIVE:
        return Decision(action=f"counted ({tally}); already {history.status or 'off the list'}")
    what = describe(report, digest_id)
    if report.kind == "complaint":
        return Decision("complained", what, "marked complained and suppressed")
    if report.kind == "hard" and history.hard >= limits.hard_limit:
        return Decision("bounced", f"{history.hard} hard bounce(s), last: {what}",
                        "marked bounced and suppressed")
    if report.kind == "soft" and history.soft >= limits.soft_limit:
        return Decision("bounced", f"{history.soft} soft bounces within {days}, last: {what}",
                        "marked bounced and suppressed")
    return Decision(action=f"counted ({tally})")


def describe(report: Report, digest_id: int | None) -> str:
    """'hard bounce 5.1.1 (digest 3): unknown user …' or 'spam complaint (digest 3): …'."""
    name = "spam complaint" if report.kind == "complaint" else f"{report.kind} bounce"
    code = f" {report.status}" if report.status else ""
    where = f" (digest {digest_id})" if digest_id is not None else ""
    text = report.diagnostic or report.problem
    return f"{name}{code}{where}" + (f": {text}" if text else "")


# --- rates and alerts -------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestRates:
    """One digest's bounces and complaints, and their share of its messages sent."""

    digest_id: int
    sent: int
    hard: int = 0
    soft: int = 0
    complaints: int = 0

    @property
    def hard_rate(self) -> float:
        return self.hard / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0


def rates(state: State, digest_ids: Sequence[int]) -> dict[int, DigestRates]:
    """Bounces and complaints of these digests, with their rates."""
    tallies, sent = state.bounces.tallies(digest_ids), state.bounces.sent(digest_ids)
    return {d: DigestRates(d, sent.get(d, 0), t.hard, t.soft, t.complaints)
            for d in digest_ids for t in [tallies.get(d, BounceTally())]}


def rate_alerts(state: State, limits: Thresholds, digest_ids: Sequence[int],
                now: datetime) -> list[tuple[str, str]]:
    """(subject, body) of each rate alert now due: once per digest and kind."""
    found = []
    for r in rates(state, sorted(set(digest_ids))).values():
        for kind, rate, limit, count in (("hard", r.hard_rate, limits.hard_rate, r.hard),
                                         ("complaint", r.complaint_rate, limits.complaint_rate,
                                          r.complaints)):
            if rate > limit and state.bounces.claim_alert(r.digest_id, kind, now):
                found.append(alert(r, kind, rate, limit, count))
    return found


def alert(r: DigestRates, kind: str, rate: float, limit: float,
          count: int) -> tuple[str, str]:
    """The wording of one rate alert."""
    what = "hard bounces" if kind == "hard" else "spam complaints"
    subject = f"digest {r.digest_id}: {what} at {rate:.2%} of messages sent"
    body = (f"Digest {r.digest_id} went to {r.sent} addresses; {count} of them came back as "
            f"{what} ({rate:.2%}, above the {limit:.2%} set by [bounces] "
            f"{'hard_rate_alert' if kind == 'hard' else 'complaint_rate_alert'}).\n"
            "Those addresses are no longer mailed. Mailbox providers (Gmail, Yahoo) send a "
            "sender's mail to spam when its complaint rate stays above 0.3%: check how "
            "these readers joined the list, and `digest status` for the other digests.")
    return subject, body
