#!/usr/bin/env bash
# scripts/copy-collector.sh DEST — a clean copy of collector/'s sources in DEST (made anew), with
# collector/common's link followed: what an sdist holds, ready for `pip install DEST` or
# `setup.py build_ext --inplace`. The one list of those files: every script that builds a copy of
# the collector (the test lanes, bench/overhead's run.sh and ab.sh) calls this.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: scripts/copy-collector.sh DEST" >&2; exit 2; }
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../collector" && pwd)"
rm -rf "$1" && mkdir -p "$1"
cp -rL "$SRC"/src "$SRC"/ext "$SRC"/common "$SRC"/loopscope "$SRC"/setup.py "$SRC"/pyproject.toml \
  "$SRC"/MANIFEST.in "$SRC"/pgo_train.py "$1"/
find "$1" -name __pycache__ -prune -exec rm -rf {} +
