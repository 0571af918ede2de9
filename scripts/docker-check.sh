#!/usr/bin/env bash
# Checks, without Docker, that the Dockerfile's runtime image holds every
# file the pipeline binary loads at run time (make docker-check; make test
# runs it):
#
#  1. the Dockerfile: its build stage installs the binary and ONNX Runtime
#     with scripts/install.sh into a prefix and lists the runtime packages
#     with scripts/runtime-packages.sh; its runtime stage copies that prefix
#     to a folder whose bin/ is on PATH (or is the ENTRYPOINT's) and
#     apt-installs the listed packages; the CUDA-enabled build is fetched for
#     CUDA bases;
#  2. the same steps here, on BIN (default bin/pipeline): install into a
#     temporary prefix, list the packages, and take their dependency closure
#     (apt-cache depends, no Recommends: the runtime stage installs with
#     --no-install-recommends) plus what a Debian base image always has
#     (Essential and Priority: required);
#  3. what the installed binary really loads: every shared object ld.so maps
#     (LD_DEBUG=files) while it makes a slide, reads it through libvips and
#     OpenSlide, tiles, embeds with the test encoder (ONNX Runtime) and
#     computes anchors, run from another folder with HER2WSI_ORT_LIB unset,
#     plus ldd of the binary and of every installed ONNX Runtime library;
#  4. each such file must be in the copied prefix, or belong (dpkg -S) to a
#     package of that closure; ONNX Runtime must come from the prefix's
#     lib/her2wsi/. Libraries only a CUDA base image brings (the CUDA
#     provider's) are listed.
#
#   scripts/docker-check.sh [--dockerfile-only]   (--dockerfile-only: step 1 alone)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BIN=${BIN:-bin/pipeline}
DOCKERFILE=${DOCKERFILE:-Dockerfile}
# shellcheck source=runtime-packages.sh
source scripts/runtime-packages.sh

fails=0
fail() { echo "docker-check: FAIL: $*" >&2; fails=$((fails + 1)); }
note() { echo "docker-check: $*" >&2; }

only_dockerfile=
[ "${1:-}" = --dockerfile-only ] && only_dockerfile=1
[ -n "$only_dockerfile" ] || [ -x "$BIN" ] || { echo "docker-check: $BIN: no such executable (make build makes it)" >&2; exit 1; }
[ -f "$DOCKERFILE" ] || { echo "docker-check: $DOCKERFILE: no such file" >&2; exit 1; }

# --- 1. the Dockerfile ------------------------------------------------------
# One instruction per line as "STAGE<TAB>INSTRUCTION<TAB>ARGUMENTS": comment
# lines dropped (also inside continuations, as Docker does), continuations
# joined.
instructions=$(awk '
  /^[ \t]*#/ { next }
  { line = (cont ? line " " : "") $0 }
  /\\[ \t]*$/ { sub(/\\[ \t]*$/, "", line); cont = 1; next }
  { cont = 0; if (line ~ /^[ \t]*$/) { line = ""; next }
    n = split(line, w, /[ \t]+/); i = (w[1] == "" ? 2 : 1)
    ins = toupper(w[i]); args = line; sub(/^[ \t]*[^ \t]+[ \t]*/, "", args)
    if (ins == "FROM") { stage = (tolower(w[n - 1]) == "as") ? w[n] : "#" (++anon) }
    gsub(/[ \t]+/, " ", args)
    print stage "\t" ins "\t" args; line = "" }' "$DOCKERFILE")
stage_lines() { awk -F'\t' -v s="$1" -v i="$2" '$1 == s && $2 == i { print $3 }' <<<"$instructions"; }

build_runs=$(stage_lines build RUN)
prefix_out=$(grep -oE 'scripts/install\.sh( --bin [^ ]+)? [^ ;&|]+' <<<"$build_runs" | awk '{print $NF}' | head -1 || true)
pkg_out=$(grep -oE 'scripts/runtime-packages\.sh [^ ]+ > *[^ ;&|]+' <<<"$build_runs" | head -1 || true)
[ -n "$prefix_out" ] || fail "$DOCKERFILE: the build stage does not run scripts/install.sh --bin BIN PREFIX"
[ -n "$pkg_out" ] || fail "$DOCKERFILE: the build stage does not run scripts/runtime-packages.sh PREFIX > FILE"
pkg_prefix=$(awk '{print $2}' <<<"$pkg_out")
pkg_file=$(sed -E 's/.*> *//' <<<"$pkg_out")
if [ -n "$pkg_out" ] && [ -n "$prefix_out" ] && [ "${pkg_prefix%/}" != "${prefix_out%/}" ]; then
  fail "$DOCKERFILE: runtime-packages.sh reads $pkg_prefix but install.sh installs into $prefix_out"
fi
# A RUN that fetches the CUDA-enabled build on a condition naming cuda (the
# base image), before (or in the RUN of) scripts/install.sh.
if ! grep -E 'cuda' <<<"$build_runs" | grep -q 'fetch-onnxruntime\.sh gpu'; then
  fail "$DOCKERFILE: the build stage does not fetch the CUDA-enabled ONNX Runtime (scripts/fetch-onnxruntime.sh gpu) for CUDA bases"
elif [ -n "$prefix_out" ] && ! awk '/fetch-onnxruntime\.sh gpu/ && !g { g = NR } /scripts\/install\.sh/ { i = NR } END { exit !(g <= i) }' <<<"$build_runs"; then
  fail "$DOCKERFILE: scripts/install.sh runs before the CUDA-enabled ONNX Runtime is fetched"
fi

dest=
pkg_tmp=
while read -r line; do
  [[ $line == --from=build\ * ]] || continue
  read -r _ src dst <<<"$line"
  if [ -n "$prefix_out" ] && [ "${src%/}" = "${prefix_out%/}" ]; then dest=${dst%/}; fi
  if [ -n "$pkg_file" ] && [ "$src" = "$pkg_file" ]; then pkg_tmp=$dst; fi
done < <(stage_lines runtime COPY)
[ -n "$dest" ] || fail "$DOCKERFILE: the runtime stage does not COPY --from=build ${prefix_out:-PREFIX}/ (the installed layout)"
runtime_runs=$(stage_lines runtime RUN)
apt_line=$(grep -oE 'apt-get install [^&;|]*' <<<"$runtime_runs" | head -1 || true)
if [ -z "$pkg_tmp" ] || ! grep -qF "\$(cat $pkg_tmp)" <<<"$apt_line"; then
  fail "$DOCKERFILE: the runtime stage does not apt-get install the packages listed by runtime-packages.sh (\$(cat ${pkg_tmp:-FILE}))"
fi
literal=$(tr ' ' '\n' <<<"${apt_line#apt-get install}" | grep -vE '^(-|\$|$)|\)$' || true)
entry=$(stage_lines runtime ENTRYPOINT | tail -1 || true)
entry_bin=$(sed -E 's/^\[ *"([^"]+)".*/\1/; s/^([^ [][^ ]*).*/\1/' <<<"$entry")
if [ -n "$dest" ]; then
  case "$entry_bin" in
  "$dest/bin/pipeline") ;;
  pipeline)
    case ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:" in
    *":$dest/bin:"*) ;;
    *) fail "$DOCKERFILE: ENTRYPOINT runs pipeline, but $dest/bin is not on the default PATH" ;;
    esac ;;
  *) fail "$DOCKERFILE: ENTRYPOINT $entry does not run $dest/bin/pipeline" ;;
  esac
fi

if [ -n "$only_dockerfile" ]; then
  ((fails == 0)) || exit 1
  echo "docker-check: $DOCKERFILE: ok (the runtime stage copies $prefix_out/ to $dest/ and installs the packages in $pkg_file)"
  exit 0
fi

# --- 2. the build stage's steps, here -----------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
scripts/install.sh --bin "$BIN" "$prefix" 2>"$tmp/install.log" || { cat "$tmp/install.log" >&2; exit 1; }
runtime_packages "$prefix" >"$tmp/packages" 2>"$tmp/packages.err"
grep -v 'which is not found here' "$tmp/packages.err" >&2 || true
mapfile -t cuda_libs < <(grep -oE 'needs [^,]+, which is not found here' "$tmp/packages.err" | awk '{sub(/,$/, "", $2); print $2}' | sort -u)
# shellcheck disable=SC2046
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
  $(cat "$tmp/packages") $literal 2>/dev/null | grep -v '^ ' | sort -u >"$tmp/closure"
dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' | awk '$2 == "yes" || $3 == "required" {print $1}' >>"$tmp/closure"
sort -u -o "$tmp/closure" "$tmp/closure"

# --- 3. what the installed binary loads ---------------------------------------
work=$tmp/elsewhere
mkdir -p "$work" "$tmp/ld"
encoder=$root/features/testdata/encoders/tiny-clip.onnx
# DOCKER_CHECK_PRELOAD (tests of this check): libraries forced into the
# traced runs alone, as a new dependency of the binary would be.
run() {
  (cd "$work" && env -u HER2WSI_ORT_LIB -u LD_LIBRARY_PATH ${DOCKER_CHECK_PRELOAD:+LD_PRELOAD="$DOCKER_CHECK_PRELOAD"} \
    LD_DEBUG=files LD_DEBUG_OUTPUT="$tmp/ld/trace" "$prefix/bin/pipeline" "$@") >"$tmp/run.log" 2>&1 || {
    fail "pipeline $* (run as the runtime image would, from $work): $(tail -3 "$tmp/run.log")"
    return 0
  }
}
run synth --out slide.svs --width 2048 --height 1536 --mpp 0.5 --mag 20
run info slide.svs
run run --input slide.svs --work work --stage tile,embed,anchors --encoder "$encoder"
run run --input slide.svs --work work2 --stage tile --reader openslideload
loaded=$(cat "$tmp"/ld/trace.* 2>/dev/null | sed -nE 's/.*calling init: (\/.*)$/\1/p; s/.*file=(\/[^ ]+) \[[0-9]+\];  dynamically loaded by.*/\1/p' | sort -u)
[ -n "$loaded" ] || fail "LD_DEBUG traced nothing (is $BIN dynamically linked?)"
mapfile -t objs < <(printf '%s\n' "$prefix/bin/pipeline"; find "$prefix/lib" -name '*.so*' -type f | sort)
files=$( { printf '%s\n' "$loaded"; linked "${objs[@]}" 2>/dev/null; } | sort -u)

# --- 4. each file is in the image ----------------------------------------------
ort_lib=$(grep -E '/libonnxruntime\.so' <<<"$loaded" | head -1 || true)
if [ "$ort_lib" != "$prefix/lib/her2wsi/libonnxruntime.so.1" ]; then
  fail "the installed binary loaded ONNX Runtime from ${ort_lib:-nowhere}, not from its lib/her2wsi/libonnxruntime.so.1"
fi
mapfile -t outside < <(grep -vF "$prefix/" <<<"$files" || true)
while IFS=$'\t' read -r pkg f; do
  if [ "$pkg" = - ]; then
    fail "$f is loaded at run time, but no Debian package owns it and the runtime stage does not copy it"
  elif ! grep -qxF "$pkg" "$tmp/closure"; then
    fail "$f (package $pkg) is loaded at run time, but the runtime stage installs neither $pkg nor a package depending on it"
  fi
done < <(owners "${outside[@]}")
while read -r f; do
  [ -n "$f" ] || continue
  [ -f "$f" ] || fail "$f is loaded but not installed in the prefix"
done < <(grep -F "$prefix/" <<<"$files" || true)
shipped=$(cd "$prefix" && find . -type f | sed 's#^\./##' | sort | paste -sd' ')

if ((fails)); then
  echo "docker-check: $fails problem(s): the runtime image would lack what the binary loads" >&2
  exit 1
fi
echo "docker-check: ok: ${#outside[@]} system libraries loaded or linked at run time, all from the $(wc -l <"$tmp/packages") packages the runtime stage installs or their dependencies; ONNX Runtime loaded from the installed lib/her2wsi/; the runtime stage copies the prefix to $dest/ ($shipped)"
if [ -d "$prefix/lib/her2wsi/gpu" ]; then
  echo "docker-check: CUDA variant: $dest/lib/her2wsi/gpu/ holds the CUDA-enabled ONNX Runtime; its CUDA provider needs ${cuda_libs[*]:-nothing more} from the CUDA base image and the host's driver (not checkable here)"
fi
