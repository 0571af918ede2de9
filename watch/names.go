package watch

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/her2wsi/her2wsi/slide"
)

// The watch folder's file-name budget. Every name the watcher derives from
// an inbox file name must fit the usual 255-byte limit of a file name,
// including the temporary names of atomic writes (".<name>.tmp-<16 hex>"):
// the journal WORK/watch/<id>.json, the name in done/ or failed/ with a _N
// suffix, and failed/<name>.reason.txt.
const (
	maxNameBytes = 255
	// atomicTempExtra is what a temporary name adds to the final one.
	atomicTempExtra = len(".") + len(".tmp-") + 16
	reasonSuffix    = ".reason.txt"
	// maxMoveSuffix is the largest _N suffix moveSlide adds (maxMoveN).
	maxMoveN      = 10000
	maxMoveSuffix = len("_10000")
	// maxMovedName bounds a name moved into done/ or failed/ (before its _N
	// suffix), so that its reason file's temporary name still fits.
	maxMovedName = maxNameBytes - atomicTempExtra - len(reasonSuffix) - maxMoveSuffix
	// maxWatchID bounds a slide id: its journal's temporary name must fit.
	maxWatchID = maxNameBytes - atomicTempExtra - len(".json")
	// nameHashLen is the number of hex digits of SHA-256 of a full file
	// name that a shortened name or id ends with.
	nameHashLen = 10
)

// nameHash is the first nameHashLen hex digits of SHA-256 of name.
func nameHash(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:])[:nameHashLen]
}

// truncUTF8 cuts s to at most n bytes, at a rune boundary where s is UTF-8.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n]
}

// shortened is s when it has at most max bytes, else s cut short followed
// by "-" and the hash of full, max bytes at most: names that differ keep
// differing however long they are.
func shortened(s string, max int, full string) string {
	if len(s) <= max {
		return s
	}
	return truncUTF8(s, max-1-nameHashLen) + "-" + nameHash(full)
}

// splitExt splits a file name into stem and extension the way slide.ID
// does (a name that is all extension has none).
func splitExt(name string) (stem, ext string) {
	ext = filepath.Ext(name)
	if ext == name {
		ext = ""
	}
	return strings.TrimSuffix(name, ext), ext
}

// movedName is the name an inbox file gets in done/ or failed/ (before a
// _N suffix that keeps it from replacing another): the name itself when it
// fits maxMovedName, else its stem shortened with a hash of the full name,
// the extension kept.
func movedName(name string) string {
	if len(name) <= maxMovedName {
		return name
	}
	stem, ext := splitExt(name)
	if len(ext) > maxMovedName/2 { // not a slide extension: shorten it all
		stem, ext = name, ""
	}
	return shortened(stem, maxMovedName-len(ext), name) + ext
}

// watchIDs lists the ids an inbox file may take, best first: its name
// without extension (shortened as in movedName when too long, so the id
// matches the name in done/), then that with the extension appended
// ("x-tif"), then with a hash of the full name ("x-0123456789"). A file
// takes the first id no other file holds (see Watcher.chooseID), so that
// x.svs and x.tif never share one.
func watchIDs(name string) []string {
	base := slide.ID(movedName(name))
	_, ext := splitExt(name)
	ids := []string{base}
	if e := strings.TrimPrefix(ext, "."); e != "" {
		ids = append(ids, shortened(base+"-"+e, maxWatchID, name))
	}
	return append(ids, truncUTF8(base, maxWatchID-1-nameHashLen)+"-"+nameHash(name))
}
