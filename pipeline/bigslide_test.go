package pipeline_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/anchors"
	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/testutil/fixture"
	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth/caseset"
)

// bigSlide generates a case set whose H&E slide c000_he has n patches and
// rewrites its features: dimension 0 is signal (10) on the patches below
// the slide's median grid row and 0 elsewhere, the other dimensions N(0,1).
// It returns the work folder, the encoder name and the slide's patch rows.
func bigSlide(t *testing.T, n, dim int) (pipeline.Work, string, []anchors.Pos) {
	t.Helper()
	opt := caseset.DefaultOptions()
	opt.Cases, opt.Dim, opt.MinPatches, opt.MaxPatches, opt.Folds = 4, dim, n, n, 2
	work, _ := generatedCases(t, opt)
	id := "c000_he"
	rec, coords := slideCoords(t, work, id)
	ps, err := anchors.GridPositions(coords, int64(rec.Plan.PatchSizeLevel0))
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]int32, len(ps))
	for i, p := range ps {
		rows[i] = p.Row
	}
	slices.Sort(rows)
	median := rows[len(rows)/2]
	path := work.FeaturesH5(id, opt.Encoder)
	info, _, _, err := featfile.ReadInfo(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	feats := make([]float32, len(ps)*dim)
	for i, p := range ps {
		for j := 1; j < dim; j++ {
			feats[i*dim+j] = float32(rng.NormFloat64())
		}
		if p.Row > median {
			feats[i*dim] = 10
		}
	}
	if err := featfile.Write(path, feats, coords, dim, info); err != nil {
		t.Fatal(err)
	}
	return work, opt.Encoder, ps
}

// readerModel writes an ABMIL run folder whose prediction reads the mean
// of feature 0 over the patches it is given: fc is the identity, the
// attention is uniform (zero scorer), and the classifier gives class 3 the
// logit mean(x0) − 1 against 0.5 for class 0 and 0 for classes 1 and 2.
// So it says 3+ exactly when it has read patches that carry the signal.
func readerModel(t *testing.T, c model.Config) string {
	t.Helper()
	p := model.InitParams(c, 1)
	for i, s := range p.Specs {
		v := p.Values[i]
		clear(v)
		switch s.Name {
		case "abmil.fc.weight":
			for j := 0; j < c.EDim && j < c.InDim; j++ {
				v[j*c.InDim+j] = 1
			}
		case "abmil.classifier.weight":
			v[3*c.EDim+0] = 1
		case "abmil.classifier.bias":
			v[0], v[3] = 0.5, -1
		}
	}
	dir := t.TempDir()
	if err := model.SaveWeights(filepath.Join(dir, "model.safetensors"), c, p, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Item 5 of issue 16: a slide of 5000 patches whose class signal lies
// wholly in its lower half. The reference's rule (first 2048 patches in
// raster order, kept under reference_sampling) never sees it and predicts
// 0; the default reads the whole slide and predicts 3+; a cap below the
// slide's size reads a spatially uniform subset, which still reaches the
// lower half, and the report says so.
func TestPredictWholeSlide(t *testing.T) {
	const n, dim = 5000, 16
	work, encoder, ps := bigSlide(t, n, dim)
	base := fixture.SmallModel(model.VariantABMIL)
	base.InDim, base.EDim, base.MaxPatches = dim, dim, 2048
	if base.MaxPredictPatches < 16384 {
		t.Fatalf("default max_predict_patches %d < 16384", base.MaxPredictPatches)
	}
	reference, capped := base, base
	reference.ReferenceSampling = true
	capped.MaxPredictPatches = 2048
	table := []struct {
		name     string
		c        model.Config
		want     int
		read     int
		noteHas  string
		lowerMin float64 // share of the patches read that lie in the lower half
	}{
		{"reference first 2048 (the old default)", reference, 0, 2048, "first 2048", 0},
		{"whole slide (default)", base, 3, n, "", 0.45},
		{"spatial subset of 2048", capped, 3, 2048, "spatially uniform subset of 2048", 0.45},
	}
	for _, tc := range table {
		t.Run(tc.name, func(t *testing.T) {
			m, err := pipeline.OpenModel(readerModel(t, tc.c), "", "", "")
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			row, err := pipeline.PredictSlide(context.Background(), work, encoder, "c000_he", m)
			if err != nil {
				t.Fatal(err)
			}
			if row.Predicted != tc.want || row.PatchesRead != tc.read {
				t.Errorf("predicted %d from %d patches (p %v), want %d from %d", row.Predicted, row.PatchesRead, row.Probs, tc.want, tc.read)
			}
			if (tc.noteHas == "") != (row.PatchNote == "") || !strings.Contains(row.PatchNote, tc.noteHas) {
				t.Errorf("report note %q, want one with %q", row.PatchNote, tc.noteHas)
			}
			// attention.json lists the patches read: where they lie.
			var att pipeline.Attention
			b, err := os.ReadFile(filepath.Join(work.SlideDir("c000_he"), "attention.json"))
			if err != nil || json.Unmarshal(b, &att) != nil || len(att.Patches) != tc.read {
				t.Fatalf("attention.json: %v, %d patches", err, len(att.Patches))
			}
			lower := 0
			rows := make([]int32, len(ps))
			for i, p := range ps {
				rows[i] = p.Row
			}
			slices.Sort(rows)
			step := float64(256) // caseset's grid step at level 0
			for _, p := range att.Patches {
				if int32(p[1]/step) > rows[len(rows)/2] {
					lower++
				}
			}
			if share := float64(lower) / float64(len(att.Patches)); share < tc.lowerMin || (tc.lowerMin == 0 && lower != 0) {
				t.Errorf("%d of %d patches read lie in the lower half", lower, len(att.Patches))
			}
		})
	}
	// The capped prediction's strata: every patch has an owner among the
	// 2048 read, near it, so the heatmap covers the tissue.
	pl, err := pipeline.PredictLoader(capped, false)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := pl.Load(work.SlideFiles("c000_he", encoder, true), nil)
	if err != nil || len(sd.Owner) != n || sd.N() != 2048 {
		t.Fatalf("capped load: %v, %d owners for %d patches, %d read", err, len(sd.Owner), n, sd.N())
	}
	far := 0
	for r, k := range sd.Owner {
		if k < 0 {
			t.Fatalf("patch %d has no owner", r)
		}
		a, b := ps[r], sd.Patches[k]
		if dr, dc := a.Row-b.Row, a.Col-b.Col; dr*dr+dc*dc > 9 {
			far++
		}
	}
	if far > n/50 {
		t.Errorf("%d of %d patches shown with the value of a patch over 3 cells away", far, n)
	}

	// Training loads draw a new spatially uniform subset of max_patches per
	// load (per epoch), each reaching the lower half; under the reference's
	// sampling they are the first max_patches, every time.
	cs := []cases.Case{{ID: "c000", HE: "c000_he", IHC: "c000_ihc", Label: 3}}
	lowerShare := func(rows []int64) float64 {
		sorted := make([]int32, len(ps))
		for i, p := range ps {
			sorted[i] = p.Row
		}
		slices.Sort(sorted)
		lower := 0
		for _, r := range rows {
			if ps[r].Row > sorted[len(sorted)/2] {
				lower++
			}
		}
		return float64(lower) / float64(len(rows))
	}
	for _, tc := range []struct {
		c          model.Config
		same       bool
		minS, maxS float64
	}{{base, false, 0.4, 0.6}, {reference, true, 0, 0}} {
		src, err := pipeline.NewCaseSource(cs, work, encoder, tc.c, "", false)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 1))
		var prev []int64
		for epoch := 0; epoch < 2; epoch++ {
			sd, err := pipeline.LoadSlideData(work, encoder, "c000_he", tc.c, src, rng)
			if err != nil {
				t.Fatal(err)
			}
			if len(sd.Rows) != 2048 {
				t.Fatalf("training load holds %d patches, want max_patches 2048", len(sd.Rows))
			}
			if sh := lowerShare(sd.Rows); sh < tc.minS || sh > tc.maxS {
				t.Errorf("reference %v: %.2f of a training load in the lower half", tc.c.ReferenceSampling, sh)
			}
			if prev != nil && slices.Equal(prev, sd.Rows) != tc.same {
				t.Errorf("reference %v: two epochs' loads equal: %v", tc.c.ReferenceSampling, !tc.same)
			}
			prev = sd.Rows
		}
	}

	// The anchor model (IPCA) predicts the whole slide too: its attention
	// covers all 5000 patches.
	c := fixture.SmallModel(model.VariantIPCA)
	c.InDim = dim
	m, err := pipeline.OpenModel(runDir(t, c), "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	row, err := pipeline.PredictSlide(context.Background(), work, encoder, "c000_he", m)
	if err != nil || row.PatchesRead != n {
		t.Fatalf("ipca: %v, %d patches read", err, row.PatchesRead)
	}
}

// runDir writes untrained weights of c as a run folder.
func runDir(t *testing.T, c model.Config) string {
	t.Helper()
	dir := t.TempDir()
	if err := model.SaveWeights(filepath.Join(dir, "model.safetensors"), c, model.InitParams(c, 2), nil); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
