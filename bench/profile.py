"""`python -m bench.profile SCENARIO`: where a service process spends its time under one scenario.

Starts the service like the harness does, drives the scenario, records the process with
py-spy (collapsed stacks), and prints the functions with the most samples: by own time
(self) and including callees (total), restricted to frames of this repository and the
libraries named in LIBRARIES so that interpreter noise stays out.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.loadgen import Generators
from bench.measure import measure
from bench.scenarios import SETUPS, seed_catalog
from bench.stores import Stores
from tests.processes import start_service


def summarise(collapsed: str, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [f for f in stack.split(";") if f]
        # the thread name frame py-spy adds is not a function
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples"]
    for title, counter in (("self", own), ("total (with callees)", total)):
        lines.append(f"top {top} by {title}:")
        for frame, n in counter.most_common(top):
            lines.append(f"  {100 * n / samples:5.1f}%  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("scenario", help="text in the scenario's name, e.g. 'GetCohortDraft 10'")
    parser.add_argument("--database", default="sqlite")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--gil", action="store_true", help="only samples holding the GIL (Python CPU time)"
    )
    args = parser.parse_args()
    generators = Generators(1)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as scratch:
        work = Path(scratch)
        stores = Stores(work)
        try:
            for service, setup in SETUPS.items():
                url = stores.url(args.database, service)
                if service == "cohort-service":
                    seed_catalog(url, 1000, work)
                server = start_service(service, url, work / f"{service}.log")
                try:
                    with server.channel() as channel:
                        chosen = [
                            s for s in setup(channel, args.concurrency) if args.scenario in s.name
                        ]
                    if not chosen:
                        continue
                    out = work / "profile.txt"
                    command = [
                        str(Path(sys.executable).with_name("py-spy")),
                        "record", "--pid", str(server.pid), "--format", "raw",
                        "--duration", str(int(args.seconds)), "--rate", "200",
                        "--output", str(out), "--nonblocking",
                    ]  # fmt: skip
                    if args.gil:
                        command.append("--gil")
                    spy = threading.Thread(
                        target=subprocess.run, args=(command,), kwargs={"capture_output": True}
                    )
                    spy.start()
                    row = measure(
                        generators, server, chosen[0], args.database,
                        args.concurrency, 0.5, args.seconds - 1,
                    )  # fmt: skip
                    spy.join()
                    print(f"{chosen[0].name} C={args.concurrency}: {row.calls_per_second:.0f}/s")
                    print(summarise(out.read_text(), args.top))
                    return
                finally:
                    server.stop()
        finally:
            generators.close()
            stores.drop()


if __name__ == "__main__":
    main()
