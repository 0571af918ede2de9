package caseset

import (
	"bytes"
	"context"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/pipeline"
)

func synthTestOptions(n int) Options {
	o := DefaultOptions()
	o.Cases, o.Seed, o.Dim, o.MinPatches, o.MaxPatches = n, 7, 64, 200, 400
	return o
}

func synthGenerate(t *testing.T, dir string, opt Options) (pipeline.Work, []cases.Case) {
	t.Helper()
	work := pipeline.Work{Dir: dir}
	p, err := Generate(context.Background(), work, opt)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(dir, cases.DefaultName) {
		t.Fatalf("cases.csv at %s", p)
	}
	cs, err := cases.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	return work, cs
}

func TestSynthCasesWork(t *testing.T) {
	opt := synthTestOptions(12)
	work, cs := synthGenerate(t, t.TempDir(), opt)
	if len(cs) != 12 {
		t.Fatalf("%d cases", len(cs))
	}
	var perLabel [cases.NumClasses]int
	for _, c := range cs {
		perLabel[c.Label]++
		if c.Split != cases.Train && c.Split != cases.Test {
			t.Errorf("%s: split %q", c.ID, c.Split)
		}
		if c.HE != c.ID+"_he" || c.IHC != c.ID+"_ihc" {
			t.Errorf("%+v: slide ids", c)
		}
	}
	if perLabel != [cases.NumClasses]int{3, 3, 3, 3} {
		t.Errorf("labels per class %v", perLabel)
	}
	t.Log("\n" + cases.SplitSummary(cs))

	// What `pipeline cases check` requires.
	he := map[string]bool{}
	for _, c := range cs {
		he[c.HE] = true
	}
	chk := pipeline.SlideChecker{Work: work, Encoder: opt.Encoder, PPK: 18, NeedAnchors: func(id string) bool { return he[id] }}
	if ps := cases.Check(cs, cases.DefaultName, chk); len(ps) > 0 {
		t.Fatalf("cases check: %v", cases.Problems(ps))
	}
	// IHC slides are anchored too, as `pipeline run` would.
	chk.NeedAnchors = nil
	if ps := cases.Check(cs, cases.DefaultName, chk); len(ps) > 0 {
		t.Fatalf("cases check (all anchored): %v", cases.Problems(ps))
	}

	// What the model reads.
	ld, err := bundle.NewLoader(bundle.DefaultConfig(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		for _, id := range []string{c.HE, c.IHC} {
			f := bundle.Files{ID: id, Coords: work.CoordsH5(id), Features: work.FeaturesH5(id, opt.Encoder)}
			if id == c.HE {
				f.Anchors = work.AnchorsH5(id)
			}
			sd, err := ld.Load(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := work.ReadSlideRecord(id)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := opt.MinPatches, opt.MaxPatches
			if id == c.IHC {
				lo, hi = int(0.9*float64(lo)), int(1.1*float64(hi))
			}
			if sd.D != opt.Dim || sd.N() != rec.NumPatches || sd.N() < lo || sd.N() > hi {
				t.Errorf("%s: D %d, N %d (record %d)", id, sd.D, sd.N(), rec.NumPatches)
			}
			if id == c.HE && (sd.K() == 0 || len(sd.Dist) != sd.K()*sd.N()) {
				t.Errorf("%s: %d anchors, %d bins", id, sd.K(), len(sd.Dist))
			}
			coords, err := work.ReadCoords(id, rec)
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range coords {
				if v%256 != 0 || v < 0 || (i%2 == 0 && v+256 > rec.Slide.Levels[0].Width) || (i%2 == 1 && v+256 > rec.Slide.Levels[0].Height) {
					t.Fatalf("%s: coordinate %d off the grid or the slide", id, v)
				}
			}
			if rec.Plan.PatchSizeLevel0 != 256 || rec.Plan.Level != 0 || rec.GridCols != rec.Slide.Levels[0].Width/256 {
				t.Errorf("%s: plan %+v, grid cols %d", id, rec.Plan, rec.GridCols)
			}
			if _, err := os.Stat(work.QCPNG(id)); err != nil {
				t.Error(err)
			}
		}
	}

}

func TestSynthCasesLabelsBalanced(t *testing.T) {
	for _, n := range []int{4, 13, 102} {
		cs := synthCaseList(Options{Cases: n, Seed: 3})
		var per [cases.NumClasses]int
		for _, c := range cs {
			per[c.Label]++
		}
		if slices.Max(per[:])-slices.Min(per[:]) > 1 {
			t.Errorf("%d cases: %v per label", n, per)
		}
	}
	if cs := synthCaseList(Options{Cases: 1001}); cs[1000].ID != "c1000" || cs[7].ID != "c0007" {
		t.Errorf("ids %s %s", cs[7].ID, cs[1000].ID)
	}
}

func TestSynthCasesDeterministic(t *testing.T) {
	opt := synthTestOptions(4)
	opt.Folds = 2
	a, b := t.TempDir(), t.TempDir()
	synthGenerate(t, a, opt)
	synthGenerate(t, b, opt)
	files := func(root string) map[string][]byte {
		m := map[string][]byte{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			m[rel], err = os.ReadFile(p)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	compare := func(fa, fb map[string][]byte) {
		t.Helper()
		if len(fa) != len(fb) || len(fa) != 1+2*4*5 { // cases.csv + 5 files per slide
			t.Fatalf("%d and %d files", len(fa), len(fb))
		}
		for name, x := range fa {
			if !bytes.Equal(x, fb[name]) {
				t.Errorf("%s differs", name)
			}
		}
	}
	fa := files(a)
	compare(fa, files(b))
	// A rerun into an existing folder replaces every file by the same.
	synthGenerate(t, a, opt)
	compare(files(a), fa)

	// Another seed gives other features.
	g := newSynthGen(opt.withDefaults())
	he, _ := g.makeCase(0, 1)
	opt.Seed++
	g = newSynthGen(opt.withDefaults())
	he2, _ := g.makeCase(0, 1)
	if slices.Equal(he.features[:100], he2.features[:100]) {
		t.Error("seed has no effect")
	}
}

func TestSynthCasesOptions(t *testing.T) {
	bad := []func(*Options){
		func(o *Options) { o.Cases = 3 },
		func(o *Options) { o.Dim = 3 },
		func(o *Options) { o.Encoder = "a/b" },
		func(o *Options) { o.MinPatches, o.MaxPatches = 500, 400 },
		func(o *Options) { o.HESignal = math.NaN() },
		func(o *Options) { o.IHCSignal = -1 },
		func(o *Options) { o.TestFrac = 1 },
		func(o *Options) { o.Cases, o.Folds = 4, 5 }, // 4 training cases for 5 folds
	}
	for i, f := range bad {
		o := synthTestOptions(12)
		f(&o)
		dir := t.TempDir()
		if _, err := Generate(context.Background(), pipeline.Work{Dir: dir}, o); err == nil {
			t.Errorf("case %d: no error for %+v", i, o)
		} else if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("case %d: wrote %d entries before failing", i, len(ents))
		}
	}
}

// synthProject returns, per patch, the projection of the features on dir.
func synthProject(feats []float32, d int, dir []float64) []float64 {
	out := make([]float64, len(feats)/d)
	for i := range out {
		var s float64
		for j, v := range feats[i*d : (i+1)*d] {
			s += float64(v) * dir[j]
		}
		out[i] = s
	}
	return out
}

func synthMean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// synthMeanWhere averages v where sel > thr.
func synthMeanWhere(v, sel []float64, thr float64) float64 {
	var s, n float64
	for i := range v {
		if sel[i] > thr {
			s += v[i]
			n++
		}
	}
	return s / n
}

// synthFisher is the one-way ANOVA ratio of between-label to within-label
// variance of a per-case statistic.
func synthFisher(stat []float64, labels []int) float64 {
	var sum, n [cases.NumClasses]float64
	for i, l := range labels {
		sum[l] += stat[i]
		n[l]++
	}
	all := synthMean(stat)
	var between, within float64
	for l := range sum {
		m := sum[l] / n[l]
		between += n[l] * (m - all) * (m - all)
	}
	for i, l := range labels {
		m := sum[l] / n[l]
		within += (stat[i] - m) * (stat[i] - m)
	}
	return (between / (cases.NumClasses - 1)) / (within / float64(len(stat)-cases.NumClasses))
}

// synthStats generates the cases in memory (as Generate does, without the
// files) and returns per case: the slide means of the H&E projection on h and
// of the IHC projection on s, and the same projections averaged over the
// patches that look like tumour (a blind read-out: projection on the tumour
// prototype above half its norm).
func synthStats(opt Options) (heMean, heTumour, ihcMean, ihcTumour []float64, labels []int) {
	opt = opt.withDefaults()
	g := newSynthGen(opt)
	d := opt.Dim
	for i, c := range synthCaseList(opt) {
		he, ihc := g.makeCase(i, c.Label)
		hp, htu := synthProject(he.features, d, g.heDir), synthProject(he.features, d, g.proto[synthTumour])
		heMean = append(heMean, synthMean(hp))
		heTumour = append(heTumour, synthMeanWhere(hp, htu, synthProtoNorm/2))
		st, tu := synthProject(ihc.features, d, g.stain), synthProject(ihc.features, d, g.proto[synthTumour])
		ihcMean = append(ihcMean, synthMean(st))
		ihcTumour = append(ihcTumour, synthMeanWhere(st, tu, synthProtoNorm/2))
		labels = append(labels, c.Label)
	}
	return
}

func TestSynthCasesSignal(t *testing.T) {
	opt := synthTestOptions(40)
	opt.Dim = 32
	heMean, heTumour, ihcMean, ihcTumour, labels := synthStats(opt)
	// IHC: the stained share of the tumour orders every case by its label.
	lo, hi := [4]float64{}, [4]float64{}
	for l := range lo {
		lo[l], hi[l] = math.Inf(1), math.Inf(-1)
	}
	for i, l := range labels {
		lo[l], hi[l] = min(lo[l], ihcTumour[i]), max(hi[l], ihcTumour[i])
	}
	for l := 1; l < cases.NumClasses; l++ {
		if lo[l] <= hi[l-1] {
			t.Errorf("IHC tumour stain of label %d (min %.3f) overlaps label %d (max %.3f)", l, lo[l], l-1, hi[l-1])
		}
	}
	// H&E: the label shows in the slide mean far more weakly than in IHC.
	fHE, fIHC := synthFisher(heMean, labels), synthFisher(ihcMean, labels)
	t.Logf("IHC tumour stain per label: min %.3f max %.3f; slide-mean F ratio: H&E %.2f, IHC %.2f", lo, hi, fHE, fIHC)
	if fIHC < 10 || fHE > fIHC/5 {
		t.Errorf("F ratio H&E %.2f, IHC %.2f: want IHC ≥ 10 and ≥ 5× H&E", fHE, fIHC)
	}
	// ... yet it is there, in the tumour: the H&E projection on h averaged
	// over the patches that look like tumour is higher for 3+ than for 0.
	var sum, n [cases.NumClasses]float64
	for i, l := range labels {
		sum[l] += heTumour[i]
		n[l]++
	}
	d := sum[3]/n[3] - sum[0]/n[0]
	t.Logf("H&E tumour projection on h: 3+ minus 0 = %.3f (HESignal %g)", d, opt.HESignal)
	if d < opt.HESignal/2 {
		t.Errorf("H&E tumour projection: 3+ minus 0 = %.3f", d)
	}
}

func TestSynthCasesHENull(t *testing.T) {
	// Exact: with HESignal 0 a case's H&E features do not depend on its
	// label; the IHC ones do, and with a signal so do the H&E ones.
	opt := synthTestOptions(12)
	opt.HESignal = 0
	g := newSynthGen(opt)
	he0, ihc0 := g.makeCase(5, 0)
	he3, ihc3 := g.makeCase(5, 3)
	if !slices.Equal(he0.features, he3.features) || !slices.Equal(he0.patches, he3.patches) {
		t.Error("HESignal 0: H&E features depend on the label")
	}
	if slices.Equal(ihc0.features, ihc3.features) {
		t.Error("IHC features do not depend on the label")
	}
	if !slices.Equal(ihc0.patches, ihc3.patches) {
		t.Error("IHC patches depend on the label")
	}
	opt.HESignal = 0.35
	g = newSynthGen(opt)
	he0, _ = g.makeCase(5, 0)
	he3, _ = g.makeCase(5, 3)
	if slices.Equal(he0.features, he3.features) {
		t.Error("HESignal 0.35: H&E features do not depend on the label")
	}

	// Statistical: per-label means of the H&E slide-mean projection (and of
	// the tumour projection) agree within noise.
	opt = synthTestOptions(40)
	opt.Dim, opt.HESignal = 32, 0
	heMean, heTumour, ihcMean, _, labels := synthStats(opt)
	fHE, fHET, fIHC := synthFisher(heMean, labels), synthFisher(heTumour, labels), synthFisher(ihcMean, labels)
	t.Logf("HESignal 0: F ratio H&E slide mean %.2f, H&E tumour %.2f, IHC slide mean %.2f", fHE, fHET, fIHC)
	if fHE > 2.9 || fHET > 2.9 { // F(3, 36) 95% quantile
		t.Errorf("HESignal 0: H&E F ratio %.2f", fHE)
	}
	if fIHC < 10 {
		t.Errorf("HESignal 0: IHC F ratio %.2f", fIHC)
	}
}
