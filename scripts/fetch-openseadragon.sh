#!/usr/bin/env bash
# Fetches OpenSeadragon, the slide viewer's deep-zoom library, from the npm
# registry into viewer/assets/openseadragon/ (ignored by git; embedded into
# the binary by go:embed at the next build) — idempotently and verified by
# the SHA-256 of the npm tarball.
#
#   scripts/fetch-openseadragon.sh           fetch (skips when present and verified)
#   scripts/fetch-openseadragon.sh --check   fetch nothing: fail unless present
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=6.1.1
PKG=openseadragon@$VERSION
SHA=b4ab2942f33b90e0448e4d20fc5ed14cee049f1f3ae49d70afd4b05e9a2f92d0
DEST=viewer/assets/openseadragon
STAMP=$DEST/.version

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION $SHA" ] && [ -f "$DEST/openseadragon.min.js" ]; then
  exit 0
fi
if [ "${1:-}" = --check ]; then
  echo "fetch-openseadragon: $DEST: not fetched: run scripts/fetch-openseadragon.sh" >&2
  exit 1
fi
command -v npm >/dev/null || { echo "fetch-openseadragon: npm is needed to fetch $PKG (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-openseadragon: fetching $PKG" >&2
(cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
got=$(sha256sum "$tmp"/openseadragon-$VERSION.tgz | cut -d' ' -f1)
if [ "$got" != "$SHA" ]; then
  echo "fetch-openseadragon: checksum mismatch for $PKG: got $got, want $SHA" >&2
  exit 1
fi
tar -xzf "$tmp"/openseadragon-$VERSION.tgz -C "$tmp" package/build/openseadragon package/LICENSE.txt 2>/dev/null ||
  tar -xzf "$tmp"/openseadragon-$VERSION.tgz -C "$tmp" package/build/openseadragon
rm -rf "$DEST.tmp"
mkdir -p "$DEST.tmp"
cp -r "$tmp"/package/build/openseadragon/openseadragon.min.js "$tmp"/package/build/openseadragon/images "$DEST.tmp"/
[ -f "$tmp/package/LICENSE.txt" ] && cp "$tmp/package/LICENSE.txt" "$DEST.tmp/"
echo "$VERSION $SHA" > "$DEST.tmp/.version"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "fetch-openseadragon: $DEST ($PKG)" >&2
