"""digest.state.sources and digest.state.runs: what is remembered of each source, and the
run log with the times a monitor asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.models import FeedEntry
from digest.state import State
from digest.state.runs import Run
from tests.test_state_ledger import ARTICLE, PEOPLE, RENDERED

NOW = datetime(2026, 12, 1, 7, tzinfo=UTC)
FEED = "https://n.example/feed"


def test_failures_count_up_and_a_success_clears_them(state: State) -> None:
    assert [state.sources.record_failure(FEED, "refused", NOW) for _ in range(3)] == [1, 2, 3]
    assert state.sources.state(FEED).failing
    state.sources.record_success(FEED, '"e1"', "Tue", NOW, listed=4)
    remembered = state.sources.state(FEED)
    assert (remembered.etag, remembered.listed, remembered.consecutive_failures) == \
        ('"e1"', 4, 0)


def test_remembered_entries_last_until_their_article_is_in_a_digest(state: State) -> None:
    entries = [FeedEntry(url=ARTICLE.url, title="A", source_name="N",
                         published=NOW, categories=("Spacecraft",)),
               FeedEntry(url="https://n.example/b", title="B", source_name="N")]
    state.sources.remember_entries(FEED, entries, NOW)
    assert [e.url for e in state.sources.remembered_entries(FEED)] == [ARTICLE.url,
                                                                       "https://n.example/b"]
    assert state.sources.remembered_entries(FEED)[0].published == NOW
    state.ledger.create_digest(RENDERED, [ARTICLE], PEOPLE, NOW)
    assert [e.url for e in state.sources.remembered_entries(FEED)] == ["https://n.example/b"]
    state.sources.forget_entries_before(NOW + timedelta(seconds=1))
    assert state.sources.remembered_entries(FEED) == []


def test_runs_come_back_newest_first_with_their_duration(state: State) -> None:
    state.runs.record(Run(kind="gather", outcome="gathered", started_at=NOW,
                          finished_at=NOW + timedelta(seconds=3), articles=5))
    state.runs.record(Run(kind="digest", outcome="skipped", started_at=NOW, slot=NOW,
                          finished_at=NOW + timedelta(seconds=1), reason="nothing new"))
    latest, earlier = state.runs.recent()
    assert (latest.kind, latest.reason, latest.slot) == ("digest", "nothing new", NOW)
    assert earlier.duration_seconds == 3.0


def test_health_times_are_the_last_good_gather_and_send(state: State) -> None:
    assert state.runs.health_times().last_send_at is None
    state.sources.record_success(FEED, "", "", NOW, listed=1)
    digest_id = state.ledger.create_digest(RENDERED, [ARTICLE], PEOPLE, NOW)
    assert isinstance(digest_id, int)
    state.ledger.set_digest_status(digest_id, "sending")
    connection = state.db.raw_connection()
    try:
        for r in state.ledger.claim_deliveries(digest_id, "h:1:a", 9, timedelta(seconds=9), NOW):
            state.ledger.writer(connection).mark(r.delivery_id, status="sent", reply="250",
                                                 code=250, attempts=1, now=NOW)
    finally:
        connection.close()
    state.ledger.finish_digest(digest_id, NOW + timedelta(minutes=1))
    times = state.runs.health_times()
    assert times.last_gather_at == NOW and times.last_send_at == NOW + timedelta(minutes=1)
