"""The people: `digest subscribers …` for the list, `digest editor …` for desk accounts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from digest.cli.app import Context, cli, pass_context
from digest.errors import SubscriberError

if TYPE_CHECKING:
    from digest.state.subscribers import SubscriberRecords


@cli.group()
def subscribers() -> None:
    """Manage the subscriber list (kept in the state database; [subscribers] path is read
    into it whenever the file changes)."""


@contextmanager
def _list(ctx: Context) -> Iterator[SubscriberRecords]:
    from digest.clock import utc_now
    from digest.state import open_state
    from digest.subscribers import read_subscriber_file

    with open_state(ctx.config) as state:
        read_subscriber_file(ctx.config, state.subscribers, utc_now())
        yield state.subscribers


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option("--format", "fmt", type=click.Choice(["html", "text"]), default="html",
              show_default=True, help="HTML with a text part, or plain text only.")
@click.option("--reactivate", is_flag=True,
              help="Mail an address even though it unsubscribed, bounced or complained.")
@pass_context
def subscribers_add(ctx: Context, email: str, name: str, fmt: str, reactivate: bool) -> None:
    """Add an address as an active subscriber."""
    from digest.clock import utc_now

    with _list(ctx) as records:
        outcome = records.add(email, name, utc_now(), reactivate=reactivate, format=fmt)
    if outcome == "suppressed":
        raise SubscriberError(f"{email}: unsubscribed, bounced or complained earlier; not "
                              "added (pass --reactivate if they asked to be mailed again)")
    click.echo(f"{ {'unchanged': 'already subscribed'}.get(outcome, outcome)}: {email}")


@subscribers.command("remove")
@click.argument("email")
@pass_context
def subscribers_remove(ctx: Context, email: str) -> None:
    """Stop mailing an address (it becomes unsubscribed)."""
    from digest.clock import utc_now

    with _list(ctx) as records:
        if not records.remove(email, utc_now()):
            raise SubscriberError(f"{email}: not on the list (or already removed)")
    click.echo(f"removed: {email}")


@subscribers.command("list")
@pass_context
def subscribers_list(ctx: Context) -> None:
    """Print every subscriber with their status."""
    count = 0
    with _list(ctx) as records:
        for row in records.rows():
            click.echo(f"{row.email}\t{row.name}\t{row.status}")
            count += 1
    click.echo(f"{count} subscriber(s)", err=True)


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--reactivate", is_flag=True,
              help="Let rows re-activate addresses that unsubscribed, bounced or complained.")
@pass_context
def subscribers_import(ctx: Context, csv_file: Path, reactivate: bool) -> None:
    """Merge a CSV (columns email[,name,status,subscribed_at,format]) into the list."""
    from digest.clock import utc_now
    from digest.subscribers import import_csv

    with _list(ctx) as records:
        result = import_csv(records, csv_file, utc_now(), reactivate=reactivate)
    for problem in result.skipped:
        click.echo(f"warning: {problem}", err=True)
    from digest.subscribers import DELIMITERS

    click.echo(f"read {csv_file} as {DELIMITERS[result.delimiter]}-separated values")
    click.echo(f"imported: {result.added} added, {result.updated} updated, "
               f"{len(result.skipped)} skipped, {result.suppressed} left suppressed")


@subscribers.command("export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output.")
@pass_context
def subscribers_export(ctx: Context, out: Path | None) -> None:
    """Write the list as CSV (email,name,status,subscribed_at,format)."""
    from digest.subscribers import export_csv

    with _list(ctx) as records:
        if out:
            with out.open("w", encoding="utf-8", newline="") as handle:
                count = export_csv(records, handle)
            click.echo(f"exported {count} subscriber(s) to {out}", err=True)
        else:
            export_csv(records, sys.stdout)


@subscribers.command("show")
@click.argument("email")
@pass_context
def subscribers_show(ctx: Context, email: str) -> None:
    """Everything stored about one person."""
    from digest.cli.present import when

    with _list(ctx) as records:
        found = records.show(email)
    if found is None:
        raise SubscriberError(f"{email}: nothing stored about this address")
    row = found.subscriber
    if row:
        click.echo(f"email:       {row.email}\nname:        {row.name}\n"
                   f"status:      {row.status}\nformat:      {row.format}\n"
                   f"subscribed:  {when(row.subscribed_at)}\nupdated:     {when(row.updated_at)}")
    click.echo(f"suppressed:  {'yes' if found.suppressed else 'no'}")
    for event in found.events:
        click.echo(f"event:       {when(event.at)}  {event.status:<12} {event.cause}")
    for report in found.bounces:
        click.echo(f"report:      {when(report.received_at)}  {report.kind:<12} "
                   + " ".join(filter(None, (report.status, report.diagnostic)))
                   + (f" (digest {report.digest_id})" if report.digest_id else "")
                   + (f"; {report.action}" if report.action else ""))
    for delivery in found.deliveries:
        click.echo(f"digest:      {delivery.digest_id}  {delivery.status:<11} "
                   f"{when(delivery.updated_at)}")


@subscribers.command("forget")
@click.argument("email")
@pass_context
def subscribers_forget(ctx: Context, email: str) -> None:
    """Erase all personal data of EMAIL; keep only a hash so it is never mailed again."""
    from digest.clock import utc_now

    with _list(ctx) as records:
        records.forget(email, utc_now())
    click.echo(f"forgotten: {email} (only a hash remains, on the suppression list)")


@cli.group()
def editor() -> None:
    """Editor accounts for the editor's desk (/editor/ of `digest serve`), kept in the
    [editors] table of config.toml as password hashes."""


@editor.command("add")
@click.argument("name")
@click.option("--email", default="", help="Where their test digests go by default.")
@click.password_option("--password", prompt="Password", envvar="DIGEST_EDITOR_PASSWORD",
                       help="Asked for when not given (or set DIGEST_EDITOR_PASSWORD).")
@pass_context
def editor_add(ctx: Context, name: str, email: str, password: str) -> None:
    """Add an editor (or set a new password), writing the hash into config.toml."""
    from digest.accounts import add_editor

    add_editor(ctx.config_path, name, password, email)
    click.echo(f"editor {name} saved in {ctx.config_path} (password stored as a hash)")


@editor.command("remove")
@click.argument("name")
@pass_context
def editor_remove(ctx: Context, name: str) -> None:
    """Remove an editor account from config.toml."""
    from digest.accounts import remove_editor

    remove_editor(ctx.config_path, name)
    click.echo(f"editor {name} removed from {ctx.config_path}")


@editor.command("list")
@pass_context
def editor_list(ctx: Context) -> None:
    """Print the editor accounts."""
    for account in ctx.config.editors.values():
        click.echo(f"{account.name}\t{account.email}")
    click.echo(f"{len(ctx.config.editors)} editor(s)", err=True)
