package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/safetensors"
)

const clamParityDir = "testdata/parity/clam"

// clamTol is the parity tolerance: logits, loss, attention and gradients
// of the Go float32 model against the float64 torch reference.
const clamTol = 1e-5

// clamCase reads a golden case file: its example and all its tensors.
func clamCase(t *testing.T, c Config, path string) (*Example, *safetensors.File) {
	t.Helper()
	f := readGolden(t, path)
	he := f32Of(t, f, "he")
	lab, _ := i64Of(t, f, "label")
	n := len(he) / c.InDim
	return &Example{ID: filepath.Base(path), N: n, HE: he, Label: int(lab[0])}, f
}

// closeTo reports the largest |got − want| and fails above clamTol.
func closeTo(t *testing.T, what string, got, want []float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, reference %d", what, len(got), len(want))
	}
	var worst float64
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > clamTol || math.IsNaN(worst) {
		t.Errorf("%s: max |diff| %.3g > %g", what, worst, clamTol)
	}
	return worst
}

// checkCLAM runs predict and a gradient step on e and compares them with
// the reference tensors named prefix+"logits", …, and the gradients
// gradPrefix+<state_dict name> when gradPrefix is not empty.
func checkCLAM(t *testing.T, rt *Runtime, p *Params, e *Example, f *safetensors.File, prefix, gradPrefix string) {
	t.Helper()
	pr, g := predictGrad(t, rt, p, e)
	dl := closeTo(t, prefix+"logits (predict)", pr.Logits, f32Of(t, f, prefix+"logits"))
	closeTo(t, prefix+"logits (train)", g.Logits, f32Of(t, f, prefix+"logits"))
	dloss := closeTo(t, prefix+"loss", []float32{float32(g.Loss)}, f32Of(t, f, prefix+"loss"))
	da := closeTo(t, prefix+"attention", pr.Attention, f32Of(t, f, prefix+"attn"))
	var dg float64
	if gradPrefix != "" {
		for i, s := range p.Specs {
			dg = math.Max(dg, closeTo(t, gradPrefix+s.Name, g.Grads[i], f32Of(t, f, gradPrefix+s.Name)))
		}
	}
	t.Logf("%s N=%d: max |diff| logits %.2g, loss %.2g, attention %.2g, gradients %.2g", e.ID, e.N, dl, dloss, da, dg)
}

// TestCLAMParity: clam_sb (official defaults) and clam_mb (plain
// attention, big, k_sample 4, bag_weight 0.5, subtyping) equal the PyTorch
// reference (scripts/clam_ref.py, float64) within 1e-5 on weights written
// by torch: logits, the training loss (bag CE + instance clustering loss),
// the attention shown, and every gradient. Case c has fewer patches than
// k_sample.
func TestCLAMParity(t *testing.T) {
	regenGoldens(t, "../scripts/clam_ref.py", clamParityDir)
	be := testBackend(t)
	for _, name := range []string{"sb", "mb"} {
		t.Run(name, func(t *testing.T) {
			c, p := goldenModel(t, clamParityDir, "config_"+name+".json", "weights_"+name+".safetensors")
			rt := testRuntime(t, be, c)
			for _, cs := range []string{"a", "b", "c"} {
				e, f := clamCase(t, c, filepath.Join(clamParityDir, "case_"+cs+".safetensors"))
				gp := ""
				if cs == "a" {
					gp = "grad_" + name + "."
				}
				checkCLAM(t, rt, p, e, f, "out_"+name+"_", gp)
			}
		})
	}
}

// TestCLAMWeightsInTorch: weights initialised and written here load into
// the torch reference with strict state_dict names, and torch's logits,
// loss, attention and gradients equal ours within 1e-5. Skipped without
// /usr/bin/python3 + torch.
func TestCLAMWeightsInTorch(t *testing.T) {
	requireTorch(t)
	be := testBackend(t)
	gate := false
	cfgs := map[string]func(c *Config){
		"sb-small-gated":       func(c *Config) { c.Variant = VariantCLAMSB },
		"mb-small-gated-subtp": func(c *Config) { c.Variant, c.Subtyping = VariantCLAMMB, true },
		"sb-big-plain-k3":      func(c *Config) { c.Variant, c.Gate, c.SizeArg, c.KSample = VariantCLAMSB, &gate, "big", 3 },
	}
	for name, set := range cfgs {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			c.InDim, c.Classes = 16, 4
			set(&c)
			rt := testRuntime(t, be, c)
			p := InitParams(c, 17)
			dir := t.TempDir()
			w, cj := writeForTorch(t, dir, c, p)
			var ins, outs []string
			for _, cs := range []string{"a", "b", "c"} {
				ins = append(ins, filepath.Join(clamParityDir, "case_"+cs+".safetensors"))
				outs = append(outs, filepath.Join(dir, "out_"+cs+".safetensors"))
			}
			if b, err := exec.Command("/usr/bin/python3", "../scripts/clam_ref.py", "grad", "--weights", w,
				"--config", cj, "--inputs", strings.Join(ins, ","), "--out", strings.Join(outs, ",")).CombinedOutput(); err != nil {
				t.Fatalf("torch: %v\n%s", err, b)
			}
			for i, in := range ins {
				f := readGolden(t, outs[i])
				e, _ := clamCase(t, c, in)
				checkCLAM(t, rt, p, e, f, "", "grad.")
			}
		})
	}
}

// TestCLAMConfig: the official constructor's keys parse with their
// defaults, bad values are one clear error, and the state_dict names follow
// gate, size_arg, dropout and the variant.
func TestCLAMConfig(t *testing.T) {
	tests := []struct {
		json    string
		wantErr string
		names   []string // some expected parameter names
		shape   map[string][]int
	}{
		{json: `{"variant":"clam_sb","in_dim":1024,"classes":2}`,
			names: []string{"attention_net.0.weight", "attention_net.3.attention_a.0.weight", "attention_net.3.attention_b.0.bias", "attention_net.3.attention_c.weight", "classifiers.weight", "instance_classifiers.1.bias"},
			shape: map[string][]int{"attention_net.0.weight": {512, 1024}, "attention_net.3.attention_c.weight": {1, 256}, "classifiers.weight": {2, 512}}},
		{json: `{"variant":"clam_mb","size_arg":"big","gate":false,"classes":4}`,
			names: []string{"attention_net.3.module.0.weight", "attention_net.3.module.2.weight", "classifiers.3.weight", "instance_classifiers.3.weight"},
			shape: map[string][]int{"attention_net.3.module.2.weight": {4, 384}, "classifiers.0.weight": {1, 512}}},
		{json: `{"variant":"clam_sb","gate":false,"dropout":0.25}`,
			names: []string{"attention_net.3.module.3.weight"}},
		{json: `{"variant":"clam_sb","size_arg":"huge"}`, wantErr: `size_arg "huge"`},
		{json: `{"variant":"clam_mb","bag_weight":1.5}`, wantErr: "bag_weight 1.5"},
		{json: `{"variant":"clam_mb","k_sample":-2}`, wantErr: "k_sample -2"},
		{json: `{"variant":"ipca","gate":false,"k_sample":-2}`, names: []string{"head_i.weight"}}, // ignored by other variants
	}
	for _, tt := range tests {
		c, err := ParseConfig([]byte(tt.json))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tt.json, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.json, err)
		}
		shapes := map[string][]int{}
		for _, s := range c.Specs() {
			shapes[s.Name] = s.Shape
		}
		for _, n := range tt.names {
			if _, ok := shapes[n]; !ok {
				t.Errorf("%s: no parameter %s (have %v)", tt.json, n, shapes)
			}
		}
		for n, want := range tt.shape {
			if fmt.Sprint(shapes[n]) != fmt.Sprint(want) {
				t.Errorf("%s: %s shape %v, want %v", tt.json, n, shapes[n], want)
			}
		}
	}
	// Run folders record the defaults of the keys left out.
	sb, _ := ParseConfig([]byte(`{"variant":"clam_sb"}`))
	nb, _ := json.Marshal(sb.Normalized())
	for _, kv := range []string{`"gate":true`, `"size_arg":"small"`, `"k_sample":8`, `"bag_weight":0.7`} {
		if !strings.Contains(string(nb), kv) {
			t.Errorf("normalized config %s lacks %s", nb, kv)
		}
	}
	// A config written and read back is the same config.
	c, _ := ParseConfig([]byte(`{"variant":"clam_mb","k_sample":4,"bag_weight":0,"subtyping":true}`))
	b, _ := json.Marshal(c)
	c2, err := ParseConfig(b)
	if err != nil || c2.CLAMBagWeight() != 0 || c2.CLAMKSample() != 4 || !c2.Subtyping || !c2.CLAMGate() {
		t.Errorf("round trip %s: %+v, %v", b, c2.CLAMConfig, err)
	}
}

// TestCLAMLegacyNames: checkpoints of CLAM before its 2024 rewrite
// (attention module at attention_net.2 when trained without dropout) and
// plain-attention checkpoints trained with dropout (output layer at
// module.3) load into the current names with the same values; a tensor
// that fits nowhere is still refused.
func TestCLAMLegacyNames(t *testing.T) {
	tests := []struct {
		cfg       string
		rename    func(string) string
		wantError string
	}{
		{cfg: "sb", rename: func(n string) string { return strings.Replace(n, "attention_net.3.", "attention_net.2.", 1) }},
		{cfg: "mb", rename: func(n string) string {
			return strings.Replace(strings.Replace(n, "attention_net.3.", "attention_net.2.", 1), "module.2.", "module.3.", 1)
		}},
		{cfg: "mb", rename: func(n string) string { return strings.Replace(n, "classifiers.1.", "classifier.1.", 1) }, wantError: "missing classifiers.1.weight"},
	}
	for _, tt := range tests {
		c, want := goldenModel(t, clamParityDir, "config_"+tt.cfg+".json", "weights_"+tt.cfg+".safetensors")
		f := readGolden(t, filepath.Join(clamParityDir, "weights_"+tt.cfg+".safetensors"))
		old := &safetensors.File{Tensors: map[string]safetensors.Tensor{}, Metadata: f.Metadata}
		renamed := 0
		for n, v := range f.Tensors {
			if m := tt.rename(n); m != n {
				renamed++
				n = m
			}
			old.Tensors[n] = v
		}
		path := filepath.Join(t.TempDir(), "old.safetensors")
		if err := safetensors.Write(path, old); err != nil {
			t.Fatal(err)
		}
		got, err := LoadWeights(path, c)
		if tt.wantError != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("%s: error %v, want %q", tt.cfg, err, tt.wantError)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s with %d old names: %v", tt.cfg, renamed, err)
		}
		for i, s := range want.Specs {
			if !slices.Equal(got.Values[i], want.Values[i]) {
				t.Errorf("%s: %s differs after loading old names", tt.cfg, s.Name)
			}
		}
		if renamed < 4 {
			t.Errorf("%s: only %d names renamed; the test does not test", tt.cfg, renamed)
		}
	}
}

// TestCLAMDropout: with dropout the training step draws its masks from the
// seed (same seed, same gradients; another seed, others), and prediction
// is unaffected (the same logits as the config without dropout).
func TestCLAMDropout(t *testing.T) {
	be := testBackend(t)
	for _, v := range []string{VariantCLAMSB, VariantCLAMMB} {
		c, err := ReadConfig(filepath.Join(clamParityDir, "config_sb.json"))
		if err != nil {
			t.Fatal(err)
		}
		c.Variant = v
		p := InitParams(c, 5)
		noDrop := testRuntime(t, be, c)
		c.Dropout = Rate(0.25)
		rt := testRuntime(t, be, c)
		e, _ := clamCase(t, c, filepath.Join(clamParityDir, "case_a.safetensors"))
		g1, err := rt.GradSeed(p, e, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		g1b, _ := rt.GradSeed(p, e, nil, 1)
		g2, _ := rt.GradSeed(p, e, nil, 2)
		g0, _ := noDrop.Grad(p, e, nil)
		if g1.Loss != g1b.Loss || !slices.Equal(g1.Grads[0], g1b.Grads[0]) {
			t.Errorf("%s: the same seed gave different steps", v)
		}
		if g1.Loss == g2.Loss || g1.Loss == g0.Loss {
			t.Errorf("%s: dropout changed nothing (loss %v seed 1, %v seed 2, %v without)", v, g1.Loss, g2.Loss, g0.Loss)
		}
		pr, err := rt.Predict(p, e)
		if err != nil {
			t.Fatal(err)
		}
		pr0, _ := noDrop.Predict(p, e)
		if !slices.Equal(pr.Logits, pr0.Logits) {
			t.Errorf("%s: prediction with dropout %v, without %v", v, pr.Logits, pr0.Logits)
		}
	}
}
