package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/tiling"
)

// ImportOptions control import-features.
type ImportOptions struct {
	Encoder string // name the features are stored under (features/<encoder>.h5)
	SlideID string // slide id for a single file (default: file name without extension)
	// PatchSizeLevel0 is the grid step in level-0 pixels, for files that do
	// not record it (TRIDENT's coords attribute patch_size_level0; CLAM's
	// patch_size × downsample).
	PatchSizeLevel0 int
	TargetMPP       float64 // recorded with coordinates this import creates
}

// ImportFeatures places a CLAM/TRIDENT feature file made elsewhere (UNI,
// CONCH, ...) where the later stages read it: WORK/slides/<id>/features/
// <encoder>.h5. It validates shapes and values. When the slide was tiled
// here, the imported coordinates must be the same set as coords.h5 (rows
// are reordered to its order); otherwise the file's coordinates become the
// slide's coords.h5 and a slide.json records the import.
func ImportFeatures(file string, work Work, opt ImportOptions) (Result, error) {
	id := opt.SlideID
	if id == "" {
		id = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	res := Result{Stage: "import", ID: id, Path: file}
	fail := func(format string, a ...any) (Result, error) {
		res.Err = fmt.Errorf("pipeline: import %s: "+format, append([]any{filepath.Base(file)}, a...)...)
		return res, res.Err
	}
	if err := ValidID(id); err != nil {
		return fail("%v", err)
	}
	if !features.ValidName(opt.Encoder) {
		return fail("encoder name %q must be letters, digits, '-', '_' or '.' (it names features/<encoder>.h5)", opt.Encoder)
	}
	feats, coords, dim, err := featfile.Read(file)
	if err != nil {
		return fail("%v", err)
	}
	n := len(coords) / 2
	if n == 0 {
		return fail("no patches in the file")
	}
	sum, err := features.FileSHA256(file)
	if err != nil {
		return fail("%v", err)
	}
	step, target, err := importGeometry(file, opt)
	if err != nil {
		return fail("%v", err)
	}
	rec, recErr := work.ReadSlideRecord(id)
	if recErr == nil && rec.Plan.PatchSizeLevel0 != step {
		return fail("grid step %d px (level 0) differs from this work folder's %d px for slide %s", step, rec.Plan.PatchSizeLevel0, id)
	}
	if err := onGrid(coords, step); err != nil {
		return fail("%v", err)
	}
	var ours []int64
	if recErr == nil {
		if ours, err = work.ReadCoords(id, rec); err != nil {
			return fail("%v", err)
		}
		perm, err := matchCoords(ours, coords)
		if err != nil {
			return fail("coordinates do not match the tile stage's for slide %s: %v", id, err)
		}
		feats = permuteRows(feats, dim, perm)
		coords = ours
	} else {
		// Not tiled here: the file's coordinates become the slide's.
		order := rasterOrder(coords)
		feats, coords = permuteRows(feats, dim, order), permuteRows64(coords, 2, order)
		if err := writeImportedCoords(work, id, file, sum, coords, step, target); err != nil {
			return fail("%v", err)
		}
		if rec, err = work.ReadSlideRecord(id); err != nil {
			return fail("%v", err)
		}
	}
	out := work.FeaturesH5(id, opt.Encoder)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fail("%v", err)
	}
	err = featfile.Write(out, feats, coords, dim, featfile.Info{
		Encoder: opt.Encoder, EncoderSHA256: "imported:" + sum, CoordsSHA256: rec.CoordsSHA256,
		TargetMPP: rec.Plan.TargetMPP, PatchSize: rec.Plan.PatchSize, PatchSizeLevel0: step,
		Source: "imported: " + filepath.Base(file),
	})
	if err != nil {
		return fail("%v", err)
	}
	res.NumPatches = n
	return res, nil
}

// importGeometry finds the grid step (level-0 px) and target resolution.
func importGeometry(file string, opt ImportOptions) (step int, target float64, err error) {
	r, err := store.OpenH5(file)
	if err != nil {
		return 0, 0, err
	}
	defer r.Close()
	num := func(obj, k string) float64 {
		v, err := r.Attr(obj, k)
		if err != nil {
			return 0
		}
		switch x := v.(type) {
		case int64:
			return float64(x)
		case float64:
			return x
		case []int64:
			if len(x) > 0 {
				return float64(x[0])
			}
		case []float64:
			if len(x) > 0 {
				return x[0]
			}
		}
		return 0
	}
	for _, obj := range []string{"coords", ""} {
		if v := num(obj, "patch_size_level0"); v > 0 && step == 0 {
			step = int(v)
		}
		if ps, ds := num(obj, "patch_size"), num(obj, "downsample"); step == 0 && ps > 0 && ds > 0 {
			step = int(ps*ds + 0.5) // CLAM: patch_size at patch_level × its downsample
		}
		if v := num(obj, "target_mpp"); v > 0 && target == 0 {
			target = v
		}
		if v := num(obj, "target_magnification"); v > 0 && target == 0 {
			target = 10 / v
		}
	}
	if opt.PatchSizeLevel0 > 0 {
		step = opt.PatchSizeLevel0
	}
	if opt.TargetMPP > 0 {
		target = opt.TargetMPP
	}
	if step <= 0 {
		return 0, 0, errors.New("the file does not record the patch size at level 0 (attribute patch_size_level0, or patch_size and downsample): pass --patch-size-level0")
	}
	if target <= 0 {
		target = tiling.DefaultGridConfig().TargetMPP
	}
	return step, target, nil
}

// onGrid checks that all coordinates lie on one grid of the given step.
func onGrid(coords []int64, step int) error {
	s := int64(step)
	ox, oy := coords[0]%s, coords[1]%s
	seen := make(map[[2]int64]bool, len(coords)/2)
	for i := 0; i < len(coords); i += 2 {
		if coords[i]%s != ox || coords[i+1]%s != oy {
			return fmt.Errorf("coordinate (%d,%d) in row %d is off the %d-px grid of the first row", coords[i], coords[i+1], i/2, step)
		}
		k := [2]int64{coords[i], coords[i+1]}
		if seen[k] {
			return fmt.Errorf("coordinate (%d,%d) appears twice", k[0], k[1])
		}
		seen[k] = true
	}
	return nil
}

// matchCoords returns perm with theirs[perm[i]] == ours[i] for every row.
func matchCoords(ours, theirs []int64) ([]int, error) {
	if len(ours) != len(theirs) {
		return nil, fmt.Errorf("%d patches here, %d in the file", len(ours)/2, len(theirs)/2)
	}
	at := make(map[[2]int64]int, len(theirs)/2)
	for i := 0; i < len(theirs); i += 2 {
		at[[2]int64{theirs[i], theirs[i+1]}] = i / 2
	}
	perm := make([]int, len(ours)/2)
	for i := 0; i < len(ours); i += 2 {
		j, ok := at[[2]int64{ours[i], ours[i+1]}]
		if !ok {
			return nil, fmt.Errorf("patch (%d,%d) of coords.h5 is not in the file", ours[i], ours[i+1])
		}
		perm[i/2] = j
	}
	return perm, nil
}

// rasterOrder sorts coordinates by y then x (the tile stage's order).
func rasterOrder(coords []int64) []int {
	idx := make([]int, len(coords)/2)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ya, yb := coords[2*idx[a]+1], coords[2*idx[b]+1]
		if ya != yb {
			return ya < yb
		}
		return coords[2*idx[a]] < coords[2*idx[b]]
	})
	return idx
}

func permuteRows(v []float32, dim int, perm []int) []float32 {
	out := make([]float32, len(v))
	for i, p := range perm {
		copy(out[i*dim:(i+1)*dim], v[p*dim:(p+1)*dim])
	}
	return out
}

func permuteRows64(v []int64, dim int, perm []int) []int64 {
	out := make([]int64, len(v))
	for i, p := range perm {
		copy(out[i*dim:(i+1)*dim], v[p*dim:(p+1)*dim])
	}
	return out
}

// writeImportedCoords creates coords.h5 and slide.json for a slide known
// only through imported features.
func writeImportedCoords(work Work, id, file, sum string, coords []int64, step int, target float64) error {
	if err := os.MkdirAll(work.SlideDir(id), 0o755); err != nil {
		return err
	}
	w, err := store.CreateH5(work.CoordsH5(id))
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := w.WriteInt64("coords", coords, len(coords)/2, 2); err != nil {
		return err
	}
	ps := tiling.DefaultGridConfig().PatchSize
	if err := w.SetAttrs("coords",
		store.Attr{Key: "patch_size", Value: int64(ps)}, store.Attr{Key: "patch_size_level0", Value: int64(step)},
		store.Attr{Key: "target_mpp", Value: target}, store.Attr{Key: "level", Value: int64(-1)},
		store.Attr{Key: "name", Value: id}, store.Attr{Key: "source", Value: "imported: " + filepath.Base(file)}); err != nil {
		return err
	}
	if err := w.Commit(); err != nil {
		return err
	}
	rec := SlideRecord{
		Version:    Version,
		Imported:   filepath.Base(file) + " sha256:" + sum,
		Plan:       tiling.ReadPlan{Level: -1, PatchSize: ps, PatchSizeLevel0: step, TargetMPP: target},
		NumPatches: len(coords) / 2, CoordsSHA256: CoordsChecksum(coords),
	}
	rec.Slide.ID = id
	return work.WriteSlideRecord(id, rec)
}
