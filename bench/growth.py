"""Growth curves: what a one-slot patch and a read cost as the draft and the catalog grow."""

from __future__ import annotations

from pathlib import Path

from bench.loadgen import Generators, Step
from bench.measure import Row, measure
from bench.scenarios import Cohorts, Scenario, department, get_step, metadata_for, seed_catalog
from cohort_service.v1 import draft_service_pb2
from tests.processes import start_service

DRAFT_SIZES = (10, 100, 1000)
CATALOG_SIZES = (100, 100_000)


def _one_slot_patches(cohorts: Cohorts, draft_id: str, metadata) -> list[Step]:
    """Two patches of the departments slot by name, alternated so that each one writes."""
    steps = []
    for first in (0, 3):
        request = draft_service_pb2.PatchCohortDraftRequest(
            draft_id=draft_id, departments=[department(first + n) for n in range(3)]
        )
        steps.append(
            Step(
                "/cohort_service.v1.CohortDraftService/PatchCohortDraft",
                request.SerializeToString(),
                metadata,
            )
        )
    return steps


def run_growth(
    generators: Generators, stores, work: Path, warmup: float, duration: float
) -> list[dict]:
    """One row per (catalog size, draft size, operation), on SQLite at C=1."""
    points = []
    for catalog in CATALOG_SIZES:
        url = stores.url("sqlite", f"growth-{catalog}")
        server = start_service("cohort-service", url, work / f"growth-{catalog}.log")
        try:
            seed_catalog(url, catalog, work)
            with server.channel() as channel:
                cohorts = Cohorts(channel)
                for size in DRAFT_SIZES:
                    sub = f"user:growth-{size}"
                    metadata = metadata_for(sub)
                    draft_id = cohorts.draft(sub, size)
                    for operation, steps in (
                        ("one-slot patch", [_one_slot_patches(cohorts, draft_id, metadata)]),
                        ("read", [[get_step(draft_id, metadata)]]),
                    ):
                        scenario = Scenario(operation, "cohort-service", steps, 0, 0)
                        row: Row = measure(
                            generators, server, scenario, "sqlite", 1, warmup, duration
                        )
                        points.append(
                            {
                                "catalog": catalog,
                                "draft_items": size,
                                "operation": operation,
                                "cpu_us_per_call": row.cpu_us_per_call,
                                "p50_ms": row.p50_ms,
                                "calls_per_second": row.calls_per_second,
                                "errors": row.errors,
                            }
                        )
                        print(
                            f"  growth catalog={catalog:>6} items={size:>4} {operation:<15}"
                            f" p50 {row.p50_ms:7.2f} ms  cpu {row.cpu_us_per_call:8.0f} µs",
                            flush=True,
                        )
        finally:
            server.stop()
    return points


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: the harness writes a file
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    for operation, style in (("one-slot patch", "-"), ("read", "--")):
        for catalog, marker in zip(CATALOG_SIZES, ("o", "s"), strict=True):
            series = sorted(
                (p["draft_items"], p["p50_ms"])
                for p in points
                if p["operation"] == operation and p["catalog"] == catalog
            )
            axes.plot(
                [x for x, _ in series],
                [y for _, y in series],
                style,
                marker=marker,
                label=f"{operation}, catalog {catalog:,}",
            )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("items in the draft")
    axes.set_ylabel("p50 latency at C=1 (ms)")
    axes.set_title("cohort-service on SQLite: cost as the draft and the catalog grow")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
