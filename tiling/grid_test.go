package tiling

import (
	"errors"
	"math"
	"testing"

	"github.com/her2wsi/her2wsi/internal/raster"
)

func pyramid(w, h int64, ds ...float64) []LevelInfo {
	var ls []LevelInfo
	for _, d := range ds {
		ls = append(ls, LevelInfo{Width: int64(float64(w) / d), Height: int64(float64(h) / d), Downsample: d})
	}
	return ls
}

func TestPlanRead(t *testing.T) {
	g := DefaultGridConfig()
	cases := []struct {
		name     string
		levels   []LevelInfo
		mpp      float64
		cfg      func(*GridConfig)
		level    int
		read     int
		step0    int
		resample bool
		err      error
	}{
		{"20x one level", pyramid(2220, 2967, 1), 0.499, nil, 0, 256, 256, false, nil},
		{"40x no 20x level reads 512 and halves", pyramid(40000, 30000, 1, 4, 16), 0.25, nil, 0, 512, 512, true, nil},
		{"40x Aperio 0.2527 snaps to 2x", pyramid(40000, 30000, 1, 4, 16), 0.2527, nil, 0, 512, 512, true, nil},
		{"40x with a 20x level reads it", pyramid(40000, 30000, 1, 2, 4), 0.25, nil, 1, 256, 512, false, nil},
		// NDPI at 0.228 µm/px: level 1 (0.456) is the coarsest still finer
		// than 0.5; 280 px there resample to 256.
		{"NDPI reads level 1 and resamples", pyramid(3968, 4864, 1, 2, 4), 0.2281750559, nil, 1, 280, 560, true, nil},
		{"NDPI level 0 only resamples 561", pyramid(3968, 4864, 1), 0.2281750559, nil, 0, 561, 561, true, nil},
		{"slightly coarse 0.52 counts as 20x", pyramid(1000, 1000, 1), 0.52, nil, 0, 256, 256, false, nil},
		{"0.52 with no tolerance is too coarse", pyramid(1000, 1000, 1), 0.52, func(c *GridConfig) { c.MPPTolerance = 0 }, 0, 0, 0, false, ErrTooCoarse},
		{"10x is too coarse", pyramid(1000, 1000, 1, 4), 1.0, nil, 0, 0, 0, false, ErrTooCoarse},
		{"10x target 1.0 µm", pyramid(1000, 1000, 1, 4), 1.0, func(c *GridConfig) { c.TargetMPP = 1.0 }, 0, 256, 256, false, nil},
		{"patch 224 at 40x", pyramid(8000, 8000, 1, 4), 0.25, func(c *GridConfig) { c.PatchSize = 224 }, 0, 448, 448, true, nil},
		{"80x reads 4x and box-averages", pyramid(8000, 8000, 1, 4, 16), 0.125, nil, 1, 256, 1024, false, nil},
		{"80x without a 4x level", pyramid(8000, 8000, 1, 8), 0.125, nil, 0, 1024, 1024, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := g
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			p, err := PlanRead(c.levels, c.mpp, cfg)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err = %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Level != c.level || p.ReadSize != c.read || p.PatchSizeLevel0 != c.step0 || p.Resample != c.resample {
				t.Errorf("plan %+v, want level %d read %d step0 %d resample %v", p, c.level, c.read, c.step0, c.resample)
			}
		})
	}
}

func TestGridKeepsCellsByTissueFraction(t *testing.T) {
	// A 10×6 mask over a 1000×600 level-0 slide: 100 px per mask pixel, so a
	// 200-px patch is 2×2 mask pixels.
	tissue := make([]uint8, 60)
	set := func(x, y int) { tissue[y*10+x] = 1 }
	for y := 0; y < 2; y++ {
		for x := 0; x < 2; x++ {
			set(x, y) // cell (0,0): full
		}
	}
	set(4, 0) // cell (0,2): 1 of 4 = 25 %
	set(9, 5) // cell (2,4): 25 %
	m, err := NewMask(10, 6, 8, tissue)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		min  float64
		want [][2]int32
	}{
		{0.10, [][2]int32{{0, 0}, {0, 2}, {2, 4}}},
		{0.25, [][2]int32{{0, 0}, {0, 2}, {2, 4}}},
		{0.26, [][2]int32{{0, 0}}},
		{1.0, [][2]int32{{0, 0}}},
	} {
		ps := Grid(1000, 600, 200, m, c.min)
		if len(ps) != len(c.want) {
			t.Fatalf("min %g: %d patches %+v, want %v", c.min, len(ps), ps, c.want)
		}
		for i, p := range ps {
			if p.Row != c.want[i][0] || p.Col != c.want[i][1] || p.X != int64(p.Col)*200 || p.Y != int64(p.Row)*200 {
				t.Errorf("min %g: patch %d = %+v, want row/col %v", c.min, i, p, c.want[i])
			}
		}
	}
	// Only full patches: a 1000×600 slide has 5×3 cells of 200 px, a
	// 1099×699 one still 5×3.
	full, _ := NewMask(10, 6, 8, onesN(60))
	if n := len(Grid(1099, 699, 200, full, 0.1)); n != 15 {
		t.Errorf("%d cells on 1099×699, want 15", n)
	}
	if n := len(Grid(150, 150, 200, full, 0.1)); n != 0 {
		t.Errorf("slide smaller than a patch gave %d cells", n)
	}
}

func onesN(n int) []uint8 {
	b := make([]uint8, n)
	for i := range b {
		b[i] = 1
	}
	return b
}

func TestMaskSize(t *testing.T) {
	g := DefaultGridConfig()
	for _, c := range []struct {
		w0, h0     int64
		mpp        float64
		w, h       int
		maskMPPMax float64
	}{
		{40000, 30000, 0.25, 2500, 1875, 4.0001},
		{2220, 2967, 0.499, 277, 370, 4.01},
		{200000, 100000, 0.25, 4096, 2048, 12.3}, // capped at MaxMaskSide
		{100, 100, 8, 100, 100, 8},               // never larger than level 0
	} {
		w, h, m := MaskSize(c.w0, c.h0, c.mpp, g)
		if w != c.w || h != c.h || m > c.maskMPPMax {
			t.Errorf("MaskSize(%d,%d,%g) = %d,%d,%g; want %d,%d,≤%g", c.w0, c.h0, c.mpp, w, h, m, c.w, c.h, c.maskMPPMax)
		}
	}
}

// fakeSlide serves pixels whose value encodes their level-0 position, so the
// patch reader's level/offset/scale arithmetic can be checked exactly.
type fakeSlide struct {
	ds    []float64
	calls []string
}

func (f *fakeSlide) ReadRegionInto(level, x, y int, dst *raster.RGB) error {
	f.fill(level, x, y, 1, dst)
	return nil
}

func (f *fakeSlide) ReadRegionBoxInto(level, x, y, factor int, dst *raster.RGB) error {
	f.fill(level, x, y, factor, dst)
	return nil
}

// fill writes, for each dst pixel, the level-0 x and y (mod 256) of the
// centre of the level region it averages.
func (f *fakeSlide) fill(level, x, y, factor int, dst *raster.RGB) {
	ds := f.ds[level]
	for j := 0; j < dst.H; j++ {
		for i := 0; i < dst.W; i++ {
			lx := float64(x) + (float64(i)+0.5)*float64(factor)
			ly := float64(y) + (float64(j)+0.5)*float64(factor)
			dst.Set(i, j, uint8(int(lx*ds)/16), uint8(int(ly*ds)/16), uint8(level))
		}
	}
}

func TestPatchReader(t *testing.T) {
	for _, c := range []struct {
		name   string
		levels []LevelInfo
		mpp    float64
	}{
		{"20x", pyramid(4096, 4096, 1), 0.5},
		{"40x halve", pyramid(8192, 8192, 1, 4), 0.25},
		{"40x via 20x level", pyramid(8192, 8192, 1, 2), 0.25},
		{"NDPI resample", pyramid(8192, 8192, 1, 2), 0.2281750559},
	} {
		t.Run(c.name, func(t *testing.T) {
			plan, err := PlanRead(c.levels, c.mpp, DefaultGridConfig())
			if err != nil {
				t.Fatal(err)
			}
			ds := make([]float64, len(c.levels))
			for i, l := range c.levels {
				ds[i] = l.Downsample
			}
			pr := NewPatchReader(&fakeSlide{ds: ds}, plan)
			dst := raster.New(256, 256)
			x0, y0 := int64(3*plan.PatchSizeLevel0), int64(2*plan.PatchSizeLevel0)
			if err := pr.Read(x0, y0, dst); err != nil {
				t.Fatal(err)
			}
			// Output pixel (i, j) must show level-0 position ≈ x0 + (i+0.5)·step/256.
			scale := float64(plan.PatchSizeLevel0) / 256
			for _, ij := range [][2]int{{0, 0}, {100, 37}, {255, 255}} {
				r, g, b := dst.At(ij[0], ij[1])
				wantX := (float64(x0) + (float64(ij[0])+0.5)*scale) / 16
				wantY := (float64(y0) + (float64(ij[1])+0.5)*scale) / 16
				if math.Abs(float64(r)-math.Mod(wantX, 256)) > 1.5 || math.Abs(float64(g)-math.Mod(wantY, 256)) > 1.5 || int(b) != plan.Level {
					t.Errorf("pixel %v = %d,%d,%d; want ≈%.1f,%.1f level %d", ij, r, g, b, math.Mod(wantX, 256), math.Mod(wantY, 256), plan.Level)
				}
			}
		})
	}
}

func FuzzPlanRead(f *testing.F) {
	f.Add(40000.0, 30000.0, 0.25, 4.0, 16.0, 0.5, 256)
	f.Add(3968.0, 4864.0, 0.228, 2.0, 4.0, 0.5, 256)
	f.Add(1000.0, 1000.0, 1.0, 2.0, 8.0, 0.5, 224)
	f.Fuzz(func(t *testing.T, w, h, mpp, d1, d2, target float64, patch int) {
		if !(w >= 1 && w < 1e7 && h >= 1 && h < 1e7 && d1 >= 1 && d1 < 1e4 && d2 >= d1 && d2 < 1e5) {
			return
		}
		cfg := DefaultGridConfig()
		cfg.TargetMPP, cfg.PatchSize = target, patch
		levels := []LevelInfo{{int64(w), int64(h), 1}, {int64(w / d1), int64(h / d1), d1}, {int64(w / d2), int64(h / d2), d2}}
		p, err := PlanRead(levels, mpp, cfg)
		if err != nil {
			return
		}
		lmpp := mpp * levels[p.Level].Downsample
		if lmpp > target*(1+cfg.MPPTolerance)*(1+1e-9) {
			t.Fatalf("level %d at %g µm/px is coarser than target %g", p.Level, lmpp, target)
		}
		if p.ReadSize < patch || p.PatchSizeLevel0 < p.ReadSize {
			t.Fatalf("plan %+v: read below patch size or level-0 step below read", p)
		}
		// The read covers the target field of view within tolerance.
		fov := float64(p.ReadSize) * lmpp
		want := float64(patch) * target
		if math.Abs(fov/want-1) > cfg.MPPTolerance+1/float64(patch)+1e-9 {
			t.Fatalf("plan %+v: field of view %g µm, want %g", p, fov, want)
		}
	})
}
