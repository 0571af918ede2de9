package pipeline

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Freshness: one place decides whether a stage's outputs for a slide are
// up to date. Each stage names a key: a SHA-256 over the content of
// everything that decides its outputs (the slide file's fingerprint, the
// coordinates' checksum, the encoder's weights, the stage's parameters).
// After a stage has run, the runner records the key in state.json together
// with a stamp (size and modification time) of each output file. A stage
// is fresh exactly when state.json records the same key, status done, and
// every output still has its stamp: a re-scan under the same name changes
// the fingerprint, a changed parameter changes the key, and an output
// removed or rewritten by hand changes a stamp. A lost state.json makes the
// next run redo the work, never skip it.

// fingerprintChunk, fingerprintSamples: the slide fingerprint reads the
// first and last MiB and 16 chunks of 64 KiB spread evenly between them:
// about 3 MiB of a 3 GB slide, a few milliseconds, and a re-scan (new
// header date, new pixels) cannot keep it.
const (
	fingerprintEdge    = 1 << 20
	fingerprintChunk   = 64 << 10
	fingerprintSamples = 16
)

// SlideFingerprint returns a hex SHA-256 over a slide file's size and
// sampled content (and, for a slide with a companion data folder such as
// MIRAX, the names, sizes and sampled content of the files in it).
func SlideFingerprint(path string) (string, error) {
	h := sha256.New()
	if err := fingerprintFile(h, path); err != nil {
		return "", err
	}
	if ext := filepath.Ext(path); strings.EqualFold(ext, ".mrxs") {
		dir := strings.TrimSuffix(path, ext)
		var files []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		sort.Strings(files)
		for _, f := range files {
			rel, _ := filepath.Rel(dir, f)
			io.WriteString(h, rel+"\x00")
			if err := fingerprintFile(h, f); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fingerprintFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pipeline: fingerprint %s: %w", filepath.Base(path), unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("pipeline: fingerprint %s: %w", filepath.Base(path), err)
	}
	size := fi.Size()
	var sz [8]byte
	binary.LittleEndian.PutUint64(sz[:], uint64(size))
	h.Write(sz[:])
	read := func(off, n int64) error {
		if off < 0 {
			off = 0
		}
		if off+n > size {
			n = size - off
		}
		if n <= 0 {
			return nil
		}
		if _, err := io.Copy(h, io.NewSectionReader(f, off, n)); err != nil {
			return fmt.Errorf("pipeline: fingerprint %s: %w", filepath.Base(path), err)
		}
		return nil
	}
	if size <= 2*fingerprintEdge+fingerprintSamples*fingerprintChunk {
		return read(0, size) // small: all of it
	}
	if err := read(0, fingerprintEdge); err != nil {
		return err
	}
	span := size - 2*fingerprintEdge - fingerprintChunk
	for i := int64(1); i <= fingerprintSamples; i++ {
		if err := read(fingerprintEdge+span*i/(fingerprintSamples+1), fingerprintChunk); err != nil {
			return err
		}
	}
	return read(size-fingerprintEdge, fingerprintEdge)
}

// fingerprints caches slide fingerprints for one runner: a slide is
// fingerprinted once per (path, size, modification time, inode) however
// many stages ask.
type fingerprints struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *fingerprints) get(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("pipeline: %s: %w", filepath.Base(path), unwrapPath(err))
	}
	k := fmt.Sprintf("%s\x00%d\x00%d\x00%s", path, fi.Size(), fi.ModTime().UnixNano(), inodeOf(fi))
	c.mu.Lock()
	fp, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return fp, nil
	}
	fp, err = SlideFingerprint(path)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[k] = fp
	c.mu.Unlock()
	return fp, nil
}

// StageKey hashes a stage's name, its parameters (JSON) and its named
// inputs into the key that state.json records.
func StageKey(stage string, params any, inputs map[string]string) (string, error) {
	p, err := json.Marshal(params)
	if err != nil {
		return "", fmt.Errorf("pipeline: %s: key: %w", stage, err)
	}
	names := make([]string, 0, len(inputs))
	for k := range inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "her2wsi stage %s\x00%s\x00", stage, p)
	for _, k := range names {
		fmt.Fprintf(h, "%s=%s\x00", k, inputs[k])
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// stamp is an output file's size and modification time.
func stamp(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	return fmt.Sprintf("%d@%s", fi.Size(), fi.ModTime().UTC().Format(time.RFC3339Nano)), nil
}

// stamps returns the stamps of a slide's output files, keyed by their path
// relative to the slide folder.
func (w Work) stamps(id string, outputs []string) (map[string]string, error) {
	out := make(map[string]string, len(outputs))
	for _, p := range outputs {
		s, err := stamp(p)
		if err != nil {
			return nil, fmt.Errorf("pipeline: %s: output %s: %w", id, filepath.Base(p), unwrapPath(err))
		}
		rel, err := filepath.Rel(w.SlideDir(id), p)
		if err != nil {
			rel = p
		}
		out[filepath.ToSlash(rel)] = s
	}
	return out, nil
}

// Fresh says whether a stage's recorded run on a slide is up to date for
// key: state.json records status done with this key, and each output the
// record lists still has its stamp. It returns the reason it is (for the
// skip message) or why not ("" when there is no usable record).
func (w Work) Fresh(id, stage, key string) (bool, string) {
	if key == "" {
		return false, "always runs"
	}
	st, err := w.ReadState(id)
	if err != nil {
		return false, err.Error()
	}
	s, ok := st.Stages[stage]
	switch {
	case !ok || s.Key == "":
		return false, "no record of an earlier run"
	case s.Status != "done":
		return false, "the last run failed"
	case s.Key != key:
		return false, "inputs or parameters changed"
	case len(s.Outputs) == 0:
		return false, "no outputs recorded"
	}
	for rel, want := range s.Outputs {
		got, err := stamp(filepath.Join(w.SlideDir(id), filepath.FromSlash(rel)))
		if err != nil || got != want {
			return false, fmt.Sprintf("%s changed or is missing", rel)
		}
	}
	return true, "up to date (same inputs, parameters and outputs)"
}

// inodeOf names the file's device and inode, so a file replaced by another
// with the same size and time is not taken for it.
func inodeOf(fi os.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	}
	return ""
}
