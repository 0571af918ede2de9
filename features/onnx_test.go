package features

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
)

const encDir = "testdata/encoders"

func openT(t *testing.T, name string, opt Options) *ONNXEncoder {
	t.Helper()
	e, err := OpenONNX(filepath.Join(encDir, name), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestOpenTestEncoders(t *testing.T) {
	for _, c := range []struct {
		file, name, contract string
	}{
		{"tiny-clip.onnx", "tiny-clip", ContractCLIP},
		{"tiny-raw.onnx", "tiny-raw", ContractRaw},
		{"noname-clip.onnx", "noname-clip", ContractCLIP}, // no manifest: inferred
	} {
		e := openT(t, c.file, Options{})
		sum, _ := FileSHA256(filepath.Join(encDir, c.file))
		if e.Name() != c.name || e.Dim() != 8 || e.PatchSize() != 256 || e.Manifest().Contract != c.contract || e.Checksum() != sum || e.Device() != "cpu" {
			t.Errorf("%s: name %s dim %d patch %d contract %s device %s", c.file, e.Name(), e.Dim(), e.PatchSize(), e.Manifest().Contract, e.Device())
		}
	}
	if m := openT(t, "noname-clip.onnx", Options{}).Manifest(); m.Mean != CLIPMean || m.Std != CLIPStd || m.InputSize != 224 {
		t.Errorf("inferred manifest %+v", m)
	}
}

func TestOpenBadModels(t *testing.T) {
	dir := t.TempDir()
	notONNX := filepath.Join(dir, "text.onnx")
	os.WriteFile(notONNX, []byte("not a model"), 0o644)
	// A manifest whose checksum does not match its model.
	b, _ := os.ReadFile(filepath.Join(encDir, "tiny-clip.onnx"))
	changed := filepath.Join(dir, "changed.onnx")
	os.WriteFile(changed, b, 0o644)
	var m Manifest
	mb, _ := os.ReadFile(filepath.Join(encDir, "tiny-clip.json"))
	json.Unmarshal(mb, &m)
	m.SHA256 = strings.Repeat("0", 64)
	mb, _ = json.Marshal(m)
	os.WriteFile(ManifestPath(changed), mb, 0o644)
	// A manifest naming the wrong input.
	wrong := filepath.Join(dir, "wrong.onnx")
	os.WriteFile(wrong, b, 0o644)
	m.SHA256, m.Input = "", "images"
	mb, _ = json.Marshal(m)
	os.WriteFile(ManifestPath(wrong), mb, 0o644)

	for _, c := range []struct{ path, want string }{
		{filepath.Join(encDir, "bad-shape.onnx"), "[N,3,S,S]"},
		{filepath.Join(encDir, "bad-io.onnx"), "2 inputs"},
		{notONNX, "not a loadable ONNX model"},
		{changed, "does not match its manifest"},
		{wrong, `manifest says "images"`},
		{filepath.Join(dir, "missing.onnx"), "no such file"},
	} {
		e, err := OpenONNX(c.path, Options{})
		if err == nil {
			e.Close()
			t.Errorf("%s: opened", c.path)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.path)) {
			t.Errorf("%s: error %q should name the file and say %q", filepath.Base(c.path), err, c.want)
		}
	}
}

// patchWith makes a 256×256 patch: left and right halves of two colours.
func patchWith(l, r [3]uint8) *raster.RGB {
	p := raster.New(256, 256)
	for y := 0; y < 256; y++ {
		for x := 0; x < 256; x++ {
			c := l
			if x >= 128 {
				c = r
			}
			p.Set(x, y, c[0], c[1], c[2])
		}
	}
	return p
}

// tinyHead computes the tiny test encoders' formulas (see their manifest)
// on a normalised [3,224,224] input.
func tinyHead(x []float32) [8]float64 {
	const s = 224
	var f [8]float64
	for c := 0; c < 3; c++ {
		var sum, sq float64
		for _, v := range x[c*s*s : (c+1)*s*s] {
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		f[c], f[3+c] = sum/(s*s), sq/(s*s)
	}
	var l, r, tp, bt float64
	for y := 0; y < s; y++ {
		for xx := 0; xx < s; xx++ {
			v0, v1 := float64(x[y*s+xx]), float64(x[s*s+y*s+xx])
			if xx < s/2 {
				l += v0
			} else {
				r += v0
			}
			if y < s/2 {
				tp += v1
			} else {
				bt += v1
			}
		}
	}
	half := float64(s * s / 2)
	f[6], f[7] = l/half-r/half, tp/half-bt/half
	return f
}

// The CLIP-contract model gets exactly the Go preprocessing, so its output
// equals the documented formulas on that input; the raw-contract model does
// the resize in the graph (float, no uint8 rounding) and agrees closely.
func TestEmbeddingsFollowTheModel(t *testing.T) {
	clip := openT(t, "tiny-clip.onnx", Options{})
	raw := openT(t, "tiny-raw.onnx", Options{})
	rng := rand.New(rand.NewPCG(1, 1))
	var patches []*raster.RGB
	for i := 0; i < 37; i++ { // more than one batch, a short last one
		var a, b [3]uint8
		for c := range a {
			a[c], b[c] = uint8(rng.IntN(256)), uint8(rng.IntN(256))
		}
		patches = append(patches, patchWith(a, b))
	}
	fc, err := Embed(clip, patches, 16)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := Embed(raw, patches, 16)
	if err != nil {
		t.Fatal(err)
	}
	pre := NewPreprocessor(256, 224, CLIPMean, CLIPStd)
	x := make([]float32, 3*224*224)
	for i, p := range patches {
		if err := pre.Into(p, x); err != nil {
			t.Fatal(err)
		}
		want := tinyHead(x)
		for k := 0; k < 8; k++ {
			if d := math.Abs(float64(fc[i*8+k]) - want[k]); d > 1e-4*(1+math.Abs(want[k])) {
				t.Fatalf("patch %d feature %d: clip model %g, formula %g", i, k, fc[i*8+k], want[k])
			}
			if d := math.Abs(float64(fr[i*8+k] - fc[i*8+k])); d > 0.02 {
				t.Fatalf("patch %d feature %d: raw model %g vs clip model %g", i, k, fr[i*8+k], fc[i*8+k])
			}
		}
		// Left/right colours differ, so the orientation feature is the
		// difference of the halves' normalised red channel.
		wantLR := (float64(patches[i].Pix[0])/255-float64(CLIPMean[0]))/float64(CLIPStd[0]) -
			(float64(patches[i].Pix[3*255])/255-float64(CLIPMean[0]))/float64(CLIPStd[0])
		if math.Abs(float64(fc[i*8+6])-wantLR) > 0.05 {
			t.Errorf("patch %d: left-right feature %g, want ≈ %g", i, fc[i*8+6], wantLR)
		}
	}
}

func TestBatchMisuse(t *testing.T) {
	clip := openT(t, "tiny-clip.onnx", Options{})
	raw := openT(t, "tiny-raw.onnx", Options{})
	b, err := clip.NewBatch(4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := raw.Run(b); err == nil {
		t.Error("ran another encoder's batch")
	}
	b.N = 0
	if _, err := clip.Run(b); err == nil {
		t.Error("ran an empty batch")
	}
	if err := clip.NewPreparer().Prepare(raster.New(128, 128), b, 0); err == nil || !strings.Contains(err.Error(), "256 px") {
		t.Errorf("wrong patch size: %v", err)
	}
	if err := clip.NewPreparer().Prepare(raster.New(256, 256), b, 4); err == nil {
		t.Error("slot out of range accepted")
	}
}

// Without a CUDA-enabled ONNX Runtime, --device cuda fails naming the
// missing provider library and how to get it; auto falls back to the CPU.
func TestCUDAProviderMissing(t *testing.T) {
	lib, _ := RuntimeInfo()
	if lib == "" {
		openT(t, "tiny-clip.onnx", Options{})
		lib, _ = RuntimeInfo()
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(lib), CUDAProviderFile)); err == nil {
		t.Skip("a CUDA provider is installed beside the runtime")
	}
	for _, dev := range []string{"cuda", "cuda:1"} {
		_, err := OpenONNX(filepath.Join(encDir, "tiny-clip.onnx"), Options{Device: dev})
		if err == nil || !strings.Contains(err.Error(), CUDAProviderFile) || !strings.Contains(err.Error(), "fetch-onnxruntime.sh gpu") {
			t.Errorf("device %s: %v", dev, err)
		}
	}
	e := openT(t, "tiny-clip.onnx", Options{Device: "auto"})
	if e.Device() != "cpu" {
		t.Errorf("auto fell back to %s", e.Device())
	}
	for _, bad := range []string{"gpu", "cuda:x", "cuda:-1"} {
		if _, _, err := ParseDevice(bad); err == nil {
			t.Errorf("device %q accepted", bad)
		}
	}
}

func TestOpenByName(t *testing.T) {
	t.Setenv(ModelsEnv, encDir)
	e, err := Open("tiny-raw", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Name() != "tiny-raw" {
		t.Errorf("name %s", e.Name())
	}
	if _, err := Open("nonesuch", Options{}); err == nil || !strings.Contains(err.Error(), "unknown encoder") {
		t.Errorf("unknown name: %v", err)
	}
}
