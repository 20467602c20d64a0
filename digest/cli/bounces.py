"""`digest bounces …`: read the bounce mailboxes, or take one report from an MTA's pipe."""

from __future__ import annotations

import sys

import click

from digest.cli.app import Context, cli, pass_context
from digest.errors import DigestError

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again later


@cli.group()
def bounces() -> None:
    """Bounces and complaints mailed back later: read them, act on them."""


@bounces.command("fetch")
@pass_context
def bounces_fetch(ctx: Context) -> None:
    """Read every configured bounce mailbox (IMAP, Maildir) once; a line per mailbox."""
    from digest.bounces.ingest import fetch_all

    results = fetch_all(ctx.config)
    for result in results:
        click.echo(result.line())
    failed = [r.error for r in results if r.error]
    if failed:
        raise DigestError("; ".join(failed))


@bounces.command("ingest")
@click.option("--recipient", "recipients", multiple=True,
              help="The address the MTA delivered it to (Postfix: ${recipient}).")
@pass_context
def bounces_ingest(ctx: Context, recipients: tuple[str, ...]) -> None:
    """Take one message from standard input (an MTA's pipe transport): exit 0 when it is
    taken (understood or only recorded), 75 when it must be offered again later."""
    from dataclasses import replace

    from sqlalchemy.exc import SQLAlchemyError

    from digest.bounces.ingest import ingest, read_stdin

    try:
        config = ctx.config
        message = replace(read_stdin(sys.stdin.buffer, config.bounces.max_message_bytes),
                          envelope_to=recipients)
        outcome = ingest(config, message)
    except (DigestError, OSError, SQLAlchemyError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"error: {text}; try again later", err=True)
        sys.exit(EX_TEMPFAIL)
    click.echo(f"taken: {outcome}")
