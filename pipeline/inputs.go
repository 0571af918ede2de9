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
// of image patches; they need --mpp) and DICOM's (.dcm).
var SlideExtensions = slide.Extensions()

// Input is one slide to process.
type Input struct {
	Path string
	ID   string
}

// IDSeparator joins the folder names that tell apart files of the same name
// (see FindSlides): HE/00345_test_0.png is slide HE-00345_test_0.
const IDSeparator = "-"

// FindSlides expands files and directories into slides, sorted by id. A
// directory contributes its files with a slide extension (recursively when
// recursive is set), skipping hidden and temporary files; a file named
// twice, directly or through its directory, is taken once.
//
// A slide's id is its file name without extension (slide.ID), as long as no
// other file of the run has that name. Files of the same name in different
// folders, such as the H&E and IHC images of a paired data set
// (HE/00345_test_0.png and IHC/00345_test_0.png), are told apart by the
// names of the folders they are in: each gets the last folder name, joined
// by IDSeparator, in front of its name (HE-00345_test_0,
// IHC-00345_test_0), or the last two (a-HE-x, b-HE-x) when one is not
// enough, and so on. Every file of such a group gets the same number of
// folder names, chosen as the fewest that make the group's ids distinct,
// valid (see ValidID) and different from every other id of the run. So the
// ids depend only on the set of files, not on the order of the inputs, and
// are the same whether the folders are given one by one (--input HE --input
// IHC) or through their parent (--input data --recursive). They do depend
// on that set: a run over HE alone names the same file 00345_test_0, so
// give a work folder the same inputs each time. Two files of one name in
// one folder (x.jpg and x.png) are an error naming both.
func FindSlides(inputs []string, recursive bool) ([]Input, error) {
	var files []string
	seen := map[string]bool{}
	add := func(p string) error {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		if seen[abs] {
			return nil
		}
		if err := ValidID(slide.ID(abs)); err != nil {
			return fmt.Errorf("pipeline: %s: %w", abs, err)
		}
		seen[abs] = true
		files = append(files, abs)
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
		var found []string
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
			found = append(found, p)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pipeline: scan %s: %w", in, err)
		}
		sort.Strings(found)
		for _, f := range found {
			if strings.EqualFold(filepath.Ext(f), ".dcm") && slide.DICOMSeriesPrimary(f) != f {
				continue // another instance of a DICOM series: read with its primary
			}
			if err := add(f); err != nil {
				return nil, err
			}
		}
	}
	ids, err := assignIDs(files)
	if err != nil {
		return nil, err
	}
	out := make([]Input, len(files))
	for i, f := range files {
		out[i] = Input{Path: f, ID: ids[f]}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// assignIDs gives each of the distinct absolute paths its slide id, as
// FindSlides describes.
func assignIDs(files []string) (map[string]string, error) {
	groups := map[string][]string{} // file name without extension → paths
	for _, f := range files {
		groups[slide.ID(f)] = append(groups[slide.ID(f)], f)
	}
	ids := make(map[string]string, len(files))
	taken := map[string]bool{}
	var shared []string
	for base, paths := range groups {
		if len(paths) == 1 {
			ids[paths[0]] = base
			taken[base] = true
			continue
		}
		shared = append(shared, base)
	}
	sort.Strings(shared) // groups claim their ids in a fixed order
	for _, base := range shared {
		paths := groups[base]
		sort.Strings(paths)
		for i := 1; i < len(paths); i++ {
			if filepath.Dir(paths[i]) == filepath.Dir(paths[i-1]) {
				return nil, fmt.Errorf("pipeline: %s and %s: two files of one name in one folder, both slide %q: rename or leave out one",
					paths[i-1], paths[i], base)
			}
		}
		depth := 0
		for _, p := range paths {
			depth = max(depth, len(folderNames(p)))
		}
		done := false
		for k := 1; k <= depth && !done; k++ {
			cand := make([]string, len(paths))
			fresh := map[string]bool{}
			done = true
			for i, p := range paths {
				cand[i] = qualifiedID(p, base, k)
				if ValidID(cand[i]) != nil || taken[cand[i]] || fresh[cand[i]] {
					done = false
					break
				}
				fresh[cand[i]] = true
			}
			if done {
				for i, p := range paths {
					ids[p] = cand[i]
					taken[cand[i]] = true
				}
			}
		}
		if !done {
			return nil, fmt.Errorf("pipeline: files named %q in %d folders, which their folder names do not tell apart as slide ids: %s: rename them",
				base, len(paths), strings.Join(paths, ", "))
		}
	}
	return ids, nil
}

// folderNames are the names of the folders a path is in, outermost first.
func folderNames(path string) []string {
	var names []string
	for _, n := range strings.Split(filepath.ToSlash(filepath.Dir(path)), "/") {
		if n != "" && n != "." {
			names = append(names, n)
		}
	}
	return names
}

// qualifiedID is base preceded by the names of the last k folders path is
// in (all of them when there are fewer), joined by IDSeparator.
func qualifiedID(path, base string, k int) string {
	names := folderNames(path)
	names = names[len(names)-min(k, len(names)):]
	return strings.Join(append(names, base), IDSeparator)
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
