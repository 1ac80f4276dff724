"""The printed tables, and the issue's targets checked against one run's figures."""

from __future__ import annotations

import math

TARGET_CONCURRENCY = 16
RATIO_TARGETS = {  # scenario -> minimum calls/s as a fraction of the baseline's
    "GetReport": 0.5,
    "GetCohortDraft 10 items": 0.5,
    "PatchCohortDraft typical": 0.25,
    "Edit→Put→Commit (per RPC)": 0.15,
}


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row with `ratio`: its calls/s over the baseline's at the same database and C."""
    baselines = {
        (r["database"], r["concurrency"]): r["calls_per_second"]
        for r in rows
        if r["scenario"].startswith("baseline")
    }
    out = []
    for row in rows:
        base = baselines.get((row["database"], row["concurrency"]))
        out.append({**row, "ratio": row["calls_per_second"] / base if base else math.nan})
    return out


def table(rows: list[dict]) -> str:
    header = (
        f"{'db':<8} {'scenario':<34} {'C':>3} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'p99/p50':>7} {'CPU µs/call':>11} {'× base':>7} {'resp B':>7}"
    )
    lines = [
        "baseline = the services' server model (grpc sync server, same thread pool and options),",
        "  a handler that returns its 1 KB request: no auth, no database. Same run, same C.",
        "CPU µs/call: the server process's user+system CPU over the window / calls served.",
        header,
        "-" * len(header),
    ]
    for r in rows:
        ratio = r["p99_ms"] / r["p50_ms"] if r["p50_ms"] else math.nan
        lines.append(
            f"{r['database']:<8} {r['scenario']:<34} {r['concurrency']:>3}"
            f" {r['calls_per_second']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
            f" {ratio:>7.1f} {r['cpu_us_per_call']:>11.0f} {r['ratio']:>7.2f}"
            f" {r['response_bytes']:>7}" + (f"  ({r['errors']} errors)" if r["errors"] else "")
        )
    return "\n".join(lines)


def growth_table(points: list[dict]) -> str:
    lines = [
        "growth (cohort-service, SQLite, C=1): p50 ms / server CPU µs per call",
        f"{'operation':<16} {'catalog':>8} "
        + " ".join(f"{f'{n} items':>20}" for n in (10, 100, 1000)),
    ]
    keys = sorted({(p["operation"], p["catalog"]) for p in points})
    for operation, catalog in keys:
        cells = []
        for size in (10, 100, 1000):
            p = next(
                (
                    q
                    for q in points
                    if (q["operation"], q["catalog"], q["draft_items"])
                    == (operation, catalog, size)
                ),
                None,
            )
            cells.append(
                f"{p['p50_ms']:>8.2f} / {p['cpu_us_per_call']:>7.0f}" if p else f"{'-':>20}"
            )
        lines.append(f"{operation:<16} {catalog:>8,} " + " ".join(f"{c:>20}" for c in cells))
    return "\n".join(lines)


def _growth(points: list[dict], operation: str, catalog: int, items: int) -> float:
    for p in points:
        if (p["operation"], p["catalog"], p["draft_items"]) == (operation, catalog, items):
            return p["p50_ms"]
    return math.nan


def targets(rows: list[dict], points: list[dict], rss: dict | None = None) -> list[dict]:
    """Each target of the issue: the figure measured, the bound, met or not."""
    found = []
    at = {
        r["scenario"]: r
        for r in rows
        if r["database"] == "sqlite" and r["concurrency"] == TARGET_CONCURRENCY
    }
    for scenario, bound in RATIO_TARGETS.items():
        if scenario in at:
            value = at[scenario]["ratio"]
            found.append(
                {
                    "target": f"{scenario} ≥ {bound} × baseline",
                    "value": value,
                    "bound": bound,
                    "met": value >= bound,
                }
            )
    for scenario, r in at.items():
        if scenario.startswith("baseline"):
            continue
        value = r["p99_ms"] / r["p50_ms"]
        found.append(
            {
                "target": f"{scenario}: p99 ≤ 4 × p50",
                "value": value,
                "bound": 4.0,
                "met": value <= 4.0,
            }
        )
    if points:
        value = _growth(points, "one-slot patch", 100, 1000) / _growth(
            points, "one-slot patch", 100, 10
        )
        found.append(
            {
                "target": "one-slot patch: 1,000-item draft ≤ 1.5 × 10-item draft",
                "value": value,
                "bound": 1.5,
                "met": value <= 1.5,
            }
        )
        value = _growth(points, "one-slot patch", 100_000, 10) / _growth(
            points, "one-slot patch", 100, 10
        )
        found.append(
            {
                "target": "name resolution: catalog 100,000 ≤ 1.5 × catalog 100 (patch, 10 items)",
                "value": value,
                "bound": 1.5,
                "met": value <= 1.5,
            }
        )
    if rss:
        for service, figures in rss.items():
            value = figures["rss_after_100000"] / figures["rss_after_10000"]
            found.append(
                {
                    "target": f"{service}: RSS after 100,000 calls ≤ 1.2 × after 10,000",
                    "value": value,
                    "bound": 1.2,
                    "met": value <= 1.2,
                }
            )
    return found


def targets_table(found: list[dict]) -> str:
    lines = [f"targets (SQLite, C={TARGET_CONCURRENCY}; growth at C=1)"]
    for t in found:
        mark = "met   " if t["met"] else "MISSED"
        lines.append(f"  {mark} {t['target']:<62} measured {t['value']:.2f}")
    return "\n".join(lines)
