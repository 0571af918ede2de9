package features

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
)

var updatePreprocess = flag.Bool("update-preprocess", false,
	"regenerate features/testdata/preprocess_* with scripts/pil_golden.py (needs Debian's python3-pil and python3-numpy)")

// pilPython is Debian's interpreter, which python3-pil installs into (the
// python3 first on PATH may be another one).
const pilPython = "/usr/bin/python3"

type pilCase struct {
	Input, Output string
	W, H          int
}

type pilManifest struct {
	Pillow string
	Mean   [3]float32
	Std    [3]float32
	Cases  []pilCase
}

var (
	goldenOnce sync.Once
	goldenErr  error
	goldenSkip string
)

// pilGoldens returns the golden cases, first regenerating them with Pillow
// when -update-preprocess is given.
func pilGoldens(t testing.TB) pilManifest {
	t.Helper()
	goldenOnce.Do(func() {
		if !*updatePreprocess {
			return
		}
		if err := exec.Command(pilPython, "-c", "import PIL, numpy").Run(); err != nil {
			goldenSkip = fmt.Sprintf("-update-preprocess needs %s with PIL and numpy (apt-get install python3-pil python3-numpy): %v", pilPython, err)
			return
		}
		out, err := exec.Command(pilPython, filepath.Join("..", "scripts", "pil_golden.py"), "testdata").CombinedOutput()
		if err != nil {
			goldenErr = fmt.Errorf("pil_golden.py: %v\n%s", err, out)
		}
	})
	if goldenSkip != "" {
		t.Skip(goldenSkip)
	}
	if goldenErr != nil {
		t.Fatal(goldenErr)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "preprocess_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m pilManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Cases) == 0 {
		t.Fatal("no cases in preprocess_cases.json")
	}
	return m
}

func loadPNG(t testing.TB, name string) *raster.RGB {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return raster.FromImage(img)
}

// TestPILBicubicMatchesPillow: every golden case comes out byte for byte as
// Pillow's Image.resize(..., Image.BICUBIC) made it, also when the resampler
// is reused.
func TestPILBicubicMatchesPillow(t *testing.T) {
	m := pilGoldens(t)
	t.Logf("goldens from Pillow %s", m.Pillow)
	for _, c := range m.Cases {
		t.Run(c.Output, func(t *testing.T) {
			src, want := loadPNG(t, c.Input), loadPNG(t, c.Output)
			if want.W != c.W || want.H != c.H {
				t.Fatalf("golden is %dx%d, manifest says %dx%d", want.W, want.H, c.W, c.H)
			}
			r := NewPILBicubic(src.W, src.H, c.W, c.H)
			for pass := range 2 {
				got := raster.New(c.W, c.H)
				if err := r.Resize(src, got); err != nil {
					t.Fatal(err)
				}
				if n, first := diffBytes(got.Pix, want.Pix); n != 0 {
					i := first / 3
					t.Fatalf("pass %d, %dx%d → %dx%d: %d of %d bytes differ from Pillow; first at (%d,%d) channel %d: %d, Pillow %d",
						pass, src.W, src.H, c.W, c.H, n, len(want.Pix), i%c.W, i/c.W, first%3, got.Pix[first], want.Pix[first])
				}
			}
		})
	}
}

func diffBytes(a, b []uint8) (n, first int) {
	first = -1
	for i := range a {
		if a[i] != b[i] {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	return n, first
}

// TestPreprocessorMatchesPillowThenNormalise: the fused path gives exactly
// Pillow's resize followed by the normalisation, for each square case.
func TestPreprocessorMatchesPillowThenNormalise(t *testing.T) {
	m := pilGoldens(t)
	n := 0
	for _, c := range m.Cases {
		src := loadPNG(t, c.Input)
		if src.W != src.H || c.W != c.H {
			continue
		}
		n++
		want := loadPNG(t, c.Output)
		wantF := make([]float32, 3*c.W*c.H)
		if err := NormalizeCHW(want, CLIPMean, CLIPStd, wantF); err != nil {
			t.Fatal(err)
		}
		p := NewPreprocessor(src.W, c.W, CLIPMean, CLIPStd)
		// Write into the middle slot of a batch to check the slot bounds.
		batch := make([]float32, 3*p.SlotLen())
		for i := range batch {
			batch[i] = -99
		}
		if err := p.Into(src, batch[p.SlotLen():2*p.SlotLen()]); err != nil {
			t.Fatal(err)
		}
		for i, v := range batch {
			slot, j := i/p.SlotLen(), i%p.SlotLen()
			if slot != 1 {
				if v != -99 {
					t.Fatalf("%s: wrote outside its slot at %d", c.Output, i)
				}
				continue
			}
			if v != wantF[j] {
				t.Fatalf("%s: value %d (channel %d) is %v, want %v", c.Output, j, j/(c.W*c.H), v, wantF[j])
			}
		}
	}
	if n < 3 {
		t.Fatalf("only %d square cases", n)
	}
}

// TestNormalizeMatchesFloatReference: (v/255 − mean)/std in float64, to 1e-6,
// in C×H×W order.
func TestNormalizeMatchesFloatReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	img := raster.New(37, 19)
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	copy(img.Pix, []uint8{0, 0, 0, 255, 255, 255})
	dst := make([]float32, 3*img.W*img.H)
	if err := NormalizeCHW(img, CLIPMean, CLIPStd, dst); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for y := range img.H {
		for x := range img.W {
			for c := range 3 {
				v := float64(img.Pix[3*(y*img.W+x)+c])
				want := (v/255 - float64(CLIPMean[c])) / float64(CLIPStd[c])
				got := float64(dst[(c*img.H+y)*img.W+x])
				worst = max(worst, math.Abs(got-want))
			}
		}
	}
	if worst > 1e-6 {
		t.Fatalf("max |error| %g > 1e-6", worst)
	}
	t.Logf("max |error| vs float64 reference: %.3g", worst)
}

// TestNormalizerMatchesHuggingFace: the tables equal, bit for bit, what
// transformers' rescale (float64 · 1/255 → float32) and normalize (float32)
// give, as computed by numpy in scripts/pil_golden.py.
func TestNormalizerMatchesHuggingFace(t *testing.T) {
	m := pilGoldens(t)
	if m.Mean != CLIPMean || m.Std != CLIPStd {
		t.Fatalf("goldens use mean %v std %v, CLIP is %v %v", m.Mean, m.Std, CLIPMean, CLIPStd)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "preprocess_hf_norm.f32"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3*256*4 {
		t.Fatalf("preprocess_hf_norm.f32 has %d bytes", len(b))
	}
	n, err := NewNormalizer(CLIPMean, CLIPStd)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 3 {
		for v := range 256 {
			want := math.Float32frombits(binary.LittleEndian.Uint32(b[4*(c*256+v):]))
			if got := n.Value(c, uint8(v)); got != want {
				t.Fatalf("channel %d value %d: %v (%#x), numpy %v (%#x)", c, v, got, math.Float32bits(got), want, math.Float32bits(want))
			}
		}
	}
}

func TestNormalizeErrors(t *testing.T) {
	img := raster.New(4, 3)
	if err := NormalizeCHW(img, CLIPMean, CLIPStd, make([]float32, 35)); err == nil {
		t.Error("short dst accepted")
	}
	if err := NormalizeCHW(&raster.RGB{W: 4, H: 3}, CLIPMean, CLIPStd, make([]float32, 36)); err == nil {
		t.Error("image without pixels accepted")
	}
	for _, std := range [][3]float32{{0, 1, 1}, {1, -1, 1}, {1, 1, float32(math.NaN())}, {1, float32(math.Inf(1)), 1}} {
		if _, err := NewNormalizer(CLIPMean, std); err == nil {
			t.Errorf("std %v accepted", std)
		}
	}
	if err := NormalizeCHW(img, CLIPMean, CLIPStd, make([]float32, 36)); err != nil {
		t.Error(err)
	}
}

// TestPILBicubicWeightsRows: rows sum to 1 and cover Pillow's window; equal
// sizes give the identity.
func TestPILBicubicWeightsRows(t *testing.T) {
	for _, s := range [][2]int{{256, 224}, {300, 224}, {200, 224}, {512, 256}, {100, 224}, {37, 5}, {23, 61}, {3, 7}, {2, 1}, {1, 3}, {256, 256}} {
		w := PILBicubicWeights(s[0], s[1])
		if len(w) != s[1] {
			t.Fatalf("%d→%d: %d rows", s[0], s[1], len(w))
		}
		for o, row := range w {
			if len(row) != s[0] {
				t.Fatalf("%d→%d: row %d has %d columns", s[0], s[1], o, len(row))
			}
			sum := 0.0
			for _, v := range row {
				sum += v
			}
			if math.Abs(sum-1) > 1e-12 {
				t.Fatalf("%d→%d: row %d sums to %v", s[0], s[1], o, sum)
			}
			if s[0] == s[1] && row[o] != 1 {
				t.Fatalf("%d→%d: not the identity at row %d", s[0], s[1], o)
			}
		}
	}
}

// floatResize applies Wy·X·Wxᵀ per channel. With pixel set, each pass is
// rounded and clipped to [0, 255] as Pillow's uint8 images are; without,
// only the end result is.
func floatResize(src *raster.RGB, w, h int, pixel bool) *raster.RGB {
	wx, wy := PILBicubicWeights(src.W, w), PILBicubicWeights(src.H, h)
	// Skip the zeros outside each row's window (the result is the same).
	first := func(m [][]float64) []int {
		f := make([]int, len(m))
		for o, row := range m {
			for f[o] < len(row)-1 && row[f[o]] == 0 {
				f[o]++
			}
			last := len(row)
			for last > f[o]+1 && row[last-1] == 0 {
				last--
			}
			m[o] = row[:last]
		}
		return f
	}
	fx, fy := first(wx), first(wy)
	q := func(v float64) float64 { return math.Max(0, math.Min(255, math.Round(v))) }
	tmp := make([]float64, 3*w*src.H)
	for y := range src.H {
		for x := range w {
			for c := range 3 {
				s := 0.0
				for i := fx[x]; i < len(wx[x]); i++ {
					s += wx[x][i] * float64(src.Pix[3*(y*src.W+i)+c])
				}
				if pixel {
					s = q(s)
				}
				tmp[3*(y*w+x)+c] = s
			}
		}
	}
	out := raster.New(w, h)
	for y := range h {
		for x := range w {
			for c := range 3 {
				s := 0.0
				for i := fy[y]; i < len(wy[y]); i++ {
					s += wy[y][i] * tmp[3*(i*w+x)+c]
				}
				out.Pix[3*(y*w+x)+c] = uint8(q(s))
			}
		}
	}
	return out
}

// TestPILBicubicWeightsMatchPillow: the float matrices, applied as two
// matrix products with each pass rounded and clipped to 8 bits (what an
// ONNX graph must do to follow Pillow), land within ±1 of Pillow's 8-bit
// result. Without the intermediate clip, overshoot at hard 0/255 edges is
// kept and a few pixels differ more; that is logged, not asserted.
func TestPILBicubicWeightsMatchPillow(t *testing.T) {
	m := pilGoldens(t)
	for _, c := range m.Cases {
		src, want := loadPNG(t, c.Input), loadPNG(t, c.Output)
		for _, pixel := range []bool{true, false} {
			got := floatResize(src, c.W, c.H, pixel)
			worst, off := 0, 0
			for i := range got.Pix {
				d := int(got.Pix[i]) - int(want.Pix[i])
				d = max(d, -d)
				worst = max(worst, d)
				if d != 0 {
					off++
				}
			}
			if pixel && worst > 1 {
				t.Errorf("%s: float matrices with 8-bit passes differ from Pillow by up to %d", c.Output, worst)
			}
			t.Logf("%s, passes rounded to 8 bits %v: %d of %d bytes differ from Pillow, max %d", c.Output, pixel, off, len(got.Pix), worst)
		}
	}
}

func TestResamplerErrors(t *testing.T) {
	r := NewPILBicubic(8, 6, 4, 3)
	if err := r.Resize(raster.New(8, 6), raster.New(4, 3)); err != nil {
		t.Fatal(err)
	}
	if err := r.Resize(raster.New(6, 8), raster.New(4, 3)); err == nil {
		t.Error("wrong source size accepted")
	}
	if err := r.Resize(raster.New(8, 6), raster.New(3, 4)); err == nil {
		t.Error("wrong destination size accepted")
	}
	if err := r.Resize(&raster.RGB{W: 8, H: 6, Pix: make([]uint8, 10)}, raster.New(4, 3)); err == nil {
		t.Error("short source accepted")
	}
	p := NewPreprocessor(8, 4, CLIPMean, CLIPStd)
	if err := p.Into(raster.New(8, 8), make([]float32, 47)); err == nil {
		t.Error("short slot accepted")
	}
	if err := p.Into(raster.New(8, 7), make([]float32, 48)); err == nil {
		t.Error("wrong patch size accepted")
	}
	for _, f := range []func(){
		func() { NewPILBicubic(0, 1, 1, 1) },
		func() { NewPreprocessor(256, 0, CLIPMean, CLIPStd) },
		func() { NewPreprocessor(256, 224, CLIPMean, [3]float32{}) },
		func() { PILBicubicWeights(5, -1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("invalid arguments did not panic")
				}
			}()
			f()
		}()
	}
}

// TestPreprocessIdentity: patch == size skips the resize, as Pillow does.
func TestPreprocessIdentity(t *testing.T) {
	img := raster.New(5, 5)
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	p := NewPreprocessor(5, 5, CLIPMean, CLIPStd)
	got, want := make([]float32, 75), make([]float32, 75)
	if err := p.Into(img, got); err != nil {
		t.Fatal(err)
	}
	if err := NormalizeCHW(img, CLIPMean, CLIPStd, want); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("value %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func testPatch(n int) *raster.RGB {
	rng := rand.New(rand.NewPCG(3, 4))
	img := raster.New(n, n)
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	return img
}

func TestPreprocessNoAllocs(t *testing.T) {
	src := testPatch(256)
	p := NewPreprocessor(256, 224, CLIPMean, CLIPStd)
	dst := make([]float32, p.SlotLen())
	r := NewPILBicubic(256, 256, 224, 224)
	out := raster.New(224, 224)
	if n := testing.AllocsPerRun(10, func() {
		if err := p.Into(src, dst); err != nil {
			t.Fatal(err)
		}
		if err := r.Resize(src, out); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per patch", n)
	}
}

// BenchmarkPreprocess256to224: the embed stage's per-patch work. "noise" is
// uniform noise (the worst case: many sums need clipping, which leaves the
// fast path); "pattern" is the golden test image.
func BenchmarkPreprocess256to224(b *testing.B) {
	for _, c := range []struct {
		name string
		src  func() *raster.RGB
	}{
		{"noise", func() *raster.RGB { return testPatch(256) }},
		{"pattern", func() *raster.RGB { return loadPNG(b, "preprocess_main_in.png") }},
	} {
		b.Run(c.name, func(b *testing.B) {
			src := c.src()
			p := NewPreprocessor(256, 224, CLIPMean, CLIPStd)
			dst := make([]float32, p.SlotLen())
			b.ReportAllocs()
			b.SetBytes(int64(len(src.Pix)))
			for b.Loop() {
				if err := p.Into(src, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPILBicubic256to224: the resize alone, uint8 out.
func BenchmarkPILBicubic256to224(b *testing.B) {
	src := testPatch(256)
	r := NewPILBicubic(256, 256, 224, 224)
	dst := raster.New(224, 224)
	b.ReportAllocs()
	b.SetBytes(int64(len(src.Pix)))
	for b.Loop() {
		if err := r.Resize(src, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLanesMatchScalar: the two-lane kernels give the same bytes as the
// one-value-per-multiply ones (the direct transcription of Pillow's loops)
// over many sizes, on noise and on hard 0/255 patterns that clip.
func TestLanesMatchScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := [][4]int{{256, 256, 224, 224}, {224, 224, 256, 256}, {512, 512, 224, 224}, {257, 255, 224, 224},
		{256, 256, 2, 2}, {3, 3, 2, 2}, {1, 1, 2, 2}, {1, 9, 4, 3}, {9, 1, 4, 3}}
	for range 200 {
		sizes = append(sizes, [4]int{1 + rng.IntN(60), 1 + rng.IntN(60), 2 * (1 + rng.IntN(30)), 1 + rng.IntN(60)})
	}
	for _, sz := range sizes {
		src := raster.New(sz[0], sz[1])
		fast := NewPILBicubic(sz[0], sz[1], sz[2], sz[3])
		slow := newPILBicubic(sz[0], sz[1], sz[2], sz[3], false)
		if fast.needH && fast.needV && !fast.lanes {
			t.Fatalf("%v: no two-lane path", sz)
		}
		a, b := raster.New(sz[2], sz[3]), raster.New(sz[2], sz[3])
		for pattern := range 3 {
			for i := range src.Pix {
				switch pattern {
				case 0:
					src.Pix[i] = uint8(rng.IntN(256))
				case 1:
					src.Pix[i] = uint8(255 * rng.IntN(2))
				default:
					src.Pix[i] = uint8(255 * ((i/3 + i/(3*src.W)) % 2))
				}
			}
			if err := fast.Resize(src, a); err != nil {
				t.Fatal(err)
			}
			if err := slow.Resize(src, b); err != nil {
				t.Fatal(err)
			}
			if n, first := diffBytes(a.Pix, b.Pix); n != 0 {
				t.Fatalf("%dx%d → %dx%d pattern %d: %d bytes differ, first at %d: %d vs %d", sz[0], sz[1], sz[2], sz[3], pattern, n, first, a.Pix[first], b.Pix[first])
			}
		}
	}
}
