"""digest.state.subscribers: one normalisation for every lookup, opaque token ids, and a
forget that leaves nothing behind in the ledger either."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.models import Article, RenderedDigest
from digest.state import State

NOW = datetime(2026, 12, 1, 7, tzinfo=UTC)


def test_every_subscriber_gets_an_opaque_unique_token_id(state: State) -> None:
    state.subscribers.add("ada@example.org", "Ada", NOW)
    state.subscribers.add("bob@example.org", "Bob", NOW)
    ada, bob = (state.subscribers.get(e) for e in ("ada@example.org", "bob@example.org"))
    assert ada is not None and bob is not None
    assert ada.token_id and ada.token_id != bob.token_id and "ada" not in ada.token_id
    found = state.subscribers.by_token(ada.token_id)
    assert found is not None and found.email == "ada@example.org"
    assert state.subscribers.by_token("no-such-token") is None


def test_forget_of_a_non_ascii_mixed_case_address_wipes_its_delivery_rows(
        state: State) -> None:
    state.subscribers.add("Élodie@Example.org", "Élodie", NOW)
    article = Article(url="https://n.example/a", title="A", source_name="N", published=None,
                      paragraphs=("p",))
    state.ledger.create_digest(RenderedDigest("S", "h", "t"), [article],
                               state.subscribers.iter_active(), NOW)
    assert len(state.subscribers.show("ÉLODIE@example.org").deliveries) == 1  # type: ignore[union-attr]
    assert state.subscribers.forget("élodie@EXAMPLE.ORG", NOW)
    shown = state.subscribers.show("Élodie@Example.org")
    assert shown is not None and shown.subscriber is None and shown.deliveries == ()
    with state.db.connect() as conn:
        rows = conn.exec_driver_sql("SELECT email, name FROM deliveries").all()
    assert all("lodie" not in email.lower() and name == "" for email, name in rows)


def test_the_status_lookup_sees_an_unsubscribe_committed_elsewhere(state: State) -> None:
    state.subscribers.add("ada@example.org", "Ada", NOW)
    connection = state.db.raw_connection()
    try:
        lookup = state.subscribers.status_lookup(connection)
        assert lookup.is_active("ADA@example.org")
        state.subscribers.set_status("ada@example.org", "unsubscribed",
                                     NOW + timedelta(minutes=1), "one-click unsubscribe")
        assert not lookup.is_active("ada@example.org")
    finally:
        connection.close()
