// Package pipeline runs the stages of her2wsi over batches of slides: it
// finds the slides, owns the concurrency (worker pools, bounded channels,
// cancellation) and writes each stage's outputs into the work folder.
package pipeline

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/slide"
)

// SlideExtensions are the file extensions picked up when an input is a
// directory (explicitly named files are always taken): those of the slide
// formats registered in package slide, JPEG's and PNG's among them (folders
// of image patches; they need --mpp). DICOM's is among them too, so that a
// DICOM WSI is reported as unsupported rather than silently skipped.
var SlideExtensions = slide.Extensions()

// Input is one slide to process.
type Input struct {
	Path string
	ID   string
}

// FindSlides expands files and directories into slides, sorted by id. A
// directory contributes its files with a slide extension (recursively when
// recursive is set), skipping hidden and temporary files. Two files with the
// same id (file name without extension) are an error naming both.
func FindSlides(inputs []string, recursive bool) ([]Input, error) {
	var out []Input
	seen := map[string]string{}
	add := func(p string) error {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		id := slide.ID(abs)
		if err := ValidID(id); err != nil {
			return fmt.Errorf("pipeline: %s: %w", abs, err)
		}
		if prev, dup := seen[id]; dup {
			if prev == abs {
				return nil
			}
			return fmt.Errorf("pipeline: slide id %q is used by two files: %s and %s (ids are file names without extension and must be unique)", id, prev, abs)
		}
		seen[id] = abs
		out = append(out, Input{Path: abs, ID: id})
		return nil
	}
	for _, in := range inputs {
		fi, err := os.Stat(in)
		if err != nil {
			return nil, fmt.Errorf("pipeline: input %s: %w", in, unwrapPath(err))
		}
		if !fi.IsDir() {
			if err := add(in); err != nil {
				return nil, err
			}
			continue
		}
		var files []string
		err = filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			name := d.Name()
			if d.IsDir() {
				if p != in && (!recursive || strings.HasPrefix(name, ".")) {
					return filepath.SkipDir
				}
				return nil
			}
			if strings.HasPrefix(name, ".") || store.IsTemp(name) || !HasSlideExtension(name) {
				return nil
			}
			files = append(files, p)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pipeline: scan %s: %w", in, err)
		}
		sort.Strings(files)
		for _, f := range files {
			if err := add(f); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// HasSlideExtension reports whether name ends in one of SlideExtensions.
func HasSlideExtension(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range SlideExtensions {
		if ext == e {
			return true
		}
	}
	return false
}

// ValidID rejects ids that cannot name a folder in the work tree.
func ValidID(id string) error {
	switch {
	case id == "" || id == "." || id == "..":
		return fmt.Errorf("slide id %q cannot name a folder", id)
	case strings.ContainsAny(id, "/\x00"):
		return fmt.Errorf("slide id %q contains a path separator or NUL", id)
	case strings.HasPrefix(id, "."):
		return fmt.Errorf("slide id %q starts with a dot (hidden file)", id)
	}
	return nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
