# test_build_pgo.py — collector/setup.py's profile-guided build gives way instead of failing. It
# builds _core instrumented, runs pgo_train.py against it and builds again from the profile; a user's
# install must not fail when any of that cannot happen. Here a copy of collector/ is built whose
# training run fails, and one with LOOPSCOPE_PGO=0: each must build, say how it was built
# (loopscope._core.BUILD == "plain"), and record like any build. That the usual build is the
# profile-guided one is checked where every venv's is installed (scripts/test-collector.sh).
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# what the built module is asked: how it was built, and that it records (its events counted)
PROBE = """
import asyncio, loopscope
import loopscope._core as core
loopscope.install(offline=True)
async def main():
    await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0))
with loopscope.session("probe"):
    asyncio.run(main())
loopscope.flush(10)
print(core.BUILD, loopscope.stats()["events"])
loopscope.uninstall()
"""

def _build(tmp_path: pathlib.Path, env_extra: dict, train: str | None) -> tuple:
    tree = tmp_path / "collector"
    subprocess.run([str(ROOT / "scripts" / "copy-collector.sh"), str(tree)], check=True)  # as CI copies it
    if train is not None:
        (tree / "pgo_train.py").write_text(train)
    # the build and the probe are about setup.py: without the ASan lane's preloads and path
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOOPSCOPE_", "ASAN_", "UBSAN_")) and k not in ("LD_PRELOAD", "PYTHONPATH", "PYTHONMALLOC")}
    env.update(LOOPSCOPE_WERROR="1", **env_extra)
    b = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree, env=env,
                       capture_output=True, text=True, timeout=600)
    assert b.returncode == 0, b.stderr[-3000:]
    p = subprocess.run([sys.executable, "-c", PROBE], cwd=tree, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return b.stderr, p.stdout.split()


@pytest.mark.skipif(sys.platform != "linux", reason="the collector builds on Linux")
def test_a_failing_training_run_falls_back_to_the_plain_build(tmp_path):
    err, (build, events) = _build(tmp_path, {}, 'raise SystemExit("no training on this machine")\n')
    assert "profile-guided build skipped (the training run failed: ['no training on this machine'])" in err, err
    assert build == "plain" and int(events) >= 6  # three tasks' records at least


@pytest.mark.skipif(sys.platform != "linux", reason="the collector builds on Linux")
def test_loopscope_pgo_0_builds_plain_without_training(tmp_path):
    # a training run that would fail loudly: LOOPSCOPE_PGO=0 must not start it
    err, (build, events) = _build(tmp_path, {"LOOPSCOPE_PGO": "0"}, 'raise SystemExit("trained anyway")\n')
    assert "trained anyway" not in err and "profile-guided" not in err, err
    assert build == "plain" and int(events) >= 6
