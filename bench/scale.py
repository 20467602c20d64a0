"""Several senders: a 100,000-recipient digest in a PostgreSQL state database (a server
started for the run), sent by 1, 2 and 4 `digest worker --once` processes to a local
discarding SMTP server (digest/demo/null_smtp.py, in a process of its own). Prints
messages per second and the ratio to one worker, all measured in the same run, and checks
that every recipient got exactly one message.

    .venv/bin/python bench/scale.py [--subscribers 100000] [--workers 1,2,4]

On a 2-core machine the senders, the database and the sink share two cores, so the
ratio shows how the work divides, not what separate machines would give.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _project(folder: Path, database: str, port: int, subscribers: int) -> Path:
    from bench.common import write_project

    return write_project(folder, port, subscribers, connections=2, extra=f"""
[delivery]
send_with = "workers"
batch_size = 500
worker_poll_seconds = 0.2
[state]
database = "{database}"
""")


def _commit_digest(config_path: Path) -> int:
    from digest.build import render
    from digest.config import load_config
    from digest.state import open_state
    from digest.subscribers import sync_file
    from tests.test_email import big_digest

    config = load_config(config_path)
    digest = big_digest(12, image=False)
    with open_state(config) as state:
        sync_file(state.subscribers, config.subscribers_path, datetime.now(UTC))
        digest_id = state.ledger.create_digest(
            render(config, digest), [i.article for i in digest.items],
            state.subscribers.iter_active(), datetime.now(UTC))
        assert isinstance(digest_id, int)
        return digest_id


def _send(config_path: Path, workers: int) -> float:
    env = {**os.environ, "DIGEST_SIGNING_KEY": "bench-key"}
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "digest", "-q", "--config",
                               str(config_path), "worker", "--once"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"worker failed: {err.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def _counts(config_path: Path, digest_id: int) -> tuple[int, int]:
    from digest.config import load_config
    from digest.state import open_state

    with open_state(load_config(config_path)) as state:
        counts = state.ledger.delivery_counts(digest_id)
        return counts.sent, counts.unsent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    from bench.common import start_sink
    from tests.postgres import TempPostgres, fresh_database

    sink, port = start_sink()
    try:
        with TempPostgres() as server, tempfile.TemporaryDirectory() as folder:
            print(f"{args.subscribers:,} recipients, PostgreSQL state, discarding SMTP sink; "
                  f"{os.cpu_count()} CPU cores")
            print(f"{'workers':>8}{'seconds':>10}{'msg/s':>10}{'vs 1 worker':>13}{'sent':>10}")
            single = None
            for count in (int(w) for w in args.workers.split(",")):
                project = Path(folder) / f"w{count}"
                config_path = _project(project, fresh_database(server.url), port,
                                       args.subscribers)
                digest_id = _commit_digest(config_path)
                seconds = _send(config_path, count)
                sent, unsent = _counts(config_path, digest_id)
                assert sent == args.subscribers and unsent == 0, (sent, unsent)
                rate = sent / seconds
                single = single or rate
                print(f"{count:>8}{seconds:>10.1f}{rate:>10,.0f}{rate / single:>12.2f}x"
                      f"{sent:>10,}")
        return 0
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
