"""Sending speed: a 10,000-subscriber digest with 1, 2, 4, 8 and 16 SMTP connections to a
minimal asyncio SMTP sink (digest/demo/null_smtp.py, in its own process, so the receiver
is not the bottleneck), against a baseline measured in the same run that pushes the same number of
pre-built messages through plain smtplib over the same number of connections. Our figure
includes the per-message ledger commit, the subscriber re-check and the rate accounting.
Then peak memory (max RSS of a fresh process) for 1,000, 10,000 and 100,000 subscribers.

    .venv/bin/python bench/send.py [--subscribers 10000] [--counts 1,2,4,8,16]
                                   [--memory 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


# --- what is measured ------------------------------------------------------------------


def _project(folder: Path, port: int, subscribers: int, connections: int) -> Path:
    from bench.common import write_project

    return write_project(folder, port, subscribers, connections=connections)


def _committed_digest(config_path: Path) -> None:
    """A rendered 12-article digest and its ledger, as `digest run` commits them."""
    from digest.build import render
    from digest.config import load_config
    from digest.state import open_state
    from digest.subscribers import sync_file
    from tests.test_email import big_digest

    config = load_config(config_path)
    digest = big_digest(12, image=False)
    rendered = render(config, digest)
    with open_state(config) as state:
        sync_file(state.subscribers, config.subscribers_path, datetime.now(UTC))
        state.ledger.create_digest(rendered, [i.article for i in digest.items],
                                   state.subscribers.iter_active(), datetime.now(UTC))


def ours(config_path: Path) -> dict[str, float]:
    """Time `digest resume` sending the committed digest (in a process of its own, so its
    peak memory is the send's alone)."""
    import logging

    from digest import pipeline
    from digest.config import load_config

    logging.disable(logging.INFO)
    config = load_config(config_path)
    cpu = _cpu()
    started = time.perf_counter()
    report = pipeline.resume(config)
    elapsed = time.perf_counter() - started
    return {"sent": report.sent, "seconds": elapsed, "cpu": _cpu() - cpu,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def baseline(port: int, count: int, connections: int) -> dict[str, float]:
    """Plain smtplib: the same number of pre-built messages over the same connections."""
    from digest.message import Envelope, build_message, new_message_id
    from digest.models import Subscriber
    from digest.render import RenderOptions, render_digest
    from tests.test_email import big_digest

    rendered = render_digest(big_digest(12, image=False), RenderOptions(
        templates=REPO / "templates", subject_template="{{ title }}",
        base_url="https://digest.example"))
    envelope = Envelope(from_address="digest@news.example", reply_to="",
                        list_id="x <x.news.example>", base_url="https://digest.example")
    message = build_message(rendered, Subscriber("reader@example.org", "Reader"),
                            envelope=envelope, digest_id=1, created_at=datetime.now(UTC),
                            unsubscribe_url="https://digest.example/unsubscribe/t",
                            message_id=new_message_id(1, "news.example")).as_bytes()

    def push(n: int) -> None:
        smtp = smtplib.SMTP("127.0.0.1", port)
        for i in range(n):
            smtp.sendmail("digest@news.example", [f"reader{i:06d}@example.org"], message)
        smtp.quit()

    share = [count // connections + (1 if i < count % connections else 0)
             for i in range(connections)]
    threads = [threading.Thread(target=push, args=(n,)) for n in share]
    cpu = _cpu()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"sent": count, "seconds": time.perf_counter() - started, "cpu": _cpu() - cpu}


def _child(kind: str, port: int, count: int, connections: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        if kind == "ours":
            _project(Path(folder), port, count, connections)
            _run(["--child", "prepare", "--project", folder])
        result = _run(["--child", kind, "--project", folder, "--port", str(port),
                       "--subscribers", str(count), "--connections", str(connections)])
    return dict(json.loads(result.strip().splitlines()[-1]))


def _run(arguments: list[str]) -> str:
    return subprocess.run([sys.executable, __file__, *arguments], capture_output=True,
                          text=True, check=True, cwd=REPO).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--memory", default="1000,10000,100000")
    parser.add_argument("--counts", default="1,2,4,8,16",
                        help="connection counts to measure, each against smtplib")
    parser.add_argument("--connections", type=int, default=0)
    parser.add_argument("--child", choices=("prepare", "ours", "baseline"))
    parser.add_argument("--project", default="")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.child == "baseline":
        print(json.dumps(baseline(args.port, args.subscribers, args.connections)))
        return 0
    if args.child == "prepare":
        _committed_digest(Path(args.project) / "config.toml")
        return 0
    if args.child == "ours":
        print(json.dumps(ours(Path(args.project) / "config.toml")))
        return 0

    from bench.common import start_sink

    sink, port = start_sink()
    try:
        print(f"{args.subscribers:,} messages of a 12-article digest to a local asyncio sink")
        print(f"{'connections':>11}{'ours msg/s':>12}{'smtplib msg/s':>15}{'ratio':>8}"
              f"{'ours CPU µs/msg':>17}{'smtplib CPU µs/msg':>20}")
        worst = float("inf")
        for connections in (int(c) for c in args.counts.split(",") if c):
            mine = _child("ours", port, args.subscribers, connections)
            base = _child("baseline", port, args.subscribers, connections)
            assert mine["sent"] == args.subscribers, mine
            ours_rate = mine["sent"] / mine["seconds"]
            base_rate = base["sent"] / base["seconds"]
            worst = min(worst, ours_rate / base_rate)
            print(f"{connections:>11}{ours_rate:>12,.0f}{base_rate:>15,.0f}"
                  f"{ours_rate / base_rate:>8.2f}{mine['cpu'] / mine['sent'] * 1e6:>17.0f}"
                  f"{base['cpu'] / base['sent'] * 1e6:>20.0f}")
        print(f"{'subscribers':>11}{'peak RSS MB':>12}{'msg/s':>9}  (4 connections)")
        for count in (int(c) for c in args.memory.split(",") if c):
            mine = _child("ours", port, count, 4)
            print(f"{count:>11,}{mine['max_rss_mb']:>12.1f}{mine['sent'] / mine['seconds']:>9,.0f}")
        print(f"gate (ours >= 0.8 x smtplib at every connection count): "
              f"{'PASS' if worst >= 0.8 else 'FAIL'} (worst ratio {worst:.2f})")
        return 0 if worst >= 0.8 else 1
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
