# conftest.py — fixtures for the framework tests (tests/frameworks, run by
# scripts/test-frameworks.sh in the .venvs-fw venvs): `server`, the real loopscope-server for the
# whole session on a temporary database (LOOPSCOPE_SERVER_BIN), and `collector`,
# loopscope.install(**settings) against it, uninstalled after the test. Both are the collector
# tests' own, from tests/support/lstest.py.
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
# the shared fixtures count as this conftest's once imported here
from lstest import collector, server  # noqa: E402,F401
