"""The summary of a GPU campaign (benchmarks/gpu_campaign.sh): every step's status and time, the
benchmarks' figures and the comparison's table, as summary.md and summary.json.

    python benchmarks/campaign_summary.py LOGS OUT [--dry-run]

LOGS holds steps.tsv (step, status, seconds, limit), the benchmarks' JSON files and the pytest
report; OUT receives the summary (and holds leaderboard.md when the comparison got that far).
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

BENCHMARKS = {
    "train-tiny.json": "training, tiny shape",
    "train-smollm2-135m.json": "training, SmolLM2-135M shape",
    "train-qwen2-0.5b.json": "training, Qwen2-0.5B shape",
    "decode.json": "decoding",
}


def steps(logs: Path) -> list[dict]:
    rows = []
    path = logs / "steps.tsv"
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 4:
                rows.append({"step": parts[0], "status": parts[1], "seconds": int(parts[2]), "limit": int(parts[3])})
    return rows


def tests(logs: Path) -> dict | None:
    path = logs / "gpu-tests.xml"
    if not path.is_file():
        return None
    try:
        suite = ET.parse(path).getroot()
    except ET.ParseError:
        return None
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    if suite is None:
        return None
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [
        f"{case.get('classname')}.{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return dict(counts, failed=failed)


def _flatten(obj, prefix: str = "") -> dict:
    """Scalars of a nested JSON object, keyed by their dotted path."""
    out = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
    elif isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj) and len(obj) <= 8:
            out[prefix[:-1]] = obj
        else:
            for i, value in enumerate(obj):
                out.update(_flatten(value, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = obj
    return out


def benchmarks(logs: Path) -> dict:
    found = {}
    for name, title in BENCHMARKS.items():
        path = logs / name
        if path.is_file():
            try:
                found[title] = json.loads(path.read_text())
            except json.JSONDecodeError:
                found[title] = {"error": f"{name} is not valid JSON"}
    return found


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(summary: dict, leaderboard: str | None) -> str:
    lines = ["# GPU campaign" + (" (dry run on a CPU: tiny model, tiny caps)" if summary["dry_run"] else ""), ""]
    lines += ["## Steps", "", "| step | status | seconds | limit |", "|---|---|---|---|"]
    lines += [f"| {s['step']} | {s['status']} | {s['seconds']} | {s['limit']} |" for s in summary["steps"]]
    total = sum(s["seconds"] for s in summary["steps"])
    lines += ["", f"Total: {total} s ({total / 60:.1f} min).", ""]
    t = summary["tests"]
    if t is not None:
        lines += [
            "## CUDA tests",
            "",
            f"{t['tests']} tests: {t['tests'] - t['failures'] - t['errors'] - t['skipped']} passed, "
            f"{t['failures'] + t['errors']} failed, {t['skipped']} skipped.",
        ]
        lines += [f"- failed: {name}" for name in t["failed"]] + [""]
    for title, data in summary["benchmarks"].items():
        lines += [f"## Benchmark: {title}", "", "| figure | value |", "|---|---|"]
        figures = {k: v for k, v in _flatten(data).items() if not k.startswith("settings.")}  # the options are in the log
        lines += [f"| {key} | {_fmt(value)} |" for key, value in figures.items()]
        lines += [""]
    if leaderboard:
        lines += ["## Comparison on ml-100k", "", leaderboard.strip(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    summary = {"dry_run": args.dry_run, "steps": steps(args.logs), "tests": tests(args.logs), "benchmarks": benchmarks(args.logs)}
    board = args.out / "leaderboard.md"
    leaderboard = board.read_text() if board.is_file() else None
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (args.out / "summary.md").write_text(render(summary, leaderboard))
    failed = [s["step"] for s in summary["steps"] if s["status"] != "ok"]
    print(f"summary: {len(summary['steps'])} steps, " + (f"not ok: {', '.join(failed)}" if failed else "all ok"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
