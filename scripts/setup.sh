#!/usr/bin/env bash
# Installs what building and testing her2wsi needs on Debian 12, idempotently:
# only missing packages are installed, and nothing when all are present.
# apt's and dpkg's locks, which a fresh cloud machine's boot-time updates
# hold, are waited for (up to APT_LOCK_TIMEOUT seconds, default 300) instead
# of failing. Sourcing this file defines its functions and runs nothing.
set -euo pipefail

APT_LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-300}
APT_LOCK_POLL=${APT_LOCK_POLL:-2}
APT_LOCKS=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
SUDO=${SUDO-}

# lock_holder FILE: prints the process holding a lock on FILE ("PID (NAME)")
# and succeeds, or fails when none does. apt and dpkg take fcntl locks, which
# /proc/locks lists with flock(1)'s; fuser(1), where installed, also counts a
# process that has the file open (the locks of other users' processes are
# visible in /proc/locks without root).
lock_holder() {
  local f=$1 ino pid
  [ -e "$f" ] || return 1
  ino=$(stat -L -c %i "$f" 2>/dev/null) || return 1
  pid=$(awk -v ino="$ino" '$2 != "->" { n = split($6, d, ":"); if (n == 3 && d[3] == ino) { print $5; exit } }' /proc/locks 2>/dev/null)
  if [ -z "$pid" ] && command -v fuser >/dev/null 2>&1; then
    pid=$(fuser "$f" 2>/dev/null | awk '{print $1}')
  fi
  [ -n "$pid" ] || return 1
  echo "$pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo '?'))"
}

# wait_for_locks TIMEOUT FILE...: returns once no FILE is locked, saying on
# stderr that it waits and for whom; fails after TIMEOUT seconds.
wait_for_locks() {
  local timeout=$1 start f who said=
  shift
  start=$(date +%s)
  while :; do
    who=
    for f in "$@"; do
      if who=$(lock_holder "$f"); then break; fi
      who=
    done
    [ -z "$who" ] && return 0
    if (($(date +%s) - start >= timeout)); then
      echo "setup: $f is still locked by process $who after ${timeout} s: wait for it to finish (or stop it), then run make again" >&2
      return 1
    fi
    if [ -z "$said" ]; then
      echo "setup: waiting for $f, locked by process $who (apt or dpkg at work; up to ${timeout} s)" >&2
      said=1
    fi
    sleep "$APT_LOCK_POLL"
  done
}

# apt_get ARGS...: apt-get once apt's and dpkg's locks are free, with dpkg's
# own lock timeout for the rest of the wait (apt-get update ignores it on
# older apt), retried while it reports a lock taken in between.
apt_get() {
  local deadline left rc err
  deadline=$(($(date +%s) + APT_LOCK_TIMEOUT))
  err=$(mktemp)
  while :; do
    left=$((deadline - $(date +%s)))
    ((left > 0)) || left=1
    wait_for_locks "$left" "${APT_LOCKS[@]}" || { rm -f "$err"; return 1; }
    left=$((deadline - $(date +%s)))
    ((left > 0)) || left=1
    rc=0
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$left" "$@" 2>"$err" || rc=$?
    cat "$err" >&2
    if ((rc != 0)) && grep -qE 'Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock' "$err" && (($(date +%s) < deadline)); then
      echo "setup: apt-get $1 found a lock taken; waiting again" >&2
      sleep "$APT_LOCK_POLL"
      continue
    fi
    rm -f "$err"
    return "$rc"
  done
}

main() {

  APT_PACKAGES=(
    gcc pkg-config            # cgo
    libvips-dev               # slide reading (libvips 8.14)
    openslide-tools libopenslide-dev  # OpenSlide formats (associated images via its C API); openslide-show-properties for tests
    libhdf5-dev hdf5-tools    # HDF5 outputs; h5dump for tests
    python3-h5py              # tests check that h5py reads our files
    chromium                  # the watch folder's status page is tested in headless Chromium
  )
  # npm fetches the ONNX Runtime library (scripts/fetch-onnxruntime.sh).
  command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)

  # `scripts/setup.sh export`: also what exporting ONNX encoders needs (make vit-model).
  if [ "${1:-}" = export ]; then
    APT_PACKAGES+=(python3-torch python3-onnx python3-numpy python3-pil)
  fi

  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    apt_get update -q
    apt_get install -y -q --no-install-recommends "${missing[@]}"
  fi

  if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
    echo "setup: Go is not installed (expected at /usr/local/go); install Go >= 1.26 from https://go.dev/dl" >&2
    exit 1
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
