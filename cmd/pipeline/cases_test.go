package main

import (
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/testutil"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/synth"
)

// writeTissuePNG writes a 512×512 PNG: stained tissue over its upper half,
// glass below.
func writeTissuePNG(t *testing.T, path, stain string) {
	t.Helper()
	img := raster.New(512, 512)
	for i := range img.Pix {
		img.Pix[i] = synth.Glass
	}
	tex := synth.StainTexture(256, stain, 3)
	r := image.Rect(0, 0, 512, 256)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb := tex.At(x%tex.W, y%tex.H)
			img.Set(x, y, cr, cg, cb)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.WritePNG(path, img); err != nil {
		t.Fatal(err)
	}
}

func readCases(t *testing.T, path string) map[string]cases.Case {
	t.Helper()
	cs, err := cases.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]cases.Case{}
	for _, c := range cs {
		m[c.ID] = c
	}
	return m
}

// cases pair on generated BCI-style folders: unmatched files stop it unless
// allowed; the ids are those a run over both folders gives (the tile stage
// writes exactly those slide folders); split works on what it wrote.
func TestCasesPair(t *testing.T) {
	dir := t.TempDir()
	he, ihc := filepath.Join(dir, "HE"), filepath.Join(dir, "IHC")
	names := []string{"00345_test_0", "00901_train_1+", "00820_train_2+", "00672_train_3+"}
	for _, n := range names {
		writeTissuePNG(t, filepath.Join(he, n+".png"), "he")
		writeTissuePNG(t, filepath.Join(ihc, n+".png"), "ihc")
	}
	writeTissuePNG(t, filepath.Join(he, "00999_test_2+.png"), "he") // no IHC partner
	out := filepath.Join(dir, "cases.csv")

	if got := run([]string{"cases", "pair", "--he", he, "--ihc", ihc, "--out", out}); got != exitFailed {
		t.Errorf("unmatched H&E file: exit %d, want %d", got, exitFailed)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("cases.csv written despite problems: %v", err)
	}
	if got := run([]string{"cases", "pair", "--he", he, "--ihc", ihc, "--out", out, "--allow-unmatched"}); got != exitOK {
		t.Fatalf("--allow-unmatched: exit %d", got)
	}
	cs := readCases(t, out)
	if len(cs) != 5 {
		t.Fatalf("%d cases: %+v", len(cs), cs)
	}
	for i, n := range names {
		c := cs[n]
		if c.HE != "HE-"+n || c.IHC != "IHC-"+n || c.Label != i || c.Split != map[bool]string{true: "test", false: "train"}[i == 0] {
			t.Errorf("case %s: %+v", n, c)
		}
	}
	if c := cs["00999_test_2+"]; c.HE != "00999_test_2+" || c.IHC != "" || c.Label != 2 {
		t.Errorf("H&E-only case: %+v", c)
	}
	if got := run([]string{"cases", "pair", "--he", he, "--ihc", ihc, "--out", out, "--allow-unmatched"}); got != exitUsage {
		t.Errorf("existing --out without --force: exit %d, want %d", got, exitUsage)
	}

	// The ids are the run's: tile both folders, and check finds every slide
	// tiled (not yet embedded).
	work := filepath.Join(dir, "work")
	if got := run([]string{"tile", "--input", he, "--input", ihc, "--out", work, "--mpp", "0.5"}); got != exitOK {
		t.Fatalf("tile: exit %d", got)
	}
	list, err := cases.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	ps := cases.Check(list, "cases.csv", pipeline.SlideChecker{Work: pipeline.Work{Dir: work}, Encoder: "tiny-clip", PPK: 18})
	if len(ps) != 9 {
		t.Errorf("%d problems, want 9 (every slide not embedded):\n%v", len(ps), cases.Problems(ps))
	}
	for _, p := range ps {
		if !strings.Contains(p.Msg, "not embedded") {
			t.Errorf("%s: want only 'not embedded'", p)
		}
	}
	if got := run([]string{"cases", "check", "--cases", out, "--work", work, "--encoder", "tiny-clip"}); got != exitFailed {
		t.Errorf("check before embedding: exit %d, want %d", got, exitFailed)
	}

	// split works on the paired set (and replaces the split from the names).
	if got := run([]string{"cases", "split", "--cases", out, "--test-frac", "0.2", "--folds", "2"}); got != exitOK {
		t.Fatalf("split: exit %d", got)
	}
	folds := 0
	for _, c := range readCases(t, out) {
		if c.Split == "train" && c.Fold >= 0 {
			folds++
		}
	}
	if folds == 0 {
		t.Error("split gave no training case a fold")
	}

	// Labels from a file instead of the names.
	labels := filepath.Join(dir, "labels.csv")
	os.WriteFile(labels, []byte("name,label\n00345_test_0.png,3+\n00901_train_1+,0\n00820_train_2+,1\n00672_train_3+,2\n"), 0o644)
	out2 := filepath.Join(dir, "work2", "cases.csv")
	os.Remove(filepath.Join(he, "00999_test_2+.png"))
	if got := run([]string{"cases", "pair", "--he", he, "--ihc", ihc, "--labels", labels, "--work", filepath.Join(dir, "work2")}); got != exitOK {
		t.Fatalf("--labels: exit %d", got)
	}
	if c := readCases(t, out2)["00345_test_0"]; c.Label != 3 || c.Split != "" {
		t.Errorf("label from the labels file: %+v", c)
	}
	os.WriteFile(labels, []byte("name,label\n00345_test_0,4\n00901_train_1+,0\n00820_train_2+,1\n00672_train_3+,2\n"), 0o644)
	if got := run([]string{"cases", "pair", "--he", he, "--ihc", ihc, "--labels", labels, "--out", filepath.Join(dir, "bad.csv")}); got != exitFailed {
		t.Errorf("bad label in the labels file: exit %d, want %d", got, exitFailed)
	}

	// Two files of one name in the H&E folder.
	writeTissuePNG(t, filepath.Join(he, "00345_test_0.jpg"), "he") // a PNG named .jpg: the name is what matters
	if got := run([]string{"cases", "pair", "--he", he, "--ihc", ihc, "--out", filepath.Join(dir, "dup.csv")}); got != exitFailed {
		t.Errorf("duplicate names: exit %d, want %d", got, exitFailed)
	}
	os.Remove(filepath.Join(he, "00345_test_0.jpg"))

	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o755)
	for name, args := range map[string][]string{
		"no --ihc":           {"--he", he, "--out", out},
		"no --out":           {"--he", he, "--ihc", ihc},
		"same folder":        {"--he", he, "--ihc", he + "/", "--out", filepath.Join(dir, "x.csv")},
		"labels and pattern": {"--he", he, "--ihc", ihc, "--labels", labels, "--label-pattern", "_(0)$", "--out", filepath.Join(dir, "x.csv")},
		"bad pattern":        {"--he", he, "--ihc", ihc, "--label-pattern", "_(", "--out", filepath.Join(dir, "x.csv")},
		"pattern no group":   {"--he", he, "--ihc", ihc, "--label-pattern", "_[0-3]$", "--out", filepath.Join(dir, "x.csv")},
		"empty folder":       {"--he", he, "--ihc", empty, "--out", filepath.Join(dir, "x.csv")},
		"missing folder":     {"--he", he, "--ihc", filepath.Join(dir, "nope"), "--out", filepath.Join(dir, "x.csv")},
		"stray argument":     {"--he", he, "--ihc", ihc, "--out", filepath.Join(dir, "x.csv"), "extra"},
	} {
		if got := run(append([]string{"cases", "pair"}, args...)); got != exitUsage {
			t.Errorf("%s: exit %d, want %d", name, got, exitUsage)
		}
	}
}

// The real BCI pairs of shared/data: four cases, labels and split from the
// names, slide ids HE-<name> and IHC-<name>.
func TestCasesPairBCI(t *testing.T) {
	data := testutil.SharedData(t, "bci-he-ihc-her2-pairs")
	out := filepath.Join(t.TempDir(), "cases.csv")
	if got := run([]string{"cases", "pair", "--he", filepath.Join(data, "HE"), "--ihc", filepath.Join(data, "IHC"), "--out", out}); got != exitOK {
		t.Fatalf("exit %d", got)
	}
	cs := readCases(t, out)
	want := map[string]int{"00345_test_0": 0, "00901_test_1+": 1, "00820_test_2+": 2, "00672_test_3+": 3}
	if len(cs) != len(want) {
		t.Fatalf("%+v", cs)
	}
	for n, label := range want {
		if c := cs[n]; c.Label != label || c.Split != "test" || c.HE != "HE-"+n || c.IHC != "IHC-"+n {
			t.Errorf("%s: %+v", n, c)
		}
	}
}
