"""`report-service` command line: serve, migrate, token."""

from __future__ import annotations

import shared.cli
from report_service.server import SERVICE


def main() -> None:
    shared.cli.main(SERVICE)


if __name__ == "__main__":
    main()
