"""Every benchmark with a command line starts as its README shows it (`.venv/bin/python bench/X.py`), outside
pytest's Django setup: `--help` imports the whole script. A module-level import of a Django model (through a
product module that reads the database) broke bench/duplicates.py once without any test noticing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(path.name for path in (REPO / "bench").glob("*.py") if "argparse" in path.read_text())


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_starts_without_django_settings(script: str) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, f"bench/{script}", "--help"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
