"""Test-only launcher: arm the failpoints DRAFT_FAILPOINTS names, then run a service's main.

    DRAFT_FAILPOINTS="report.commit.after_update=kill@0.2" DRAFT_FAILPOINTS_SEED=7 \\
        python -m tests.reliability.armed_service report-service serve --port 0 ...

The production entry points (`report-service`, `python -m report_service`) never arm a
failpoint; only this module, which is not part of the distribution, reads the variables.
"""

from __future__ import annotations

import os
import sys

from shared import failpoints
from tests.processes import MODULES

SPEC_VARIABLE = "DRAFT_FAILPOINTS"
SEED_VARIABLE = "DRAFT_FAILPOINTS_SEED"


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in MODULES:
        sys.exit(f"usage: python -m tests.reliability.armed_service {{{','.join(MODULES)}}} ARGS")
    service, args = argv[0], argv[1:]
    # The service's own log says which are armed, in the format it was started with.
    failpoints.arm(os.environ.get(SPEC_VARIABLE, ""), seed=int(os.environ.get(SEED_VARIABLE, "0")))
    if service == "report-service":
        from report_service.__main__ import main as service_main
    else:
        from cohort_service.__main__ import main as service_main
    sys.argv = [service, *args]
    service_main()


if __name__ == "__main__":
    main(sys.argv[1:])
