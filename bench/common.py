"""What the sending benchmarks share: a project folder with N subscribers and a config
pointing at a local SMTP sink."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def write_project(folder: Path, port: int, subscribers: int, *, connections: int,
                  extra: str = "") -> Path:
    """subscribers/subscribers.csv with `subscribers` readers, and config.toml."""
    (folder / "subscribers").mkdir(parents=True, exist_ok=True)
    with (folder / "subscribers" / "subscribers.csv").open("w", encoding="utf-8") as out:
        out.write("email,name\n")
        for i in range(subscribers):
            out.write(f"reader{i:06d}@example.org,Reader {i}\n")
    path = folder / "config.toml"
    path.write_text(f"""
[[sources]]
name = "none"
url = "http://127.0.0.1:9/feed/"
[email]
from = "Spacecraft Digest <digest@news.example>"
templates = "{REPO / 'templates'}"
[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
connections = {connections}
max_per_connection = 100000
{extra}
""")
    return path


def start_sink() -> tuple[subprocess.Popen[str], int]:
    """The discarding SMTP server in a process of its own (so it never competes with the
    sender for the interpreter), and its port."""
    sink = subprocess.Popen([sys.executable, "-c", "from digest.demo.null_smtp import "
                             "serve_forever; serve_forever()"], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    return sink, int(sink.stdout.readline())
