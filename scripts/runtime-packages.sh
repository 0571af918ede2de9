#!/usr/bin/env bash
# Prints, one per line, the Debian packages a runtime image must install for
# an installed pipeline: those owning the shared libraries that
# PREFIX/bin/pipeline and the ONNX Runtime libraries under PREFIX/lib/her2wsi/
# link (ldd). Libraries ldd cannot resolve (the CUDA provider's CUDA
# libraries, which a CUDA base image brings) and resolved ones no package owns
# are named on stderr. The Dockerfile's build stage runs it; so does
# scripts/docker-check.sh. Sourcing it defines owners() and runs nothing.
#
#   scripts/runtime-packages.sh PREFIX
set -euo pipefail

# owners FILE...: prints "PACKAGE<TAB>FILE" per file ("-" when no package
# owns it). dpkg records a library under the path its package ships it at,
# which on merged-/usr systems may be /lib/... for a file ldd or realpath
# names /usr/lib/... (and back), so each file is looked up under its own
# path, its resolved path and their /lib <-> /usr/lib twins, in one dpkg call.
owners() {
  (($#)) || return 0
  local -a real cands=()
  local c
  mapfile -t real < <(realpath -m -- "$@")
  for c in "$@" "${real[@]}"; do
    cands+=("$c")
    case "$c" in
    /usr/lib/*) cands+=("${c#/usr}") ;;
    /lib/* | /lib64/*) cands+=("/usr$c") ;;
    esac
  done
  {
    dpkg -S "${cands[@]}" 2>/dev/null || true
    echo "--"
    paste <(printf '%s\n' "$@") <(printf '%s\n' "${real[@]}")
  } | awk -F'\t' '
    $0 == "--" { files = 1; next }
    !files {
      i = index($0, ": ")
      split(substr($0, 1, i - 1), pk, ", ")
      p = pk[1]; sub(/:.*/, "", p)
      owner[substr($0, i + 2)] = p
      next
    }
    {
      p = "-"
      for (j = 1; j <= 2 && p == "-"; j++) {
        c = $j
        if (c in owner) p = owner[c]
        else if (c ~ /^\/usr\/lib\// && substr(c, 5) in owner) p = owner[substr(c, 5)]
        else if (c ~ /^\/(lib|lib64)\// && ("/usr" c) in owner) p = owner["/usr" c]
      }
      print p "\t" $1
    }'
}

# linked FILE...: the libraries FILEs link, resolved by ldd (absolute paths);
# unresolved ones go to stderr.
linked() {
  local f
  for f in "$@"; do
    ldd "$f" 2>/dev/null | awk -v of="$f" '
      /=> not found/ { print "runtime-packages: " of " needs " $1 ", which is not found here (a CUDA base image brings the CUDA libraries)" > "/dev/stderr"; next }
      /=> \// { print $3; next }
      /^[ \t]*\// { print $1 }'
  done | sort -u
}

runtime_packages() {
  local prefix=${1:?usage: scripts/runtime-packages.sh PREFIX}
  local -a objs libs
  [ -x "$prefix/bin/pipeline" ] || { echo "runtime-packages: $prefix/bin/pipeline: no such executable" >&2; return 1; }
  mapfile -t objs < <(printf '%s\n' "$prefix/bin/pipeline"; find "$prefix/lib/her2wsi" -name '*.so*' -type f 2>/dev/null | sort)
  mapfile -t libs < <(linked "${objs[@]}")
  owners "${libs[@]}" | awk -F'\t' '
    $1 == "-" { print "runtime-packages: " $2 " belongs to no Debian package" > "/dev/stderr"; next }
    { print $1 }' | sort -u
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  runtime_packages "$@"
fi
