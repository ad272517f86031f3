# test_bench_ablate.py — bench/overhead/ablate.py's variants still apply to the collector and still
# compile. They are exact substitutions in the collector's sources, for timing one part of it taken
# out (`ab.sh ... ablate:VARIANT`); when the code they patch moves or a signature changes, a timing
# run stops after minutes of building (a9482d0: `hooks` called call_orig_run with one argument
# after e692ee6 gave it two). Here each variant is applied to a copy of collector/ and every file
# it changes is checked: C (a changed header: every source beside it that includes it) with this
# interpreter's headers and the extension's own warning flags
# (-fsyntax-only: seconds, not a build), Python by compiling it.
from __future__ import annotations

import ast
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ABLATE = ROOT / "bench" / "overhead" / "ablate.py"


def _setup_cflags() -> list:
    """The list collector/setup.py assigns to `cflags`, read from its source (importing setup.py
    would run setup()): the one place the extension's flags are written down."""
    tree = ast.parse((ROOT / "collector" / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["cflags"]:
            return ast.literal_eval(node.value)
    raise AssertionError("collector/setup.py assigns no cflags list")


# the flags collector/setup.py compiles with (LOOPSCOPE_WERROR=1), less code generation's
CFLAGS = [f for f in _setup_cflags() if not f.startswith(("-O", "-fvisibility"))] + ["-Werror", "-fsyntax-only"]


def _variants() -> dict:
    spec = importlib.util.spec_from_file_location("ablate", ABLATE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.VARIANTS


VARIANTS = _variants()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> pathlib.Path:
    """collector/ copied with its links followed (collector/common is one), as ab.sh copies it:
    by scripts/copy-collector.sh."""
    dst = tmp_path_factory.mktemp("collector") / "collector"
    subprocess.run([str(ROOT / "scripts" / "copy-collector.sh"), str(dst)], check=True)
    return dst


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_applies_and_compiles(variant, pristine, tmp_path):
    tree = tmp_path / "collector"
    shutil.copytree(pristine, tree)
    run = subprocess.run([sys.executable, str(ABLATE), variant, str(tree)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    changed = sorted({rel for rel, _old, _new in VARIANTS[variant]})
    for rel in changed:
        text = (tree / rel).read_text()
        assert text != (pristine / rel).read_text(), f"{variant}: {rel} unchanged"
        assert "ablate" in text
    if variant == "full":
        assert not changed
    includes = [f"-I{tree / 'src'}", f"-I{tree / 'common'}", f"-I{sysconfig.get_paths()['include']}"]
    platinclude = sysconfig.get_paths().get("platinclude")
    if platinclude:
        includes.append(f"-I{platinclude}")
    cc = os.environ.get("CC", "cc")
    sources = set()
    for rel in changed:
        path = tree / rel
        if rel.endswith(".c"):
            sources.add(path)
        elif rel.endswith(".h"):  # every source that includes it, in the same directory
            users = {c for c in path.parent.glob("*.c") if f'#include "{path.name}"' in c.read_text()}
            assert users, f"{variant}: nothing includes {rel}"
            sources |= users
        else:
            compile(path.read_text(), str(path), "exec")
    for path in sorted(sources):
        res = subprocess.run([cc, *CFLAGS, *includes, str(path)], capture_output=True, text=True)
        assert res.returncode == 0, f"{variant}: {path.relative_to(tree)} does not compile:\n{res.stderr}"
