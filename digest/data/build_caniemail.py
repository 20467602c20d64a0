"""Derive caniemail.json, the subset of caniemail.com's data that preflight needs, from the
MIT-licensed data set in ../shared/corpus/caniemail (npm package caniemail 2.0.2). Run by
hand when the data set is refreshed; the project never reads ../shared at run time.

    python -m digest.data.build_caniemail [PATH/TO/npm-caniemail-data.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SOURCE = (Path(__file__).resolve().parents[3] / "shared" / "corpus" / "caniemail"
          / "npm-caniemail-2.0.2-data.json")
TARGET = Path(__file__).with_name("caniemail.json")
# Which platforms of which client families count, and how they are named in the subset.
CLIENTS = {
    "gmail": ("gmail", ("desktop-webmail", "ios", "android")),
    "apple-mail": ("apple-mail", ("macos", "ios")),
    "outlook-windows": ("outlook", ("windows",)),
}
RANK = {"n": 0, "a": 1, "u": 2, "y": 3}


def latest(stats: dict[str, Any], family: str, platform: str) -> str | None:
    versions = stats.get(family, {}).get(platform)
    if not versions:
        return None
    value = str(list(versions.values())[-1]).split()[0]
    return value if value in RANK else None


def support(stats: dict[str, Any], family: str, platforms: tuple[str, ...]) -> str:
    """The worst support among a family's platforms (latest version of each)."""
    values = [v for v in (latest(stats, family, p) for p in platforms) if v]
    return min(values, key=RANK.__getitem__) if values else "u"


def main(source: Path = SOURCE) -> None:
    data = json.loads(source.read_text(encoding="utf-8"))
    features = {}
    for feature in data["data"]:
        if not feature["slug"].startswith("css-"):
            continue
        features[feature["slug"]] = {name: support(feature["stats"], family, platforms)
                                     for name, (family, platforms) in CLIENTS.items()}
    subset = {
        "_source": "caniemail.com data (npm package caniemail 2.0.2, api_version "
                   f"{data.get('api_version')}, updated {data.get('last_update_date')})",
        "_licence": "MIT License, Copyright (c) 2019 Rémi Parmentier (caniemail.com)",
        "_meaning": "support in the latest tested version: y yes, a partial, n no, u unknown; "
                    "gmail and apple-mail take the worst of their platforms",
        "features": features,
    }
    TARGET.write_text(json.dumps(subset, ensure_ascii=False, indent=0, sort_keys=True) + "\n",
                      encoding="utf-8")
    print(f"wrote {len(features)} CSS features to {TARGET}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
