from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest import subscribers
from digest.errors import SubscriberError

NOW = datetime(2026, 11, 26, 7, tzinfo=UTC)


def test_csv_with_just_email_and_name_imports_active_subscribers(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("email,name\nada@example.org,Ada Lovelace\nyuri@example.net,Юрий\n",
                      encoding="utf-8")
    target = tmp_path / "subscribers" / "list.csv"
    result = subscribers.import_csv(target, source, NOW)
    assert (result.added, result.updated, result.skipped) == (2, 0, ())
    active = subscribers.active_subscribers(target)
    assert [(s.email, s.name) for s in active] == [("ada@example.org", "Ada Lovelace"),
                                                   ("yuri@example.net", "Юрий")]


def test_bad_rows_are_reported_with_their_line_and_skipped(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("email,name\nada@example.org,Ada\nnot-an-address,Bob\n"
                      "ADA@example.org,Ada again\ncy@example.org,Cy\n", encoding="utf-8")
    target = tmp_path / "list.csv"
    result = subscribers.import_csv(target, source, NOW)
    assert result.added == 2
    assert len(result.skipped) == 2
    assert result.skipped[0].startswith(f"{source}: line 3: 'not-an-address' is not a valid")
    assert result.skipped[1] == f"{source}: line 4: duplicate of an earlier row; merged"


def test_import_is_idempotent(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("email,name\nada@example.org,Ada\n", encoding="utf-8")
    target = tmp_path / "list.csv"
    subscribers.import_csv(target, source, NOW)
    again = subscribers.import_csv(target, source, NOW)
    assert (again.added, again.updated) == (0, 0)
    assert len(subscribers.read_list(target)) == 1


def test_header_without_email_column_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("address,name\nada@example.org,Ada\n", encoding="utf-8")
    with pytest.raises(SubscriberError, match=r"in.csv: line 1: header row must have"):
        subscribers.import_csv(tmp_path / "list.csv", source, NOW)


def test_add_remove_and_export_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "list.csv"
    assert subscribers.add_subscriber(target, "ada@example.org", "Ada", NOW)
    assert not subscribers.add_subscriber(target, "ADA@example.org", "", NOW)
    assert subscribers.add_subscriber(target, "bob@example.org", "Bob", NOW)
    exported = subscribers.export_csv(target)
    assert exported.splitlines()[0] == "email,name,status,subscribed_at"
    assert "ada@example.org,Ada,active,2026-11-26T07:00:00+00:00" in exported
    assert subscribers.remove_subscriber(target, "Bob@Example.org")
    assert not subscribers.remove_subscriber(target, "bob@example.org")
    assert [s.email for s in subscribers.active_subscribers(target)] == ["ada@example.org"]


def test_adding_a_bad_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SubscriberError, match="'ada@' is not a valid email address"):
        subscribers.add_subscriber(tmp_path / "list.csv", "ada@", "", NOW)


def test_a_bad_row_in_the_list_is_skipped_with_a_warning(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "list.csv"
    target.write_text("email,name,status\nada@example.org,Ada,active\nbroken,X,active\n"
                      "bob@example.org,Bob,sleeping\n", encoding="utf-8")
    assert [s.email for s in subscribers.active_subscribers(target)] == ["ada@example.org"]
    assert f"{target}: line 3" in caplog.text and f"{target}: line 4: unknown status" in caplog.text


def test_unsubscribed_rows_are_not_mailed(tmp_path: Path) -> None:
    target = tmp_path / "list.csv"
    target.write_text("email,name,status\nada@example.org,Ada,unsubscribed\n", encoding="utf-8")
    assert subscribers.active_subscribers(target) == []
