"""Logging setup: one line per event, human-readable, or JSON lines for machines."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime

NOISY = ("urllib3", "cssutils", "premailer", "mail.log", "asyncio", "waitress", "alembic")


class JsonLines(logging.Formatter):
    """Each record as one JSON object: time (UTC), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(
                     timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


_format = "text"


def configure(level: int, fmt: str = "text") -> None:
    """Send log lines to standard error in the chosen format. With JSON, everything that
    would reach standard error as text — library warnings, a crashing thread's traceback —
    goes through logging too, so every line is JSON."""
    global _format
    _format = fmt
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in NOISY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # urllib3 warns at every retry; the fetcher reports the URL's outcome in one line itself.
    logging.getLogger("urllib3").setLevel(max(level, logging.ERROR))
    logging.captureWarnings(fmt == "json")
    if fmt == "json":
        threading.excepthook = _log_thread_crash


def is_json() -> bool:
    """Whether log lines are JSON (the CLI then writes its error lines as JSON too)."""
    return _format == "json"


def error_line(message: str) -> str:
    """An `error: …` line for standard error, in the configured format."""
    if _format != "json":
        return f"error: {message}"
    return json.dumps({"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                       "level": "error", "logger": "digest", "message": message},
                      ensure_ascii=False)


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    logging.getLogger("digest").error(
        "thread %s crashed", args.thread.name if args.thread else "?",
        exc_info=args.exc_value or True)
