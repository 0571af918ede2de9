package model

import (
	"encoding/json"
	"flag"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "regenerate the parity goldens with scripts/ipca_ref.py (needs /usr/bin/python3 with torch)")

const parityDir = "testdata/parity"

// parityCase reads a golden case: its real rows as an Example and the
// reference outputs.
func parityCase(t *testing.T, c Config, path string) (*Example, map[string][]float32) {
	t.Helper()
	f := readGolden(t, path)
	meta := func(k string) int {
		v, err := strconv.Atoi(f.Metadata[k])
		if err != nil {
			t.Fatalf("%s: metadata %s: %v", path, k, err)
		}
		return v
	}
	f32 := func(name string) []float32 { return f32Of(t, f, name) }
	n, k, m := meta("n_real"), meta("k_real"), meta("m_real")
	e := &Example{ID: filepath.Base(path), N: n, K: k, M: m, Label: 0}
	e.HE = f32("he")[:n*c.InDim]
	e.IHC = f32("ihc")[:m*c.InDim]
	dist, shape := i64Of(t, f, "dist")
	polar, _ := i64Of(t, f, "polar")
	W := shape[1]
	e.Dist, e.Polar = make([]uint8, k*n), make([]uint8, k*n)
	for a := 0; a < k; a++ {
		for j := 0; j < n; j++ {
			e.Dist[a*n+j], e.Polar[a*n+j] = uint8(dist[a*W+j]), uint8(polar[a*W+j])
		}
	}
	out := map[string][]float32{}
	for name := range f.Tensors {
		if len(name) > 4 && (name[:4] == "out_" || name[:4] == "ref_") {
			out[name] = f32(name)
		}
	}
	return e, out
}

// TestParity: the Go model's logits equal the PyTorch reference's
// (scripts/ipca_ref.py) within 1e-4 on the golden cases, for the training
// forward (H&E + IHC) and the H&E-only forward, in the default mode and the
// reference-compatible mode, and for the pama and ipca-noproxy variants.
func TestParity(t *testing.T) {
	regenGoldens(t, "../scripts/ipca_ref.py", parityDir)
	base, err := ReadConfig(filepath.Join(parityDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	be := testBackend(t)
	ref := base
	ref.ReferencePadding, ref.ReferenceEval = true, true
	pama := base
	pama.Variant = VariantPAMA
	noproxy := base
	noproxy.Variant = VariantNoProxy
	type run struct {
		name    string
		c       Config
		weights string
		train   string // prefix of the training forward's golden logits ("": none)
		he      string // the golden H&E-only logits
	}
	runs := []run{{"default", base, "weights.safetensors", "out_", "out_he_logits"},
		{"reference", ref, "weights.safetensors", "ref_", "ref_he_logits"},
		{"pama", pama, "weights_pama.safetensors", "", "out_pama_logits"},
		{"noproxy", noproxy, "weights.safetensors", "", "out_noproxy_logits"}}
	cases, _ := filepath.Glob(filepath.Join(parityDir, "case_*.safetensors"))
	if len(cases) < 4 {
		t.Fatalf("%d golden cases in %s", len(cases), parityDir)
	}
	for _, r := range runs {
		rt := testRuntime(t, be, r.c)
		p, err := LoadWeights(filepath.Join(parityDir, r.weights), r.c)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range cases {
			e, want := parityCase(t, r.c, path)
			check := func(what, key string, got []float32) {
				w, ok := want[key]
				if !ok {
					t.Fatalf("%s: no %s", path, key)
				}
				var worst float64
				for i := range w {
					worst = math.Max(worst, math.Abs(float64(got[i]-w[i])))
				}
				if worst > 1e-4 {
					t.Errorf("%s %s %s: got %v, reference %v (max diff %.2g)", r.name, filepath.Base(path), what, got, w, worst)
				} else {
					t.Logf("%s %s %s: max diff %.2g", r.name, filepath.Base(path), what, worst)
				}
			}
			pr, err := rt.Predict(p, e)
			if err != nil {
				t.Fatal(err)
			}
			if r.train != "" {
				lg, li, err := rt.ForwardTrain(p, e)
				if err != nil {
					t.Fatal(err)
				}
				check("train H&E", r.train+"train_logits", lg)
				check("train IHC", r.train+"train_logits_ihc", li)
			}
			check("H&E-only", r.he, pr.Logits)
		}
	}
}

// Weights written here load into the PyTorch reference (strict state_dict
// names and shapes) and give the same logits there. Skipped without
// /usr/bin/python3 + torch (scripts/setup.sh export installs them).
func TestWeightsLoadInTorch(t *testing.T) {
	requireTorch(t)
	c, err := ReadConfig(filepath.Join(parityDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	rt := testRuntime(t, testBackend(t), c)
	p := InitParams(c, 99) // the reference's initialisation, as a training run starts
	w, cfgPath := writeForTorch(t, t.TempDir(), c, p)
	inputs := filepath.Join(parityDir, "case_b.safetensors")
	e, _ := parityCase(t, c, inputs)
	pr, err := rt.Predict(p, e)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", "../scripts/ipca_ref.py", "forward", "--weights", w,
		"--config", cfgPath, "--inputs", inputs, "--he-only").CombinedOutput()
	if err != nil {
		t.Fatalf("torch forward: %v\n%s", err, out)
	}
	t.Logf("torch: %s go: %v", out, pr.Logits)
	var got struct {
		Logits []float64 `json:"logits"`
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got.Logits) != c.Classes {
		t.Fatalf("torch output %q: %v", out, err)
	}
	for i := range got.Logits {
		if math.Abs(got.Logits[i]-float64(pr.Logits[i])) > 1e-4 {
			t.Fatalf("torch %v, Go %v", got.Logits, pr.Logits)
		}
	}
}
