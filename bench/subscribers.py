"""Importing a 100,000-row subscriber CSV into a fresh state database: seconds and rows
per second, and, as the baseline measured in the same run, the same rows inserted one by
one (a commit each), the naive way; then the address checks alone, email_validator on
every row against the import's checks (its domain check once per domain). The gate: the
100,000 rows in under 10 s (exit 1 when over).

    .venv/bin/python bench/subscribers.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.state import open_url  # noqa: E402
from digest.subscribers import AddressChecker, check_address, import_csv, parse_csv  # noqa: E402

GATE_SECONDS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=2_000)
    parser.add_argument("--check-rows", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "list.csv"
        with source.open("w", encoding="utf-8") as out:
            out.write("email,name\n")
            for i in range(args.rows):
                out.write(f"reader{i:06d}@example.org,Reader {i}\n")
        state = open_url(f"sqlite:///{folder}/state.sqlite3")
        started = time.perf_counter()
        result = import_csv(state.subscribers, source, datetime.now(UTC))
        ours = time.perf_counter() - started
        again_started = time.perf_counter()
        again = import_csv(state.subscribers, source, datetime.now(UTC))
        again_seconds = time.perf_counter() - again_started
        state.close()

        naive_state = open_url(f"sqlite:///{folder}/naive.sqlite3")
        naive = naive_state.subscribers
        entries, _ = parse_csv(source.read_text(encoding="utf-8"), str(source))
        started = time.perf_counter()
        for entry in entries[:args.baseline_rows]:
            naive.add(entry.subscriber.email, entry.subscriber.name, datetime.now(UTC))
        naive_rate = args.baseline_rows / (time.perf_counter() - started)
        naive_state.close()
        addresses = [entry.subscriber.email for entry in entries[:args.check_rows]]
        started = time.perf_counter()
        for address in addresses:
            check_address(address)
        every_row = (time.perf_counter() - started) / len(addresses)
        check = AddressChecker()
        started = time.perf_counter()
        for address in addresses:
            check(address)
        cached = (time.perf_counter() - started) / len(addresses)
    print(f"import of {args.rows:,} rows: {ours:.2f} s ({args.rows / ours:,.0f} rows/s), "
          f"{result.added:,} added")
    print(f"same file again (idempotent): {again_seconds:.2f} s, {again.added} added, "
          f"{again.updated} updated")
    print(f"baseline, one add() and commit per row: {naive_rate:,.0f} rows/s "
          f"(measured on {args.baseline_rows:,} rows)")
    print(f"ratio ours/baseline: {args.rows / ours / naive_rate:.1f}x")
    print(f"address checks: email_validator on every row {every_row * 1e6:.1f} µs/row, "
          f"once per domain {cached * 1e6:.1f} µs/row ({every_row / cached:.0f}x; "
          f"measured on {len(addresses):,} rows)")
    passed = ours < GATE_SECONDS * args.rows / 100_000
    print(f"gate ({args.rows:,} rows under {GATE_SECONDS * args.rows / 100_000:g} s):",
          "PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
