#!/usr/bin/env bash
# scripts/sid-chroot.sh — the Debian sid root that carries CPython 3.14 and 3.15 (with their
# test suites and 3.14's debug interpreter), made with debootstrap outside the work tree and
# reused when present. `sid-chroot.sh` makes or updates it; `sid-chroot.sh run CMD...` runs a
# command inside it in the same working directory (/proc, /dev and the work tree bound in, DNS
# and the host's CA bundle copied, LOOPSCOPE_*/proxy/pip variables passed through).
#
# Where: $LOOPSCOPE_CACHE (default /var/cache/loopscope)/sid. It depends only on the machine,
# so CI caches it there and never inside the clone. Needs root (debootstrap, chroot, mount).
set -euo pipefail
CACHE="${LOOPSCOPE_CACHE:-/var/cache/loopscope}"
SID="$CACHE/sid"
MIRROR="${LOOPSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# What the collector's build, its tests and the compatibility gate need inside the root (the
# server's libraries too: the tests there start the host-built loopscope-server binary).
PKGS=(build-essential pkg-config ca-certificates libcurl4-openssl-dev zlib1g-dev
      libmicrohttpd-dev libcjson-dev libsqlite3-dev
      python3.14-dev python3.14-venv libpython3.14-testsuite python3.14-dbg
      python3.15-dev python3.15-venv libpython3.15-testsuite
      valgrind)  # bench/overhead/callgrind.sh on 3.14/3.15
STAMP="$SID/.loopscope-$(printf '%s\n' "${PKGS[@]}" | sha1sum | cut -c1-12)"

log() { echo "sid-chroot: $*" >&2; }

# The work tree bound at the same path inside. A bind mount left by an earlier run may show a
# tree that has since been deleted and cloned again at the same path (CI reuses the machine's
# cache, not its clones): mountpoint(1) still says yes, but the root sees an empty, deleted
# directory. So a probe file made in the tree must be visible through the mount, else re-bind.
bind_work_tree() {
  local probe
  mkdir -p "$SID/$ROOT"
  probe="$(mktemp "$ROOT/.sid-probe.XXXXXX")"
  if ! [ -e "$SID/$probe" ]; then
    if mountpoint -q "$SID/$ROOT"; then
      log "re-binding $ROOT (the mount there showed another, deleted tree)"
      umount -l "$SID/$ROOT"
      mkdir -p "$SID/$ROOT"
    fi
    mount --bind "$ROOT" "$SID/$ROOT"
  fi
  rm -f "$probe"
  [ -e "$SID/$ROOT/scripts/sid-chroot.sh" ] || { log "cannot bind $ROOT into $SID"; exit 1; }
}

prepare_mounts() { # bind what a build and a test run need; idempotent
  local d
  for d in proc dev dev/pts sys; do
    mountpoint -q "$SID/$d" && continue
    case "$d" in
      proc) mount -t proc proc "$SID/proc" ;;
      sys) mount -t sysfs sys "$SID/sys" ;;
      *) mount --bind "/$d" "$SID/$d" ;;
    esac
  done
  bind_work_tree
  mkdir -p "$SID/tmp" && chmod 1777 "$SID/tmp"
  install_file /etc/resolv.conf "$SID/etc/resolv.conf" 2>/dev/null || true
  # pip inside trusts what the host trusts (a registry proxy may sign with a local CA)
  local ca
  for ca in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [ -n "$ca" ] && [ -f "$ca" ] && { install_file "$ca" "$SID/etc/loopscope-host-ca.crt"; break; }
  done
}

# Copies SRC over DST only when they differ, by rename: commands already running inside read these
# files at any time (every `run` prepares the mounts again), and a copy in place let one of them
# read a half-written CA bundle (httpx: "ssl.SSLError: [X509] PEM lib" in a 3.14 test).
install_file() {
  cmp -s "$1" "$2" && return 0
  cp -L "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

# The environment a command inside gets: a clean one, plus the host's proxy and pip settings.
chroot_env() {
  local v
  printf '%s\n' PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
  [ -f "$SID/etc/loopscope-host-ca.crt" ] && printf '%s\n' PIP_CERT=/etc/loopscope-host-ca.crt \
    SSL_CERT_FILE=/etc/loopscope-host-ca.crt REQUESTS_CA_BUNDLE=/etc/loopscope-host-ca.crt
  for v in CI PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_DEFAULT_TIMEOUT PIP_DISABLE_PIP_VERSION_CHECK \
           http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && printf '%s=%s\n' "$v" "${!v}"
  done
  for v in $(compgen -e | grep -E '^LOOPSCOPE_' || true); do printf '%s=%s\n' "$v" "${!v}"; done
}

make_root() {
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
  }
  if [ ! -x "$SID/usr/bin/apt-get" ]; then
    log "debootstrap sid into $SID (a few minutes, once per machine)"
    rm -rf "$SID.partial"; mkdir -p "$CACHE"
    debootstrap --variant=minbase sid "$SID.partial" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
      tail -n 30 "$CACHE/debootstrap.log" >&2; log "debootstrap failed (log: $CACHE/debootstrap.log)"; exit 1; }
    mv "$SID.partial" "$SID"
  fi
  if [ ! -f "$STAMP" ]; then
    prepare_mounts
    # The registry this machine reaches may serve sid as a snapshot whose Release file has passed
    # its Valid-Until date; the packages are still signed and checked, only the date is not.
    echo 'Acquire::Check-Valid-Until "false";' > "$SID/etc/apt/apt.conf.d/99loopscope"
    log "installing ${PKGS[*]} in the sid root"
    chroot "$SID" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      sh -c 'apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null' sh "${PKGS[@]}"
    rm -f "$SID"/.loopscope-*
    touch "$STAMP"
  fi
}

# One make/mount at a time: the gate runs several interpreters in parallel. The lock is held in a
# subshell only, so the command that `run` execs does not keep it.
locked() { ( flock 9; "$@" ) 9>"$CACHE/.lock"; }
mkdir -p "$CACHE"

case "${1:-make}" in
  make) locked make_root; log "ok: $(chroot "$SID" python3.14 -V 2>&1), $(chroot "$SID" python3.15 -V 2>&1) in $SID" ;;
  run) shift; locked make_root; locked prepare_mounts
       mapfile -t envs < <(chroot_env)
       # the same working directory inside when it is one the root can see (the bound work tree)
       cwd=/; [ -d "$SID/$PWD" ] && cwd="$PWD"
       exec chroot "$SID" /usr/bin/env -i -C "$cwd" "${envs[@]}" "$@" ;;
  path) echo "$SID" ;;
  *) echo "usage: sid-chroot.sh [make | run CMD... | path]" >&2; exit 2 ;;
esac
