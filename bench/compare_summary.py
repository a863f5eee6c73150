"""Summarize a bench/compare.sh log folder: per benchmark, the median and min-max of its
headline figures on each side, and the ratio after/before of the medians.

    python bench/compare_summary.py LOG_DIR --before SRC --after SRC

Each run's output is LOG_DIR/<benchmark>__r<round>__<side>.out (the script's JSON, last on
stdout). A run whose output has no JSON, or whose `kindred_src` is not its side's source
tree, is reported and left out; the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

SIDES = ("before", "after")
# benchmark (the part of its name before the first "-") -> its headline figures: a pattern
# over the dotted keys of its JSON, and whether higher is better
HEADLINES: dict[str, list[tuple[str, bool]]] = {
    "ingest": [
        (r"batches_per_s", True),
        (r"p50_ms", False),
        (r"p99_ms", False),
        (r"p999_ms", False),
        (r"server_peak_rss_mb", False),
    ],
    "identify": [
        (r"requests_per_s", True),
        (r"p50_ms", False),
        (r"p99_ms", False),
        (r"server_cpu_cores", False),
        (r"other_cpu_cores", False),
    ],
    "audiences": [
        (r"ingest_us_per_event_without_audiences", False),
        (r"ingest_us_per_event_with_\d+_audiences", False),
        (r"added_us_per_event", False),
        (r"added_us_per_event_first_contact", False),
        (r"backfill_s", False),
        (r"time_trigger_profiles_per_s", True),
    ],
    "attributes": [
        (r"history_store_s", False),
        (r"activation_s", False),
        (r"[^.]+\.ingest_us_per_event_without", False),
        (r"[^.]+\.ingest_us_per_event_with_\d+", False),
        (r"[^.]+\.added_us_per_event", False),
    ],
}
RUN_FILE = re.compile(r"(?P<bench>.+)__r(?P<round>\d+)__(?P<side>before|after)\.out")


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def last_json(text: str) -> dict[str, Any] | None:
    """The JSON object the benchmark printed last (progress lines may come before it)."""
    starts = [m.start() for m in re.finditer(r"^\{", text, re.MULTILINE)]
    for start in reversed(starts):
        try:
            doc = json.loads(text[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            return doc
    return None


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _figure(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{_fmt(statistics.median(values))} [{_fmt(min(values))}-{_fmt(max(values))}]"


def summarize(log_dir: Path, sources: dict[str, str]) -> int:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    problems: list[str] = []
    # in the order they ran
    for path in sorted(log_dir.glob("*.out"), key=lambda p: p.stat().st_mtime):
        match = RUN_FILE.fullmatch(path.name)
        if match is None:
            continue
        bench, side = match["bench"], match["side"]
        sides = runs.setdefault(bench, {s: [] for s in SIDES})
        doc = last_json(path.read_text(errors="replace"))
        if doc is None:
            problems.append(f"{path.name}: no result (see {path.with_suffix('.err').name})")
            continue
        src = doc.get("kindred_src")
        if src is not None and Path(src).resolve() != Path(sources[side]).resolve():
            problems.append(f"{path.name}: ran {src}, not the {side} tree {sources[side]}")
            continue
        sides[side].append(flatten(doc))
    for bench, sides in runs.items():
        counts = ", ".join(f"{s}: {len(sides[s])} runs" for s in SIDES)
        print(f"\n== {bench} ({counts})")
        rows = [("figure", "before median [min-max]", "after median [min-max]", "after/before")]
        rows += _rows(bench.split("-", 1)[0], sides)
        width = max(len(row[0]) for row in rows)
        for label, before, after, ratio in rows:
            print(f"  {label:<{width}}  {before:>24}  {after:>24}  {ratio:>12}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def _rows(kind: str, sides: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str, str, str]]:
    rows = []
    keys = sorted({k for s in SIDES for run in sides[s] for k in run})
    for pattern, higher_better in HEADLINES.get(kind, []):
        for key in (k for k in keys if re.fullmatch(pattern, k)):
            values = {
                s: [float(r[key]) for r in sides[s] if isinstance(r.get(key), int | float)]
                for s in SIDES
            }
            ratio = "-"
            if values["before"] and values["after"]:
                before = statistics.median(values["before"])
                after = statistics.median(values["after"])
                ratio = f"{after / before:.3f}" if before else "-"
            label = f"{key} ({'higher' if higher_better else 'lower'} is better)"
            rows.append((label, _figure(values["before"]), _figure(values["after"]), ratio))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("log_dir", type=Path)
    parser.add_argument("--before", required=True, help="the before side's src directory")
    parser.add_argument("--after", required=True, help="the after side's src directory")
    args = parser.parse_args()
    sys.exit(summarize(args.log_dir, {"before": args.before, "after": args.after}))


if __name__ == "__main__":
    main()
