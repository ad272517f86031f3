#!/usr/bin/env bash
# scripts/deps.sh — install everything loopscope needs on Debian/Ubuntu, idempotently:
# Debian packages, one Python venv per CPython >= 3.10 found (pyenv or system), the frameworks'
# venvs (.venvs-fw/: oldest and newest of those), the Debian sid root with CPython 3.14/3.15 and
# their venvs (.venvs-sid/), npm packages.
# Safe to run twice; does nothing that is already done. Needs root for apt-get.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PKGS=(build-essential cmake pkg-config libmicrohttpd-dev libsqlite3-dev sqlite3 libcjson-dev
          check libcurl4-openssl-dev zlib1g-dev gcovr valgrind python3 python3-venv python3-dev
          chromium nodejs npm curl ca-certificates)
missing=()
for p in "${APT_PKGS[@]}"; do
  # a package counts as present when dpkg knows it as installed, or (nodejs/npm/python3) the
  # command already exists from another source such as nodesource or pyenv
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then continue; fi
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
    python3|python3-venv|python3-dev) command -v python3 >/dev/null && continue ;;
  esac
  missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # Wait for another apt (unattended-upgrades at boot, a second install) instead of failing on its lock.
  APT_LOCK=(-o DPkg::Lock::Timeout=600)
  $SUDO apt-get "${APT_LOCK[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT_LOCK[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python interpreters: every CPython >= 3.10 that pyenv lists, else the system python3.
pythons=()
if command -v pyenv >/dev/null 2>&1; then
  for v in $(pyenv versions --bare 2>/dev/null); do
    exe="$(pyenv root)/versions/$v/bin/python3"
    [ -x "$exe" ] || continue
    if "$exe" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) and sys.implementation.name == "cpython" else 1)' 2>/dev/null; then
      pythons+=("$exe")
    fi
  done
fi
if ((${#pythons[@]} == 0)); then pythons+=("$(command -v python3)"); fi

# pip installs with --no-compile: byte-compiling every installed module was half of pip's CPU
# (3.12, requirements-dev.txt: 17.3 s of CPU with it, 9.2 s without); the tests import a fraction
# of those modules, and Python writes their .pyc on first import (scripts/test.sh and run.sh
# unset PYTHONDONTWRITEBYTECODE, which would stop that).
host_venv() { # host_venv EXE VENV REQUIREMENTS: make VENV from EXE, install REQUIREMENTS once (stamp)
  local exe="$1" venv="$2" req="$3"
  if [ ! -x "$venv/bin/python" ]; then
    echo "deps: creating venv $venv from $exe"
    "$exe" -m venv "$venv"
  fi
  local stamp="$venv/.deps-$(sha1sum "$req" | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "deps: installing Python packages into $venv ($req)"
    "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$venv/bin/python" -m pip install -q --no-compile -r "$req"
    touch "$stamp"
  fi
}

# The venvs are made side by side, one background job each (pip mostly waits on the registry and
# on unpacking; on a fresh machine nine venvs one after another were ~6 minutes of the test
# command). Each job's output goes to its own log, printed when all are done; a failed job fails
# deps.sh after every job has ended, so nothing is left half-made behind a still-running pip.
LOGS="$(mktemp -d /tmp/ls-deps-XXXXXX)"
jobs_pids=(); jobs_names=()
spawn() { # spawn NAME COMMAND...: run COMMAND in the background, output to $LOGS/NAME.log
  local name="$1"; shift
  ( set -euo pipefail; "$@" ) > "$LOGS/$name.log" 2>&1 &
  jobs_pids+=($!); jobs_names+=("$name")
}
finish() { # wait for every spawned job; print their logs in order; exit 1 if one failed
  local i bad=0
  for i in "${!jobs_pids[@]}"; do
    if ! wait "${jobs_pids[$i]}"; then bad=1; echo "deps: FAILED: ${jobs_names[$i]}"; fi
    cat "$LOGS/${jobs_names[$i]}.log"
  done
  rm -rf "$LOGS"
  if ((bad)); then exit 1; fi
}

mkdir -p .venvs .venvs-fw
: > .venvs/list
: > .venvs-fw/list
declare -A exe_of=()  # X.Y -> the interpreter its venvs are made from
for exe in "${pythons[@]}"; do
  ver="$("$exe" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  spawn "py$ver" host_venv "$exe" ".venvs/py$ver" scripts/requirements-dev.txt
  echo "$ROOT/.venvs/py$ver" >> .venvs/list
  exe_of[$ver]="$exe"
done

# The frameworks' venvs (tests/frameworks, scripts/test-frameworks.sh): Litestar with
# litestar-debug-toolbar, Starlette, FastAPI, uvicorn, hypercorn, granian, for the oldest and the
# newest host CPython of .venvs/list. A family apart: litestar-debug-toolbar and
# fastapi-debug-toolbar both install the package `debug_toolbar`, so they never share a venv.
for ver in $(printf '%s\n' "${!exe_of[@]}" | sort -V | sed -n '1p;$p' | uniq); do
  spawn "fw$ver" host_venv "${exe_of[$ver]}" ".venvs-fw/py$ver" scripts/requirements-frameworks.txt
  echo "$ROOT/.venvs-fw/py$ver" >> .venvs-fw/list
done

# CPython 3.14 and 3.15 (and 3.14's debug build) from Debian sid, in a chroot kept outside the work
# tree (scripts/sid-chroot.sh); their venvs live in .venvs-sid/ and run only inside that root.
# LOOPSCOPE_NO_SID=1 skips this (scripts/run.sh, which needs one Python only; a machine without
# root or without the Debian registry) and leaves .venvs-sid/list as it was. One lane: the root
# is made (or checked) first, then its venvs.
sid_venv() { # sid_venv EXE NAME: the venv .venvs-sid/NAME from EXE inside the sid root
  local exe="$1" venv=".venvs-sid/$2" stamp
  # (bin/python links to the root's /usr/bin/python3.x, which the host does not have)
  if [ ! -f "$venv/pyvenv.cfg" ] || [ ! -x "$(scripts/sid-chroot.sh path)$(readlink -f "$venv/bin/python")" ]; then
    echo "deps: creating venv $venv from $exe (sid root)"
    scripts/sid-chroot.sh run "$exe" -m venv "$ROOT/$venv"
  fi
  stamp="$venv/.deps-$(sha1sum scripts/requirements-dev.txt | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "deps: installing Python packages into $venv (sid root)"
    scripts/sid-chroot.sh run "$ROOT/$venv/bin/python" -m pip install -q --no-compile -r "$ROOT/scripts/requirements-dev.txt"
    touch "$stamp"
  fi
}
sid_lane() { # the root first, then its three venvs side by side (one after another, they were the
  # last job of deps.sh by ~45 s on a fresh clone: fc25, 152 s against 103-110 s for the others)
  local exe name pids=() rc=0 pid
  scripts/sid-chroot.sh make
  for exe in python3.14 python3.15 python3.14-dbg; do
    case "$exe" in *-dbg) name="py${exe#python}"; name="${name%-dbg}d" ;; *) name="py${exe#python}" ;; esac
    ( set -euo pipefail; sid_venv "$exe" "$name" ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return "$rc"
}
mkdir -p .venvs-sid
touch .venvs-sid/list
sid=""
if [ -z "${LOOPSCOPE_NO_SID:-}" ] && [ "$(id -u)" -eq 0 ]; then
  sid=1
  spawn sid sid_lane
fi

# npm packages for the browser tests and benchmarks (playwright-core drives Debian's chromium).
if [ -f tests/browser/package.json ]; then
  if [ ! -d tests/browser/node_modules ] || [ tests/browser/package.json -nt tests/browser/node_modules ]; then
    npm_install() { echo "deps: installing npm packages for tests/browser"; cd tests/browser && npm install --no-audit --no-fund --silent; }
    spawn npm npm_install
  fi
fi

finish
if [ -n "$sid" ]; then
  : > .venvs-sid/list
  for name in py3.14 py3.15 py3.14d; do echo "$ROOT/.venvs-sid/$name" >> .venvs-sid/list; done
fi
echo "deps: ok (venvs: $(cat .venvs/list .venvs-fw/list .venvs-sid/list | tr '\n' ' '))"
