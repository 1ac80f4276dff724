"""`seed` loads catalogs larger than one SQL statement's bound-parameter limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_seed_loads_65000_departments_and_a_second_run_adds_none(database_url, tmp_path):
    # 65,000 names in one INSERT are 260,000 values: more than the 250,000 bound parameters
    # this SQLite build takes (many builds take 32,766), which made `seed` fail.
    catalog = tmp_path / "large.json"
    catalog.write_text(json.dumps({"departments": [f"Department {n}" for n in range(65_000)]}))

    def seed() -> str:
        return subprocess.run(
            [sys.executable, "-m", "cohort_service", "seed", "--database-url", database_url,
             str(catalog)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    assert "65000 departments added" in seed()
    assert "0 departments added" in seed()
