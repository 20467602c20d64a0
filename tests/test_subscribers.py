"""The subscriber list in the state database, and CSV as its exchange format."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.errors import SubscriberError
from digest.state import open_url
from digest.state.subscribers import SubscriberRecords, SubscriberReport
from digest.subscribers import (
    AddressChecker,
    address_hash,
    check_address,
    export_csv,
    import_csv,
    parse_csv,
    sync_file,
)

NOW = datetime(2026, 11, 26, 7, tzinfo=UTC)


@pytest.fixture
def roster(tmp_path: Path) -> Iterator[SubscriberRecords]:
    with open_url(f"sqlite:///{tmp_path / 'state.sqlite3'}") as state:
        yield state.subscribers


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def active(roster: SubscriberRecords) -> list[tuple[str, str]]:
    return [(s.email, s.name) for s in roster.iter_active()]


def test_csv_with_just_email_and_name_imports_active_subscribers(roster: SubscriberRecords,
                                                                  tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "email,name\nada@example.org,Ada Lovelace\n"
                                        "yuri@example.net,Юрий\n")
    result = import_csv(roster, source, NOW)
    assert (result.added, result.updated, result.skipped) == (2, 0, ())
    assert active(roster) == [("ada@example.org", "Ada Lovelace"), ("yuri@example.net", "Юрий")]


def test_bad_rows_are_reported_with_their_line_and_skipped(roster: SubscriberRecords,
                                                           tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "email,name\nada@example.org,Ada\nnot-an-address,Bob\n"
                                        "ADA@example.org,Ada again\ncy@example.org,Cy\n")
    result = import_csv(roster, source, NOW)
    assert result.added == 2 and len(result.skipped) == 2
    assert result.skipped[0].startswith(f"{source}: line 3: 'not-an-address' is not a valid")
    assert result.skipped[1] == f"{source}: line 4: duplicate of an earlier row; merged"


def test_import_is_idempotent(roster: SubscriberRecords, tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "email,name\nada@example.org,Ada\n")
    import_csv(roster, source, NOW)
    again = import_csv(roster, source, NOW)
    assert (again.added, again.updated) == (0, 0)
    assert len(list(roster.rows())) == 1


def test_import_never_reactivates_a_suppressed_address(roster: SubscriberRecords,
                                                       tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "email,name\nada@example.org,Ada\nbob@example.org,Bob\n"
                                        "cy@example.org,Cy\n")
    import_csv(roster, source, NOW)
    roster.set_status("ada@example.org", "unsubscribed", NOW, "one-click unsubscribe")
    roster.set_status("bob@example.org", "bounced", NOW, "550 no such user")
    roster.set_status("cy@example.org", "complained", NOW, "feedback loop")
    result = import_csv(roster, source, NOW)
    assert result.suppressed == 3 and active(roster) == []
    forced = import_csv(roster, source, NOW, reactivate=True)
    assert forced.updated == 3 and len(active(roster)) == 3


def test_header_without_email_column_is_refused(roster: SubscriberRecords, tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "address,name\nada@example.org,Ada\n")
    with pytest.raises(SubscriberError, match=r"in.csv: line 1: header row must have"):
        import_csv(roster, source, NOW)


def test_add_remove_export_round_trip(roster: SubscriberRecords) -> None:
    assert roster.add("Ada@Example.org", "Ada", NOW) == "added"
    assert roster.add("ada@example.org", "", NOW) == "unchanged"
    assert roster.get("ADA@EXAMPLE.ORG").email == "Ada@Example.org"  # kept as typed
    assert roster.add("bob@example.org", "Bob", NOW) == "added"
    out = io.StringIO()
    assert export_csv(roster, out) == 2
    lines = out.getvalue().splitlines()
    assert lines[0] == "email,name,status,subscribed_at,format"
    assert "Ada@Example.org,Ada,active,2026-11-26T07:00:00+00:00,html" in lines
    assert roster.remove("bob@example.org", NOW)
    assert active(roster) == [("Ada@Example.org", "Ada")]
    assert roster.add("bob@example.org", "Bob", NOW) == "suppressed"
    assert roster.add("bob@example.org", "Bob", NOW, reactivate=True) == "updated"


def test_adding_a_bad_address_is_refused(roster: SubscriberRecords) -> None:
    with pytest.raises(SubscriberError, match="'ada@' is not a valid email address"):
        roster.add("ada@", "", NOW)


def test_every_change_is_recorded_with_its_cause(roster: SubscriberRecords) -> None:
    roster.add("ada@example.org", "Ada", NOW, status="pending", cause="web form")
    roster.set_status("ada@example.org", "active", NOW, "confirmed by link")
    roster.set_status("ada@example.org", "unsubscribed", NOW, "one-click unsubscribe")
    shown = roster.show("ada@example.org")
    assert shown is not None and shown.suppressed
    assert [(e.status, e.cause) for e in shown.events] == [
        ("pending", "web form"), ("active", "confirmed by link"),
        ("unsubscribed", "one-click unsubscribe")]


def test_forget_erases_everything_but_a_hash(roster: SubscriberRecords, tmp_path: Path) -> None:
    roster.add("ada@example.org", "Ada Lovelace", NOW)
    assert roster.forget("ADA@example.org", NOW)
    assert roster.get("ada@example.org") is None
    assert roster.show("ada@example.org") == SubscriberReport(subscriber=None, events=(),
                                                              deliveries=(), suppressed=True)
    assert roster.is_suppressed("ada@example.org")
    assert roster.add("ada@example.org", "Ada", NOW) == "suppressed"
    database = (tmp_path / "state.sqlite3").read_bytes()
    wal = tmp_path / "state.sqlite3-wal"
    database += wal.read_bytes() if wal.exists() else b""
    assert b"Lovelace" not in database and b"ada@example.org" not in database.lower()
    assert address_hash("ada@example.org").encode() in database


def test_the_configured_file_is_read_in_when_it_changes(roster: SubscriberRecords,
                                                       tmp_path: Path) -> None:
    path = write(tmp_path / "subscribers.csv", "email,name\nada@example.org,Ada\n")
    assert sync_file(roster, path, NOW).added == 1
    assert sync_file(roster, path, NOW) is None  # unchanged: not read again
    write(path, "email,name\nada@example.org,Ada\nbob@example.org,Bob\n")
    assert sync_file(roster, path, NOW).added == 1
    assert len(active(roster)) == 2


def test_csv_parsing_keeps_names_and_formats() -> None:
    entries, problems = parse_csv("email,name,format\na@example.org,  A  B ,text\n"
                                  "b@example.org,B,pdf\n", "x.csv")
    assert entries[0].subscriber.name == "A B" and entries[0].format == "text"
    assert problems == ["x.csv: line 3: unknown format 'pdf' (html or text); row skipped"]


ONE_IMPORT = AddressChecker()  # one cache across the examples, as across a file's rows
LOCALS = st.one_of(st.sampled_from(["ada", "Ada.Lovelace", "a+tag", "x_y-z", "postmaster",
                                    "a..b", ".a", "a.", "", "a b", "ü", '"q"', "a@b", "a" * 64,
                                    "a" * 65, "a" * 240]),
                   st.text(alphabet="aZ09._%+-!@ \"ü", max_size=12))
DOMAINS = st.one_of(st.sampled_from(["example.org", "EXAMPLE.org", "xn--bcher-kva.example",
                                     "localhost", "a.invalid", "-a.org", "a-.org", "a..org",
                                     "example", "1.2.3.4", "[1.2.3.4]", "bücher.example",
                                     "ex_ample.org", "a.b.c.d.example.com", "",
                                     ("a" * 63 + ".") * 3 + "org", "a" * 64 + ".org"]),
                    st.text(alphabet="az09.-_ü[]", max_size=20))


@settings(max_examples=600, deadline=None)
@given(local=LOCALS, domain=DOMAINS, spaces=st.sampled_from(["", " "]))
def test_the_import_checks_addresses_exactly_as_email_validator_does(
        local: str, domain: str, spaces: str) -> None:
    address = f"{spaces}{local}@{domain}{spaces}"
    try:
        expected: str | SubscriberError = check_address(address)
    except SubscriberError as exc:
        expected = exc
    try:
        got: str | SubscriberError = ONE_IMPORT(address)
    except SubscriberError as exc:
        got = exc
    assert str(got) == str(expected) and type(got) is type(expected)


def test_an_import_checks_each_domain_once(tmp_path: Path, roster: SubscriberRecords,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import digest.subscribers as lists

    checked: list[str] = []
    real = lists.validate_email

    def counting(address: str, **options: bool) -> object:
        checked.append(address)
        return real(address, **options)

    monkeypatch.setattr(lists, "validate_email", counting)
    rows = "".join(f"reader{i}@{('example.org', 'example.net')[i % 2]},R\n" for i in range(500))
    source = write(tmp_path / "in.csv", "email,name\n" + rows + "bad@-x.org,B\n")
    result = import_csv(roster, source, NOW)
    assert result.added == 500
    assert result.skipped == (f"{source}: line 502: 'bad@-x.org' is not a valid email "
                              "address: An email address cannot have a hyphen immediately "
                              "after the @-sign.; row skipped",)
    assert len(checked) <= 4  # two domains, and the bad row checked in full
