"""digest.state.editorial: per-article edits and the typed marks on the next digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from digest.state import State
from digest.state.schema import editor_sessions

NOW = datetime(2026, 12, 1, 7, tzinfo=UTC)


def test_a_second_hold_replaces_the_first_and_says_so(state: State) -> None:
    assert state.editorial.set_hold("ed", "launch slipped", NOW) is None
    previous = state.editorial.set_hold("bo", "legal check", NOW + timedelta(minutes=1))
    assert previous is not None and previous.by == "ed" and previous.reason == "launch slipped"
    hold = state.editorial.hold()
    assert hold is not None and (hold.by, hold.reason) == ("bo", "legal check")


def test_a_used_hold_is_spent_but_remembered(state: State) -> None:
    state.editorial.set_hold("ed", "", NOW)
    state.editorial.use_hold(NOW, NOW)
    assert state.editorial.hold() is None
    used = state.editorial.last_used_hold()
    assert used is not None and used.used_slot == NOW


def test_an_approval_covers_its_articles_until_used_or_withdrawn(state: State) -> None:
    state.editorial.approve("ed", ["https://n.example/1", "https://n.example/2"], NOW)
    approval = state.editorial.approval()
    assert approval is not None and approval.articles == ("https://n.example/1",
                                                          "https://n.example/2")
    assert state.editorial.withdraw_approval(NOW)
    assert state.editorial.approval() is None and not state.editorial.withdraw_approval(NOW)
    state.editorial.approve("ed", ["https://n.example/3"], NOW)
    state.editorial.use_approval(7, NOW)
    used = state.editorial.last_used_approval()
    assert state.editorial.approval() is None and used is not None
    assert used.used_digest_id == 7


def test_the_note_opens_one_digest(state: State) -> None:
    state.editorial.set_note("Hello", "ed", NOW)
    note = state.editorial.note()
    assert note is not None and note.text == "Hello"
    state.editorial.use_note(3, NOW)
    assert state.editorial.note() is None
    state.editorial.set_note("", "ed", NOW)
    assert state.editorial.note() is None


def test_the_waiting_slot_is_typed_and_can_end(state: State) -> None:
    state.editorial.set_waiting(NOW, NOW + timedelta(minutes=5))
    waiting = state.editorial.waiting()
    assert waiting is not None and waiting.slot == NOW
    assert waiting.since == NOW + timedelta(minutes=5)
    state.editorial.end_waiting(NOW)
    assert state.editorial.waiting() is None


def test_sessions_end_on_logout_and_only_a_hash_is_stored(state: State) -> None:
    sid = state.editorial.open_session("ed", NOW + timedelta(hours=1), NOW)
    found = state.editorial.session(sid)
    assert found is not None and found.editor == "ed"
    with state.db.connect() as conn:
        stored = conn.execute(select(editor_sessions.c.sid_hash)).scalars().all()
    assert sid not in stored and len(stored) == 1
    state.editorial.end_session(sid)
    assert state.editorial.session(sid) is None
    assert state.editorial.session("") is None
