"""digest.state.ledger: digests and their deliveries, committed together; Message-IDs fixed
before the first attempt; leases that keep two senders off one row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.models import Article, RenderedDigest, Subscriber
from digest.state import State
from digest.state.ledger import Created

NOW = datetime(2026, 12, 1, 7, tzinfo=UTC)
RENDERED = RenderedDigest(subject="S", html="<p>h</p>", text="t")
ARTICLE = Article(url="https://n.example/a", title="A", source_name="N", published=None,
                  paragraphs=("p",))
PEOPLE = [Subscriber("ada@example.org", "Ada", token_id="t-ada"),
          Subscriber("Élodie@Example.org", "Élodie", token_id="t-elodie")]


def _digest(state: State, slot: datetime | None = None) -> int:
    created = state.ledger.create_digest(RENDERED, [ARTICLE], PEOPLE, NOW, slot=slot,
                                         message_domain="news.example")
    assert isinstance(created, int)
    return created


def test_a_digest_without_recipients_writes_nothing(state: State) -> None:
    assert state.ledger.create_digest(RENDERED, [ARTICLE], [], NOW) is Created.NO_RECIPIENTS
    assert state.ledger.recent_digests() == []
    assert state.ledger.sent_urls([ARTICLE.url]) == set()


def test_a_slot_gets_one_digest(state: State) -> None:
    _digest(state, slot=NOW)
    again = state.ledger.create_digest(RENDERED, [ARTICLE], PEOPLE, NOW, slot=NOW)
    assert again is Created.SLOT_TAKEN
    assert len(state.ledger.recent_digests()) == 1


def test_message_ids_are_unique_and_the_same_on_every_claim(state: State) -> None:
    first, second = _digest(state), _digest(state)
    lease = timedelta(seconds=30)
    claimed = state.ledger.claim_deliveries(first, "h:1:a", 10, lease, NOW)
    ids = {r.email: r.message_id for r in claimed}
    assert len(set(ids.values())) == 2
    assert all(i.startswith(f"<digest-{first}.") and i.endswith("@news.example>")
               for i in ids.values())
    # The lease runs out unsent: another sender claims the same rows, same Message-IDs.
    again = state.ledger.claim_deliveries(first, "h:2:b", 10, lease, NOW + 2 * lease)
    assert {r.email: r.message_id for r in again} == ids
    other = state.ledger.claim_deliveries(second, "h:1:a", 10, lease, NOW)
    assert not set(ids.values()) & {r.message_id for r in other}
    assert {r.token_id for r in claimed} == {"t-ada", "t-elodie"}


def test_a_held_lease_keeps_other_senders_off_until_it_is_released(state: State) -> None:
    digest_id = _digest(state)
    lease = timedelta(minutes=2)
    assert len(state.ledger.claim_deliveries(digest_id, "h:1:a", 10, lease, NOW)) == 2
    assert state.ledger.claim_deliveries(digest_id, "h:2:b", 10, lease, NOW) == []
    assert state.ledger.release_leases("h:1:a") == 2
    assert len(state.ledger.claim_deliveries(digest_id, "h:2:b", 10, lease, NOW)) == 2


def test_outcomes_are_committed_by_delivery_and_finish_the_digest(state: State) -> None:
    digest_id = _digest(state)
    claimed = state.ledger.claim_deliveries(digest_id, "h:1:a", 10, timedelta(minutes=1), NOW)
    connection = state.db.raw_connection()
    try:
        writer = state.ledger.writer(connection)
        assert not state.ledger.finish_digest(digest_id, NOW)
        for recipient in claimed:
            writer.mark(recipient.delivery_id, status="failed" if "lodie" in recipient.email
                        else "sent", reply="550 no" if "lodie" in recipient.email else "250",
                        code=550 if "lodie" in recipient.email else 250, attempts=1, now=NOW)
    finally:
        connection.close()
    counts = state.ledger.delivery_counts(digest_id)
    assert (counts.sent, counts.failed, counts.unsent) == (1, 1, 0)
    assert state.ledger.finish_digest(digest_id, NOW)
    # Hard failures are counted by the address's key, whatever its case.
    assert state.ledger.hard_failures("élodie@EXAMPLE.org") == 1


def test_deferred_deliveries_expire_once_the_digest_is_old_enough(state: State) -> None:
    digest_id = _digest(state)
    claimed = state.ledger.claim_deliveries(digest_id, "h:1:a", 10, timedelta(minutes=1), NOW)
    connection = state.db.raw_connection()
    try:
        for recipient in claimed:
            state.ledger.writer(connection).mark(recipient.delivery_id, status="deferred",
                                                 reply="451 later", code=451, attempts=3,
                                                 now=NOW)
    finally:
        connection.close()
    assert state.ledger.expire_deferred(digest_id, timedelta(hours=48), NOW) == 0
    assert state.ledger.expire_deferred(digest_id, timedelta(hours=48),
                                        NOW + timedelta(hours=49)) == 2
    assert state.ledger.delivery_counts(digest_id).failed == 2
