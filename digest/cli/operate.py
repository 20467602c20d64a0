"""The operator's commands on the state database: schema upgrades and copying it into a
new database."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from digest.cli.app import Context, cli, pass_context


@cli.group()
def db() -> None:
    """The state database: schema upgrades and moving it to PostgreSQL."""


@db.command("upgrade")
@pass_context
def db_upgrade(ctx: Context) -> None:
    """Create or upgrade the state database's schema to this version (Alembic)."""
    from digest.state.migrate import upgrade_url

    result = upgrade_url(ctx.config.database_url(), where=f"{ctx.config.path}: [state] database")
    click.echo(f"state database at revision {result.after}" + (
        " (already up to date)" if result.before == result.after else
        " (created)" if result.fresh else f" (was {result.before or 'from before migrations'})"))


@db.command("copy")
@click.option("--to", "target", required=True,
              help="The new, empty database: postgresql://user@host/db (password from "
                   "[state] password_env), or a SQLite file path.")
@pass_context
def db_copy(ctx: Context, target: str) -> None:
    """Copy everything in the state database into a new, empty database (stop the
    scheduler, workers and web app first), then point [state] database at it."""
    from digest.keys import carry_key
    from digest.state import copy_state_to

    copied = copy_state_to(ctx.config, target)
    for table, count in copied.counts.items():
        click.echo(f"{table:<20} {count} row(s)")
    click.echo(f"signing key: {carry_key(ctx.config, target)}")
    click.echo(f"copied to {copied.where}; now set [state] database = \"{target}\"")


@cli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--templates", "with_templates", is_flag=True,
              help="Also copy the bundled templates into FOLDER/templates to edit.")
def init(folder: Path, with_templates: bool) -> None:
    """Start a new install in FOLDER: a commented config.toml with every key, an empty
    subscribers.csv and a state folder; never overwrites a file."""
    from digest.scaffold import init_folder

    for path in init_folder(folder, with_templates=with_templates):
        click.echo(f"created {path}{'/' if path.is_dir() else ''}")
    click.echo(f"next: edit {folder / 'config.toml'} ([email] from, [[sources]], [smtp]), "
               f"then `digest --config {folder / 'config.toml'} check --connect`")


@cli.command()
@click.option("--connect", is_flag=True,
              help="Also connect to the SMTP relay and read every source once.")
@pass_context
def check(ctx: Context, connect: bool) -> None:
    """Check everything a run needs, one line per item: templates, DKIM key, state
    database, subscriber file, signing key, SMTP settings (exit 2 on a problem)."""
    from digest.check import PROBLEM, UNREACHABLE, check_config, check_connections

    findings = check_config(ctx.config) + (check_connections(ctx.config) if connect else [])
    for finding in findings:
        click.echo(finding.line)
    statuses = {f.status for f in findings}
    if PROBLEM in statuses or UNREACHABLE in statuses:
        click.echo("not ready: fix the lines marked problem or unreachable", err=True)
        sys.exit(2 if PROBLEM in statuses else 1)
    click.echo("ready", err=True)
