"""`cohort-service` command line: serve, migrate, token, seed."""

from __future__ import annotations

import shared.cli
from cohort_service.server import SERVICE


def main() -> None:
    shared.cli.main(SERVICE)


if __name__ == "__main__":
    main()
