"""Gathering 50 articles from a local site that takes 200 ms to answer each request:
our gather (parallel, per-host limit) against a baseline measured in the same run that
fetches and extracts the same pages one after another.

    .venv/bin/python bench/gather.py [--articles 50] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.config import load_config  # noqa: E402
from digest.demo.site import SampleArticle, SampleSite, SiteServer, load_sample_articles  # noqa: E402
from digest.extract import extract_article  # noqa: E402
from digest.gather import gather, make_fetcher  # noqa: E402
from digest.models import FeedEntry  # noqa: E402
from digest.state import open_state  # noqa: E402


class SlowSite(SampleSite):
    """The sample site, answering every request after a fixed delay."""

    latency = 0.2

    def page(self, path: str) -> tuple[int, str, str]:
        time.sleep(self.latency)
        return super().page(path)


def many_articles(count: int) -> list[SampleArticle]:
    base = [a for a in load_sample_articles() if a.category == "Spacecraft"]
    return [dataclasses.replace(base[i % len(base)], slug=f"{base[i % len(base)].slug}-{i}",
                                title=f"{base[i % len(base)].title} (part {i})",
                                published=base[i % len(base)].published - timedelta(hours=i))
            for i in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    SlowSite.latency = args.latency
    site = SlowSite(many_articles(args.articles))
    with SiteServer(site) as server, tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder) / "config.toml"
        config_path.write_text(f"""
[digest]
max_articles = {args.articles}
[[sources]]
name = "Slow"
url = "{server.feed_url('Spacecraft')}"
[email]
from = "bench@example.org"
templates = "{REPO / 'templates'}"
[fetch]
respect_robots = false
""")
        config = load_config(config_path)
        with open_state(config) as state, make_fetcher(config) as fetcher:
            started = time.perf_counter()
            result = gather(config, state, fetcher, record=False)
            ours = time.perf_counter() - started

        entries = [FeedEntry(url=server.url + a.path, title=a.title, source_name="Slow")
                   for a in site.by_category("spacecraft")]
        with make_fetcher(config) as fetcher:
            started = time.perf_counter()
            fetcher.get(server.feed_url("Spacecraft"))
            baseline_articles = [extract_article(fetcher.get(e.url).body, e) for e in entries]
            baseline = time.perf_counter() - started

    print(f"articles: {len(result.articles)} (baseline {len(baseline_articles)}), "
          f"latency {args.latency * 1000:.0f} ms per response, "
          f"per-host limit {config.fetch.per_host_concurrency}")
    print(f"digest gather:         {ours:6.2f} s")
    print(f"one after another:     {baseline:6.2f} s")
    print(f"ratio (baseline/ours): {baseline / ours:6.2f}x faster")
    return 0 if len(result.articles) == args.articles else 1


if __name__ == "__main__":
    raise SystemExit(main())
