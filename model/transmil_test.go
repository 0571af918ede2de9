package model

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/her2wsi/her2wsi/internal/safetensors"
)

const parityTransMILDir = "testdata/parity_transmil"

// parityTol is the bound on logits, loss, attention and gradients.
const parityTol = 1e-5

func transmilConfig(t *testing.T, variant string) Config {
	t.Helper()
	c, err := ReadConfig(filepath.Join(parityTransMILDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c.Variant = variant
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// transmilCase reads a golden case file: the example and every tensor.
func transmilCase(t *testing.T, c Config, path string) (*Example, map[string][]float32) {
	t.Helper()
	f, err := safetensors.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(f.Metadata["n"])
	if err != nil {
		t.Fatalf("%s: metadata n: %v", path, err)
	}
	lab, err := f.Tensors["label"].Int64()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for name, tt := range f.Tensors {
		if name == "label" {
			continue
		}
		v, err := tt.Float32()
		if err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		out[name] = v
	}
	e := &Example{ID: filepath.Base(path), N: n, HE: out["he"], Label: int(lab[0])}
	if len(e.HE) != n*c.InDim {
		t.Fatalf("%s: he has %d values, want %d×%d", path, len(e.HE), n, c.InDim)
	}
	return e, out
}

// maxDiff is the largest |a−b|; a length mismatch is infinite.
func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var w float64
	for i := range a {
		w = math.Max(w, math.Abs(float64(a[i]-b[i])))
	}
	return w
}

// compareOutputs checks logits, loss, attention and every gradient of the
// Go model against a reference's tensors (prefix: "<variant>." in goldens,
// "" in a live run).
func compareOutputs(t *testing.T, what string, rt *Runtime, p *Params, e *Example, want map[string][]float32, prefix string) {
	t.Helper()
	pr, err := rt.Predict(p, e)
	if err != nil {
		t.Fatal(err)
	}
	gr, err := rt.Grad(p, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got []float32) {
		t.Helper()
		w, ok := want[prefix+name]
		if !ok {
			t.Fatalf("%s: the reference has no %s", what, prefix+name)
		}
		if d := maxDiff(got, w); d > parityTol {
			t.Errorf("%s %s: max diff %.3g > %g", what, name, d, parityTol)
		}
	}
	check("logits", pr.Logits)
	check("logits", gr.Logits)
	check("loss", []float32{float32(gr.Loss)})
	check("attn", pr.Attention)
	var worst float64
	for i, s := range p.Specs {
		check("grad."+s.Name, gr.Grads[i])
		worst = math.Max(worst, maxDiff(gr.Grads[i], want[prefix+"grad."+s.Name]))
	}
	t.Logf("%s: logits diff %.2g, attention %.2g, worst gradient %.2g (%d tensors)", what,
		maxDiff(pr.Logits, want[prefix+"logits"]), maxDiff(pr.Attention, want[prefix+"attn"]), worst, len(p.Specs))
}

// gradWithKeeps is the training step's graph (loss, logits, gradients) of
// transmil/nystromformer under config c with the two layers' dropout keep
// masks given ([1+side², dim] each, 1 keep, 0 drop) instead of drawn, so a
// reference can be fed the same masks. rt lends its backend and packing.
func gradWithKeeps(t *testing.T, rt *Runtime, c Config, p *Params, e *Example, keeps [][]float32) GradResult {
	t.Helper()
	np := len(rt.specs)
	ex, err := NewExec(rt.Backend, func(g *Graph, in []*Node) []*Node {
		b := newBuilder(c, rt.specs, in[:np])
		b.train = true
		he := heFrom(c, in[np:])
		label := in[np+heCount(c)]
		b.keeps = in[np+heCount(c)+1:]
		out := b.forward(he, nil, false)
		if len(b.keeps) != 0 {
			Panicf("%d dropout masks left over", len(b.keeps))
		}
		loss := crossEntropy(out.logits, label, c.Classes)
		return append([]*Node{loss, out.logits}, gradients(loss, in[:np], rt.specs)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Finalize()
	args := append(rt.forwardParams(p), rt.heTensors(pack(c, e, nil, false))...)
	args = append(args, tensors.FromScalar(int32(e.Label)))
	D := c.nysDim()
	for _, k := range keeps {
		args = append(args, tensors.FromFlatDataAndDimensions(k, len(k)/D, D))
	}
	outs, err := rt.call(ex, args)
	if err != nil {
		t.Fatal(err)
	}
	defer finalize(outs)
	res := GradResult{
		Loss:   float64(tensors.MustCopyFlatData[float32](outs[0])[0]),
		Logits: tensors.MustCopyFlatData[float32](outs[1]),
	}
	for _, o := range outs[2:] {
		res.Grads = append(res.Grads, tensors.MustCopyFlatData[float32](o))
	}
	return res
}

// compareDropped checks a training step with the given dropout keep masks
// (rate: c's) against a reference's drop.logits, drop.loss and
// drop.grad.* within 1e-5.
func compareDropped(t *testing.T, what string, rt *Runtime, c Config, p *Params, e *Example, keeps [][]float32, want map[string][]float32, prefix string) {
	t.Helper()
	gr := gradWithKeeps(t, rt, c, p, e, keeps)
	var worst float64
	check := func(name string, got []float32) {
		t.Helper()
		w, ok := want[prefix+"drop."+name]
		if !ok {
			t.Fatalf("%s: the reference has no %sdrop.%s", what, prefix, name)
		}
		d := maxDiff(got, w)
		if d > parityTol {
			t.Errorf("%s dropout %g: %s: max diff %.3g > %g", what, c.DropoutRate(), name, d, parityTol)
		}
		worst = math.Max(worst, d)
	}
	check("logits", gr.Logits)
	check("loss", []float32{float32(gr.Loss)})
	for i, s := range p.Specs {
		check("grad."+s.Name, gr.Grads[i])
	}
	// The masks matter: the dropped step's logits are not eval mode's.
	if d := maxDiff(gr.Logits, want[prefix+"logits"]); d < 1e-3 {
		t.Errorf("%s: logits with dropout differ from eval mode's by only %.3g", what, d)
	}
	t.Logf("%s: dropout %g, the same masks in both: worst of logits, loss and %d gradients %.2g", what, c.DropoutRate(), len(p.Specs), worst)
}

// TestTransMILParity: weights written by the PyTorch reference
// (scripts/transmil_ref.py golden; -update regenerates the goldens) load
// here, and logits, loss, [CLS]→patch attention and the gradient of every
// parameter agree within 1e-5, for slides of 1, 16 (a square), 37 and 150
// patches (several landmark groups), for transmil and nystromformer: in
// eval mode and a training step without dropout, and a training step with
// the config's default dropout (the official 0.1) fed the reference's
// masks.
func TestTransMILParity(t *testing.T) {
	if *update {
		cmd := exec.Command("/usr/bin/python3", "../scripts/transmil_ref.py", "golden", "--out", parityTransMILDir)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("regenerating goldens: %v", err)
		}
	}
	be := testBackend(t)
	cases, _ := filepath.Glob(filepath.Join(parityTransMILDir, "case_*.safetensors"))
	if len(cases) < 4 {
		t.Fatalf("%d golden cases in %s", len(cases), parityTransMILDir)
	}
	for _, variant := range []string{VariantTransMIL, VariantNystromformer} {
		t.Run(variant, func(t *testing.T) {
			cd := transmilConfig(t, variant) // dropout left out: the official rate
			if r := cd.DropoutRate(); r != TransMILDropout {
				t.Fatalf("dropout left out: rate %g, want the official %g", r, TransMILDropout)
			}
			c := cd
			c.Dropout = Rate(0)
			rt := testRuntime(t, be, c)
			p, err := LoadWeights(filepath.Join(parityTransMILDir, "weights_"+variant+".safetensors"), c)
			if err != nil {
				t.Fatal(err)
			}
			for _, path := range cases {
				e, want := transmilCase(t, c, path)
				compareOutputs(t, filepath.Base(path), rt, p, e, want, variant+".")
				keeps := [][]float32{want["keep.layer1"], want["keep.layer2"]}
				compareDropped(t, filepath.Base(path), rt, cd, p, e, keeps, want, variant+".")
			}
		})
	}
}

// TestTransMILLiveTorch: weights initialised and written here load into the
// PyTorch reference with strict state_dict names, and its logits, loss,
// attention and gradients agree within 1e-5, without dropout and with
// dropout 0.25 and keep masks drawn here. Skipped without
// /usr/bin/python3 and torch.
func TestTransMILLiveTorch(t *testing.T) {
	requireTorch(t)
	be := testBackend(t)
	for _, variant := range []string{VariantTransMIL, VariantNystromformer} {
		t.Run(variant, func(t *testing.T) {
			c := transmilConfig(t, variant)
			c.Dropout = Rate(0)
			rt := testRuntime(t, be, c)
			cd := c // the dropped step at another rate than the default
			cd.Dropout = Rate(0.25)
			p := InitParams(c, 42)
			dir := t.TempDir()
			w := filepath.Join(dir, "w.safetensors")
			if err := SaveWeights(w, c, p, nil); err != nil {
				t.Fatal(err)
			}
			if err := writeJSON(filepath.Join(dir, "config.json"), cd); err != nil {
				t.Fatal(err)
			}
			e, _ := transmilCase(t, c, filepath.Join(parityTransMILDir, "case_d.safetensors"))
			// Keep masks drawn here (rate 0.25) go to the reference.
			rng := rand.New(rand.NewPCG(5, 6))
			side := squareSide(e.N)
			keeps := make([][]float32, 2)
			for i := range keeps {
				keeps[i] = make([]float32, (1+side*side)*c.nysDim())
				for j := range keeps[i] {
					if rng.Float64() >= 0.25 {
						keeps[i][j] = 1
					}
				}
			}
			inputs := filepath.Join(dir, "in.safetensors")
			shape := []int{1 + side*side, c.nysDim()}
			if err := safetensors.Write(inputs, &safetensors.File{Tensors: map[string]safetensors.Tensor{
				"he":          safetensors.FromFloat32([]int{e.N, c.InDim}, e.HE),
				"label":       safetensors.FromInt64([]int{1}, []int64{int64(e.Label)}),
				"keep.layer1": safetensors.FromFloat32(shape, keeps[0]),
				"keep.layer2": safetensors.FromFloat32(shape, keeps[1]),
			}}); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "torch.safetensors")
			if b, err := exec.Command("/usr/bin/python3", "../scripts/transmil_ref.py", "grad", "--weights", w,
				"--config", filepath.Join(dir, "config.json"), "--inputs", inputs, "--out", out).CombinedOutput(); err != nil {
				t.Fatalf("torch: %v\n%s", err, b)
			}
			f, err := safetensors.Read(out)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]float32{}
			for name, tt := range f.Tensors {
				if want[name], err = tt.Float32(); err != nil {
					t.Fatal(err)
				}
			}
			compareOutputs(t, "live", rt, p, e, want, "")
			compareDropped(t, "live", rt, cd, p, e, keeps, want, "")
		})
	}
}

// The Nyström keys belong to transmil/nystromformer: absent from other
// variants' config JSON, refused there, checked here.
func TestNystromConfig(t *testing.T) {
	b, err := json.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"dim", "num_landmarks", "pinv_iterations", "residual_conv_kernel"} {
		if strings.Contains(string(b), `"`+k+`"`) {
			t.Errorf("the IPCA config JSON has %s: %s", k, b)
		}
	}
	for _, tc := range []struct {
		json, errPart string
	}{
		{`{"variant": "transmil", "in_dim": 1024, "classes": 2}`, ""},
		{`{"variant": "nystromformer", "dim": 64, "num_landmarks": 16, "pinv_iterations": 3, "residual_conv_kernel": 9}`, ""},
		{`{"variant": "ipca", "dim": 64}`, "keys of the transmil and nystromformer variants"},
		{`{"variant": "transmil", "dim": 60}`, "multiple of 8 heads"},
		{`{"variant": "transmil", "residual_conv_kernel": 32}`, "must be odd"},
	} {
		c, err := ParseConfig([]byte(tc.json))
		if tc.errPart == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.json, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.errPart) {
			t.Errorf("%s: error %v, want one saying %q", tc.json, err, tc.errPart)
		}
		_ = c
	}
	// Official sizes: 512 wide, 256 landmarks, PPEG with 7/5/3 kernels.
	c := DefaultConfig()
	c.Variant, c.InDim, c.Classes = VariantTransMIL, 1024, 2
	want := map[string][]int{"_fc1.0.weight": {512, 1024}, "layer1.attn.to_qkv.weight": {1536, 512},
		"layer2.attn.res_conv.weight": {8, 1, 33, 1}, "pos_layer.proj1.weight": {512, 1, 5, 5}, "cls_token": {1, 1, 512}, "_fc2.weight": {2, 512}}
	got := map[string][]int{}
	for _, s := range c.Specs() {
		got[s.Name] = s.Shape
	}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("%s: shape %v, official %v", k, got[k], v)
		}
	}
	if len(got) != 25 {
		t.Errorf("%d tensors, the official TransMIL state_dict has 25", len(got))
	}
}

// TestTransMILDropoutConfig: transmil and nystromformer take the official
// dropout 0.1 where the config leaves "dropout" out (also when --variant
// turns another variant's config into theirs), an explicit value (0
// included) as given, other variants 0; run folders record the rate; rates
// outside [0, 1) are refused.
func TestTransMILDropoutConfig(t *testing.T) {
	for _, tc := range []struct {
		json, variant string // variant: set after parsing, as --variant does
		rate          float64
		errPart       string
	}{
		{json: `{"variant": "transmil"}`, rate: TransMILDropout},
		{json: `{"variant": "nystromformer"}`, rate: TransMILDropout},
		{json: `{}`, variant: VariantTransMIL, rate: TransMILDropout},
		{json: `{"variant": "transmil", "dropout": 0}`, rate: 0},
		{json: `{"dropout": 0}`, variant: VariantNystromformer, rate: 0},
		{json: `{"variant": "nystromformer", "dropout": 0.3}`, rate: 0.3},
		{json: `{"variant": "ipca"}`, rate: DefaultDropout},
		{json: `{"variant": "abmil"}`, rate: DefaultDropout},
		{json: `{"variant": "transmil", "dropout": 1}`, errPart: "dropout 1 (0 ≤ p < 1)"},
		{json: `{"variant": "nystromformer", "dropout": 1.5}`, errPart: "dropout 1.5 (0 ≤ p < 1)"},
		{json: `{"variant": "transmil", "dropout": -0.1}`, errPart: "dropout -0.1 (0 ≤ p < 1)"},
		{json: `{"variant": "transmil", "dropout": "0.1"}`, errPart: "dropout"},
	} {
		name := tc.json + " " + tc.variant
		c, err := ParseConfig([]byte(tc.json))
		if err == nil && tc.variant != "" {
			c.Variant = tc.variant
			err = c.Validate()
		}
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%s: error %v, want one saying %q", name, err, tc.errPart)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := c.DropoutRate(); got != tc.rate {
			t.Errorf("%s: dropout rate %g, want %g", name, got, tc.rate)
		}
		// A run folder records the rate, and reading it back keeps it.
		n := c.Normalized()
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`"dropout":%s`, strconv.FormatFloat(tc.rate, 'g', -1, 64)); !strings.Contains(string(b), want) {
			t.Errorf("%s: normalized config %s lacks %s", name, b, want)
		}
		back, err := ParseConfig(b)
		if err != nil {
			t.Fatal(err)
		}
		if back.DropoutRate() != tc.rate {
			t.Errorf("%s: read back, dropout rate %g, want %g", name, back.DropoutRate(), tc.rate)
		}
	}
}

// TestTransMILDropoutOverShared: a variant's own config over shared settings (ParseConfigOver, compare's
// --variant-config) sets its dropout without touching the shared config's.
func TestTransMILDropoutOverShared(t *testing.T) {
	shared, err := ParseConfig([]byte(`{"variant": "ipca", "dropout": 0.2, "gate": true, "bag_weight": 0.5}`))
	if err != nil {
		t.Fatal(err)
	}
	base := shared
	base.Variant = VariantTransMIL
	own, err := ParseConfigOver(base, []byte(`{"dropout": 0, "gate": false, "bag_weight": 0.9}`))
	if err != nil {
		t.Fatal(err)
	}
	if own.DropoutRate() != 0 || *own.Gate || *own.BagWeight != 0.9 {
		t.Errorf("own settings: dropout %g, gate %v, bag_weight %g", own.DropoutRate(), *own.Gate, *own.BagWeight)
	}
	if shared.DropoutRate() != 0.2 || !*shared.Gate || *shared.BagWeight != 0.5 {
		t.Errorf("the shared config changed: dropout %g, gate %v, bag_weight %g", shared.DropoutRate(), *shared.Gate, *shared.BagWeight)
	}
	// Left out in both: the variant's official rate.
	base.Dropout = nil
	own, err = ParseConfigOver(base, []byte(`{"dim": 64}`))
	if err != nil {
		t.Fatal(err)
	}
	if own.DropoutRate() != TransMILDropout {
		t.Errorf("dropout left out in both: %g, want %g", own.DropoutRate(), TransMILDropout)
	}
}

// TestTransMILDropout: dropout is drawn in training steps only: a step's
// masks follow its seed (same seed, same loss and gradients; another seed,
// another loss; without dropout the seed does not matter), and prediction
// with dropout equals prediction without.
func TestTransMILDropout(t *testing.T) {
	be := testBackend(t)
	for _, variant := range []string{VariantTransMIL, VariantNystromformer} {
		t.Run(variant, func(t *testing.T) {
			c := DefaultConfig()
			c.Variant, c.InDim = variant, 6
			c.NystromConfig = NystromConfig{Dim: 16, NumLandmarks: 4, ResidualConvKernel: 5}
			if c.DropoutRate() != TransMILDropout {
				t.Fatalf("default dropout %g, want %g", c.DropoutRate(), TransMILDropout)
			}
			rt := testRuntime(t, be, c)
			off := c
			off.Dropout = Rate(0)
			rt0 := testRuntime(t, be, off)
			p := InitParams(c, 3)
			e := randomExample(c, rand.New(rand.NewPCG(1, 2)), 20, 0, 0, 2)
			step := func(rt *Runtime, seed uint64) GradResult {
				g, err := rt.GradSeed(p, e, nil, seed)
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			a, b, d := step(rt, 7), step(rt, 7), step(rt, 8)
			ref, ref8 := step(rt0, 7), step(rt0, 8)
			if a.Loss != b.Loss || maxDiff(a.Grads[0], b.Grads[0]) != 0 {
				t.Errorf("same seed: loss %v then %v", a.Loss, b.Loss)
			}
			if a.Loss == d.Loss || maxDiff(a.Grads[0], d.Grads[0]) == 0 {
				t.Errorf("seeds 7 and 8 draw the same masks: loss %v, %v", a.Loss, d.Loss)
			}
			if a.Loss == ref.Loss {
				t.Errorf("dropout does not change the loss: %v with, %v without", a.Loss, ref.Loss)
			}
			if ref.Loss != ref8.Loss {
				t.Errorf("without dropout the seed changes the loss: %v, %v", ref.Loss, ref8.Loss)
			}
			pa, err := rt.Predict(p, e)
			if err != nil {
				t.Fatal(err)
			}
			pb, err := rt0.Predict(p, e)
			if err != nil {
				t.Fatal(err)
			}
			if maxDiff(pa.Logits, pb.Logits) != 0 || maxDiff(pa.Attention, pb.Attention) != 0 {
				t.Errorf("prediction with dropout %v, without %v", pa.Logits, pb.Logits)
			}
			// The step without dropout is eval mode's function: its logits
			// are the prediction's.
			if d := maxDiff(ref.Logits, pb.Logits); d > 1e-6 {
				t.Errorf("training logits without dropout differ from prediction's by %.3g", d)
			}
		})
	}
}

func TestSquareSide(t *testing.T) {
	for _, tc := range []struct{ n, side int }{{1, 1}, {2, 2}, {4, 2}, {5, 3}, {2048, 46}, {2116, 46}, {2117, 47}} {
		if got := squareSide(tc.n); got != tc.side {
			t.Errorf("squareSide(%d) = %d, want %d", tc.n, got, tc.side)
		}
	}
}

// TestTransMILOfficial is the by-hand check against the official code
// itself: set HER2WSI_TRANSMIL_OFFICIAL to a folder holding TransMIL's
// models/TransMIL.py and the nystrom_attention package (see
// scripts/transmil_official.py). Weights initialised here at the official
// size (in_dim 1024, dim 512, 256 landmarks) load into the official TransMIL
// with strict names; logits, loss and gradients agree within 1e-5 on a
// 300-patch slide, in eval mode and in a train-mode step whose to_out
// Dropout (0.1, the default here) is fed the same keep masks as ours.
func TestTransMILOfficial(t *testing.T) {
	dirOfficial := os.Getenv("HER2WSI_TRANSMIL_OFFICIAL")
	if dirOfficial == "" {
		t.Skip("HER2WSI_TRANSMIL_OFFICIAL not set (a folder with the official TransMIL and nystrom_attention code)")
	}
	be := testBackend(t)
	for _, variant := range []string{VariantTransMIL, VariantNystromformer} {
		t.Run(variant, func(t *testing.T) {
			cd := DefaultConfig() // dropout left out: the official 0.1
			cd.Variant, cd.InDim, cd.Classes = variant, 1024, 2
			c := cd
			c.Dropout = Rate(0)
			rt := testRuntime(t, be, c)
			p := InitParams(c, 7)
			dir := t.TempDir()
			w := filepath.Join(dir, "w.safetensors")
			if err := SaveWeights(w, c, p, nil); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			e := &Example{ID: "official", N: 300, HE: make([]float32, 300*c.InDim), Label: 1}
			for i := range e.HE {
				e.HE[i] = float32(rng.NormFloat64())
			}
			// Keep masks at the official rate for the train-mode step.
			side := squareSide(e.N)
			keeps := make([][]float32, 2)
			for i := range keeps {
				keeps[i] = make([]float32, (1+side*side)*c.nysDim())
				for j := range keeps[i] {
					if rng.Float64() >= TransMILDropout {
						keeps[i][j] = 1
					}
				}
			}
			shape := []int{1 + side*side, c.nysDim()}
			in := filepath.Join(dir, "in.safetensors")
			f := &safetensors.File{Tensors: map[string]safetensors.Tensor{
				"he":          safetensors.FromFloat32([]int{e.N, c.InDim}, e.HE),
				"label":       safetensors.FromInt64([]int{1}, []int64{int64(e.Label)}),
				"keep.layer1": safetensors.FromFloat32(shape, keeps[0]),
				"keep.layer2": safetensors.FromFloat32(shape, keeps[1]),
			}}
			if err := safetensors.Write(in, f); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "official.safetensors")
			b, err := exec.Command("/usr/bin/python3", "../scripts/transmil_official.py", "check", "--official", dirOfficial,
				"--variant", variant, "--weights", w, "--inputs", in, "--out", out).CombinedOutput()
			if err != nil {
				t.Fatalf("official code: %v\n%s", err, b)
			}
			t.Logf("official: %s", b)
			g, err := safetensors.Read(out)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]float32{}
			for name, tt := range g.Tensors {
				if want[name], err = tt.Float32(); err != nil {
					t.Fatal(err)
				}
			}
			// The official code returns no attention: compare it with itself.
			pr, err := rt.Predict(p, e)
			if err != nil {
				t.Fatal(err)
			}
			want["attn"] = pr.Attention
			compareOutputs(t, "official", rt, p, e, want, "")
			compareDropped(t, "official", rt, cd, p, e, keeps, want, "")
		})
	}
}
