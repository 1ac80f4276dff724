"""bench.models: each server model serves the calls with the streams held open, and the
models differ where they should (a thread per stream on the sync server, none on grpc.aio).

Small numbers and short windows: this proves the harness, the bench itself gives the figures.
"""

from __future__ import annotations

from bench.loadgen import Generators
from bench.models import SCENARIOS, run_models

STREAMS = 50
MODELS = ("sync", "aio")  # aio-pool is aio's server: the same streams


def test_every_model_holds_the_streams_and_answers_beside_them(tmp_path):
    generators = Generators(1)
    try:
        summaries = run_models(
            generators, tmp_path, streams=STREAMS, warmup=0.1, duration=0.3, models=MODELS
        )
    finally:
        generators.close()
    assert [s["model"] for s in summaries] == list(MODELS)
    for summary in summaries:
        for scenario in SCENARIOS:
            for streams in (0, STREAMS):
                figures = summary[f"{scenario.name} {streams}"]
                assert figures["errors"] == 0, (summary["model"], scenario.name, streams)
                assert figures["calls_per_second"] > 0
        assert summary["rss_per_stream_kb"] > 0
        [(threads_before, threads_with)] = summary["threads"]
        if summary["model"] == "sync":
            assert threads_with - threads_before >= STREAMS  # a thread each
        else:
            assert threads_with - threads_before < STREAMS / 5  # coroutines
