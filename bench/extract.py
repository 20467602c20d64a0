"""Body-extraction quality on ../shared/corpus/article-extraction-benchmark, with that
benchmark's own metric (multisets of 4-word shingles, per-page normalised counts), for our
extractor and, as the baseline measured in the same run, trafilatura with its defaults.

    .venv/bin/python bench/extract.py [--corpus PATH]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.extract import extract_body_text  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "article-extraction-benchmark"


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text, re.UNICODE)
    return Counter(tuple(tokens[i:i + n]) for i in range(max(len(tokens) - n + 1, 0)))


def page_counts(predicted: str, expected: str) -> tuple[float, float, float]:
    """TP, FP, FN for one page, normalised so every page weighs the same."""
    got, want = shingles(predicted), shingles(expected)
    tp = sum((got & want).values())
    fp = sum((got - want).values())
    fn = sum((want - got).values())
    total = tp + fp + fn
    if total == 0:
        return 1.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


def score(extract: Callable[[str, str], str], corpus: Path) -> dict[str, float]:
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    tps = fps = fns = 0.0
    started = time.perf_counter()
    for page_id, item in sorted(truth.items()):
        html = gzip.open(corpus / "html" / f"{page_id}.html.gz").read().decode("utf-8", "replace")
        tp, fp, fn = page_counts(extract(html, item["url"]), item["articleBody"])
        tps, fps, fns = tps + tp, fps + fp, fns + fn
    elapsed = time.perf_counter() - started
    precision = tps / (tps + fps) if tps + fps else 0.0
    recall = tps / (tps + fns) if tps + fns else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "ms_per_page": 1000 * elapsed / len(truth), "pages": len(truth)}


def trafilatura_defaults(html: str, url: str) -> str:
    import trafilatura

    return trafilatura.extract(html, url=url) or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if not (args.corpus / "ground-truth.json").exists():
        print(f"corpus not found at {args.corpus}", file=sys.stderr)
        return 2
    ours = score(extract_body_text, args.corpus)
    base = score(trafilatura_defaults, args.corpus)
    print(f"pages: {ours['pages']:.0f}")
    print(f"{'extractor':<24}{'precision':>10}{'recall':>10}{'F1':>8}{'ms/page':>10}")
    for name, s in (("digest.extract", ours), ("trafilatura defaults", base)):
        print(f"{name:<24}{s['precision']:>10.3f}{s['recall']:>10.3f}{s['f1']:>8.3f}"
              f"{s['ms_per_page']:>10.1f}")
    print(f"ratio F1 ours/baseline: {ours['f1'] / base['f1']:.3f}; "
          f"precision ours/baseline: {ours['precision'] / base['precision']:.3f}")
    passed = ours["f1"] >= 0.96 and ours["precision"] >= 0.94
    print("gate (F1 >= 0.96, precision >= 0.94):", "PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
