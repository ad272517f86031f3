"""test_dockerfile.py — the Dockerfile stays in step with what it packages (there is no Docker
engine on the development machines, so this reads it and runs what can run without one): its
build stage installs scripts/deps.sh's Debian packages for every library CMake requires, its
runtime stage the package of every shared library the built loopscope-server links, .dockerignore
keeps host build trees, venvs, node_modules, artifacts and databases out and the sources in, the
server runs as a user of its own with its database on a volume, and the HEALTHCHECK command,
run here against the real server, passes while it serves and fails when it does not."""
import json
import pathlib
import re
import shlex
import subprocess

import pytest

from conftest import BINARY

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def stages():
    """The Dockerfile's stages, each a list of its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            out.append([])
        out[-1].append(line)
    return out


def apt_packages(stage):
    pkgs = []
    for ins in stage:
        for m in re.finditer(r"apt-get install ([^&]*)", ins):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def deps_sh_packages():
    m = re.search(r"APT_PKGS=\(([^)]*)\)", (ROOT / "scripts" / "deps.sh").read_text())
    return m.group(1).split()


def owner(path):
    """The Debian package that installed path (a dpkg -S pattern), for this machine's
    architecture: the image's base, debian:12, is this machine's Debian."""
    r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
    assert r.returncode == 0, (path, r.stderr)
    return r.stdout.splitlines()[0].split(":")[0]


def test_build_stage_installs_what_cmake_requires():
    build, _ = stages()
    pkgs = apt_packages(build)
    assert set(pkgs) <= set(deps_sh_packages()), set(pkgs) - set(deps_sh_packages())
    assert {"build-essential", "cmake", "pkg-config"} <= set(pkgs)
    modules = re.findall(r"pkg_check_modules\(\w+ REQUIRED IMPORTED_TARGET ([\w.-]+)\)",
                         (ROOT / "CMakeLists.txt").read_text())
    assert len(modules) >= 6
    for mod in modules:
        pc = subprocess.run(["pkg-config", "--variable=pcfiledir", mod], capture_output=True, text=True)
        assert pc.returncode == 0, mod
        assert owner(f"{pc.stdout.strip()}/{mod}.pc") in pkgs, mod


def test_runtime_stage_installs_every_linked_library():
    if not BINARY:
        pytest.skip("LOOPSCOPE_SERVER not set")
    _, runtime = stages()
    pkgs = set(apt_packages(runtime)) | {"libc6"}  # libc6 is in every Debian image
    dyn = subprocess.run(["readelf", "-d", BINARY], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    # an instrumented build (-DLOOPSCOPE_SANITIZE=ON) links the sanitizers' runtimes; the image's is Release
    needed = [lib for lib in needed if not re.match(r"lib(a|t|l|ub)san\.so", lib)]
    ldd = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(["ldd", BINARY], capture_output=True,
                                                                  text=True, check=True).stdout, re.M))
    assert "libmicrohttpd.so.12" in needed
    for lib in needed:  # /lib and /usr/lib are one on a merged /usr: by its multiarch directory
        assert owner(f"*/{pathlib.Path(ldd[lib]).parent.name}/{lib}") in pkgs, lib


def ignored(path, patterns):
    """Whether .dockerignore's patterns leave path out (as Docker matches: the whole relative
    path, ** for any directories; a directory's contents go with it; ! re-includes)."""
    out = False
    parts = path.split("/")
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        rx = re.escape(pat).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(rx, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            out = not neg
    return out


def test_dockerignore():
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    for path in ["build/CMakeCache.txt", "build-asan/server/loopscope-server", ".venvs/py3.10/bin/python",
                 ".venvs-sid/list", "tests/browser/node_modules/playwright-core/index.js", "artifacts/x.log",
                 "loopscope.db", "loopscope.db-wal", "bench/data/run.db", ".git/HEAD",
                 "collector/build/lib/x.so", "tests/__pycache__/x.pyc"]:
        assert ignored(path, patterns), path
    for path in ["CMakeLists.txt", "cmake/embed_assets.cmake", "server/main.c", "web/index.html",
                 "schema/openapi.yaml", "schema/migrations/0002.sql", "tests/CMakeLists.txt",
                 "tests/unit/test_stats.c", "tests/fuzz/CMakeLists.txt", "collector/src/ring.c",
                 "common/CMakeLists.txt", "common/dynbuf.c", "common/utf8.h"]:  # the server builds common/
        assert not ignored(path, patterns), path


def test_runs_as_its_own_user_with_a_volume_and_a_healthcheck():
    _, runtime = stages()
    users = [i.split()[1] for i in runtime if i.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(i.startswith("RUN useradd") and f" {users[-1]}" in i for i in runtime)
    volume = [i.split()[1] for i in runtime if i.startswith("VOLUME ")]
    entry = json.loads([i for i in runtime if i.startswith("ENTRYPOINT ")][0][len("ENTRYPOINT "):])
    db = entry[entry.index("--db") + 1]
    assert volume and db.startswith(volume[0] + "/"), (volume, db)
    assert any(f"chown {users[-1]}:{users[-1]} {volume[0]}" in i for i in runtime)
    assert entry[entry.index("--listen") + 1] == "0.0.0.0:7878"


def healthcheck_command():
    (hc,) = [i for i in stages()[1] if i.startswith("HEALTHCHECK ")]
    return json.loads(hc[hc.index("CMD ") + 4:])


def test_healthcheck_passes_while_the_server_serves(server):
    cmd = [c.replace("/7878", f"/{server.port}") for c in healthcheck_command()]
    assert "/healthz" in cmd[-1]
    assert subprocess.run(cmd, timeout=10).returncode == 0, shlex.join(cmd)
    assert server.stop() == 0
    assert subprocess.run(cmd, timeout=10, stderr=subprocess.DEVNULL).returncode != 0, shlex.join(cmd)
