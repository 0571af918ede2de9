package pipeline

// The work folder: this file owns its layout (every path below is named
// here and nowhere else) and reads the records stages leave in it;
// fresh.go owns what is up to date. The watch service keeps its journals
// in WORK/watch (package watch).
//
//	WORK/
//	  slides/<slide_id>/
//	    slide.json             tile: metadata, read plan, parameters, fingerprint (written last: the marker)
//	    coords.h5              tile: coords [N,2] int64, level-0 top-left, + attrs
//	    qc.png                 tile: thumbnail, tissue outline, kept grid, legend, scale bar
//	    thumbnail.jpg          tile: the plain picture qc.png and heatmap.png are drawn on
//	    tissue.png             tile: the tissue mask (1-bit, mask_width×mask_height over the whole slide)
//	    features/<encoder>.h5  embed: features [N,D] float32 + coords (CLAM/TRIDENT layout)
//	    anchors.h5             anchors: ppk_<v>/anchor_index [K] int64 + geometry attrs
//	    heatmap.png            predict: [CLS]→patch attention over thumbnail.jpg
//	    attention.json         predict: the attention per patch, for the slide viewer (the latest model's)
//	    attention/<model>.json predict: the same, kept per model
//	    report.html            predict: the slide's report
//	    state.json             the runner: per stage status, parameters, key, output stamps
//	    .lock                  the slide's lock while a process works on it
//	  predictions.csv          predict: one row per slide
//	  run-config.yaml          run: the effective settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/store"
)

// Work is the work folder, the contract between stages.
type Work struct{ Dir string }

// SlideDir is WORK/slides/<id>.
func (w Work) SlideDir(id string) string { return filepath.Join(w.Dir, "slides", id) }

// SlideJSON, CoordsH5, QCPNG and ThumbnailJPG are the tile stage's outputs;
// slide.json is written last and is the stage's completion marker.
func (w Work) SlideJSON(id string) string    { return filepath.Join(w.SlideDir(id), "slide.json") }
func (w Work) CoordsH5(id string) string     { return filepath.Join(w.SlideDir(id), "coords.h5") }
func (w Work) QCPNG(id string) string        { return filepath.Join(w.SlideDir(id), "qc.png") }
func (w Work) ThumbnailJPG(id string) string { return filepath.Join(w.SlideDir(id), "thumbnail.jpg") }

// TissuePNG is the tile stage's tissue mask (slides tiled before it
// existed have none; nothing downstream needs it, the slide viewer draws
// its outline).
func (w Work) TissuePNG(id string) string { return filepath.Join(w.SlideDir(id), "tissue.png") }

// StateJSON is WORK/slides/<id>/state.json: per stage, what the last run
// of that stage did to the slide (done, skipped as up to date, or failed),
// with the parameters, the freshness key and the outputs' stamps, its
// timing and the error. The runner decides freshness from it (fresh.go); a
// lost one makes a rerun redo the work, never skip it.
func (w Work) StateJSON(id string) string { return filepath.Join(w.SlideDir(id), "state.json") }

// ReadState reads a slide's state.json (an empty state when there is none).
func (w Work) ReadState(id string) (SlideState, error) {
	st := SlideState{SlideID: id, Stages: map[string]StageState{}}
	b, err := os.ReadFile(w.StateJSON(id))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("pipeline: %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return SlideState{SlideID: id, Stages: map[string]StageState{}}, fmt.Errorf("pipeline: %s: state.json: %w", id, err)
	}
	if st.Stages == nil {
		st.Stages = map[string]StageState{}
	}
	return st, nil
}

// FeaturesH5 is WORK/slides/<id>/features/<encoder>.h5.
func (w Work) FeaturesH5(id, encoder string) string {
	return filepath.Join(w.SlideDir(id), "features", encoder+".h5")
}

// ReadSlideRecord loads a slide's slide.json, the tile stage's marker.
func (w Work) ReadSlideRecord(id string) (SlideRecord, error) {
	var rec SlideRecord
	b, err := os.ReadFile(w.SlideJSON(id))
	if errors.Is(err, os.ErrNotExist) {
		return rec, fmt.Errorf("pipeline: %s: not tiled yet (no slide.json): run the tile stage first", id)
	}
	if err != nil {
		return rec, fmt.Errorf("pipeline: %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("pipeline: %s: slide.json: %w", id, err)
	}
	return rec, nil
}

// WriteSlideRecord writes slide.json atomically (the tile stage's last
// write: a slide is tiled exactly when its slide.json exists).
func (w Work) WriteSlideRecord(id string, rec SlideRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline: %s: slide.json: %w", id, err)
	}
	if err := store.WriteFileAtomic(w.SlideJSON(id), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("pipeline: %s: slide.json: %w", id, err)
	}
	return nil
}

// ReadCoords loads coords.h5 and checks it against slide.json's checksum.
func (w Work) ReadCoords(id string, rec SlideRecord) ([]int64, error) {
	r, err := store.OpenH5(w.CoordsH5(id))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	c, _, err := r.ReadInt64("coords")
	if err != nil {
		return nil, err
	}
	if sum := CoordsChecksum(c); sum != rec.CoordsSHA256 {
		return nil, fmt.Errorf("pipeline: %s: coords.h5 does not match slide.json (checksum %s…, recorded %s…): rerun the tile stage", id, sum[:12], rec.CoordsSHA256[:min(12, len(rec.CoordsSHA256))])
	}
	return c, nil
}

// AnchorsH5 is WORK/slides/<id>/anchors.h5.
func (w Work) AnchorsH5(id string) string { return filepath.Join(w.SlideDir(id), "anchors.h5") }

// ReadAnchors loads one ppk group's anchor indices and the slide geometry.
func (w Work) ReadAnchors(id string, ppk int) (idx []int64, diameter float64, err error) {
	r, err := store.OpenH5(w.AnchorsH5(id))
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	idx, _, err = r.ReadInt64(PPKGroup(ppk) + "/anchor_index")
	if err != nil {
		return nil, 0, err
	}
	d, err := r.Attr("", "diameter")
	if err != nil {
		return nil, 0, err
	}
	diameter, _ = d.(float64)
	return idx, diameter, nil
}

// LockPath is WORK/slides/<id>/.lock.
func (w Work) LockPath(id string) string { return filepath.Join(w.SlideDir(id), ".lock") }

// SlideFiles locates a slide's model inputs in the work folder; withAnchors
// for H&E slides.
func (w Work) SlideFiles(id, encoder string, withAnchors bool) bundle.Files {
	f := bundle.Files{ID: id, Coords: w.CoordsH5(id), Features: w.FeaturesH5(id, encoder)}
	if withAnchors {
		f.Anchors = w.AnchorsH5(id)
	}
	return f
}

// PredictionsCSV is WORK/predictions.csv.
func (w Work) PredictionsCSV() string { return filepath.Join(w.Dir, "predictions.csv") }

// HeatmapPNG is WORK/slides/<id>/heatmap.png.
func (w Work) HeatmapPNG(id string) string { return filepath.Join(w.SlideDir(id), "heatmap.png") }

// ReportHTML is WORK/slides/<id>/report.html, written by the predict
// stage.
func (w Work) ReportHTML(id string) string { return filepath.Join(w.SlideDir(id), "report.html") }

// SlideIDOfFile returns the id under which the slide file at path was
// tiled into this work folder (its slide.json records the path), or false.
// Ids are usually the file name without extension, but files of one name
// in several input folders get their folder in front (FindSlides).
func (w Work) SlideIDOfFile(path string) (string, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", false
	}
	entries, err := os.ReadDir(filepath.Join(w.Dir, "slides"))
	if err != nil {
		return "", false
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if rec, err := w.ReadSlideRecord(e.Name()); err == nil && rec.Slide.Path == abs {
			return e.Name(), true
		}
	}
	return "", false
}
