"""The `digest` command: thin click commands over the library, one module per group of
commands. Heavy modules are imported inside the commands that need them, so `digest
--help` answers at once. `main()` is the one place that turns a DigestError into
`error: …` on stderr and an exit code."""

from __future__ import annotations

import sys

import click

from digest import logs
from digest.cli.app import Context, cli
from digest.errors import DigestError

# Each module adds its commands to `cli` as it is imported.
from digest.cli import bounces, cycle, editing, operate, people  # noqa: E402,F401  isort: skip

__all__ = ["Context", "cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, report DigestErrors as one line and an exit code."""
    import logging

    try:
        cli.main(args=argv, prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DigestError as exc:
        if "-v" in sys.argv or "--verbose" in sys.argv:
            logging.getLogger("digest").exception("details")
        for line in str(exc).splitlines() or [type(exc).__name__]:
            click.echo(logs.error_line(line), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
