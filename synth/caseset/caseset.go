// Package caseset generates a synthetic set of paired H&E/IHC cases in a
// work folder, as the tile, embed and anchors stages would leave it, with
// cases.csv (`pipeline synth --cases N`): for training and checking the
// model, the demo and tests, without private data. See Generate for the
// recipe. It writes through the pipeline's work-folder layout, so unlike
// synth (slides) it imports pipeline; pipeline must not import it.
package caseset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	"golang.org/x/sync/errgroup"

	"github.com/her2wsi/her2wsi/features"
	"github.com/her2wsi/her2wsi/features/featfile"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/pipeline"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/tiling"
)

// Options set what Generate generates. Start from
// DefaultOptions: HESignal, IHCSignal, TestFrac and Seed are taken
// as given (zero is a meaningful value for each), while a zero Dim, Encoder,
// MinPatches, MaxPatches or Folds takes its default.
type Options struct {
	Cases                  int     // number of cases (at least 4)
	Seed                   uint64  // drives everything, the split included
	Dim                    int     // feature dimension (default 512, PLIP's)
	Encoder                string  // features/<Encoder>.h5 (default "synthetic")
	MinPatches, MaxPatches int     // H&E patches per slide, drawn uniformly (default 300..1200)
	HESignal               float64 // strength of the label in the H&E features (default 0.35: weak)
	IHCSignal              float64 // strength of the stain in the IHC features (default 2: strong)
	TestFrac               float64 // fraction of each label held out for test (default 0.3)
	Folds                  int     // cross-validation folds on the training cases (default 5)
	SlideGraph             bool    // also build each slide's SlideGraph+ graph in the anchors stage (the slidegraph variant)
}

// DefaultOptions are the defaults; set Cases.
func DefaultOptions() Options {
	return Options{
		Seed: 2024, Dim: 512, Encoder: "synthetic", MinPatches: 300, MaxPatches: 1200,
		HESignal: 0.35, IHCSignal: 2, TestFrac: 0.3, Folds: 5,
	}
}

// Generator constants (see Generate for the recipe).
const (
	synthVersion    = "synthcases/1" // bump when the recipe changes
	synthStep       = 256            // grid step, level-0 px (20×, 0.5 µm/px)
	synthMPP        = 0.5
	synthMargin     = 8    // empty grid cells around the tissue
	synthMaxShift   = 3    // IHC section offset, grid cells
	synthCommonNorm = 2.0  // shared offset of every embedding
	synthProtoNorm  = 4.0  // tissue-type prototypes
	synthDomainNorm = 2.0  // IHC stain domain offset
	synthSlideSD    = 0.1  // per-slide batch effect, per dimension
	synthJitter     = 0.04 // per-cell jitter of the tissue field (ragged edges)
)

// Tissue types: every slide's patches are one of these. Tumour is placed
// as a disc; the others share the rest of the tissue by smooth random
// fields (stroma dominating).
const (
	synthStroma = iota
	synthTumour
	synthNormal
	synthImmune
	synthAdipose
	synthNumTypes
)

// synthTypeWeight biases the non-tumour type fields (index by type).
var synthTypeWeight = [synthNumTypes]float64{synthStroma: 0.9, synthNormal: 0.2, synthImmune: 0, synthAdipose: 0.1}

// PCG streams: one for the shared directions, one for the labels, and
// three per case (layout, H&E noise, IHC noise).
const (
	synthStreamGlobal = 0x5e7d_0001
	synthStreamLabels = 0x5e7d_0002
	synthStreamCase   = 0x5e7d_1000_0000
)

// Generate writes a synthetic case set into the work folder: for each of
// opt.Cases cases c<NNN> an H&E slide c<NNN>_he and an IHC slide c<NNN>_ihc,
// each with slide.json, coords.h5 and qc.png as the tile stage writes them,
// features/<encoder>.h5 as the embed stage writes them, and anchors.h5 made by
// the anchors stage itself (AnchorSlide, default settings); then
// WORK/cases.csv, split with cases.Split(seed, TestFrac, Folds). It returns
// the path of cases.csv, which is removed first and written last (so it
// exists only for a complete set). Existing files are replaced atomically.
// Same options, same build: byte-identical files (cases are generated
// concurrently, each from its own random streams).
//
// The recipe (grid units are 256-px patches at 20×, level 0 = 0.5 µm/px):
//
// Labels. Case i (0-based) gets label i mod 4; the labels are then shuffled
// (Fisher–Yates on PCG(seed, labels stream)), so the four HER2 levels differ
// in number by at most one.
//
// Shared directions. From PCG(seed, global stream), Gram–Schmidt turns Dim
// Gaussian draws into orthonormal unit vectors: s (the IHC "stain", i.e.
// membrane staining), o, five tissue prototypes (stroma, tumour, normal
// epithelium, immune, adipose), a common offset and an IHC domain offset.
// The H&E label direction is h = (s + o)/√2: it correlates with the stain
// direction (cosine 0.71) without being equal to it, so what the IHC branch
// learns points the H&E branch the right way (the idea of the paper's IHC
// prompts).
//
// Tissue. Each case draws (from its layout stream) n H&E patches uniformly
// in [MinPatches, MaxPatches] and 1–3 tissue blobs: ellipses (aspect
// 0.55–1, random orientation) whose radius is modulated by three random
// angular harmonics, sized to share 1.3·n cells, laid side by side (or one
// above the other) 1–5 cells apart with 8 empty cells around. Each blob gives
// a depth 1 − ρ/β (ρ: elliptic radius, β: the modulation); the tissue field
// is the largest depth plus a per-cell jitter of ±0.04, and the slide's
// patches are the n cells with the highest field, in raster order. Slide dims are the
// canvas in cells × 256 plus 0–255 px; coords.h5's tissue fraction is the
// share of 4×4 sample points per cell inside the tissue level set (at least
// 1/8). The IHC slide is the consecutive section: the same tissue shifted by
// up to ±3 cells in x and y, with its own jitter and n·U(0.92, 1.08) patches.
//
// Tumour. A disc around the centre of a random H&E patch: the tumour holds
// the patches within R_t of it, R_t being the distance of the
// round(τ·n)-th nearest patch, τ ~ U(0.25, 0.5). In the IHC slide the same
// physical disc (shift undone) is tumour. The other patches get stroma,
// normal, immune or adipose by the largest of per-type smooth fields
// (weight 0.9, 0.2, 0, 0.1 + three random cosine waves of wavelength 8–25
// cells, amplitude 0.6; the same physical fields in both sections), so
// stroma is the most common. slide.json describes a 20× slide (0.5 µm/px,
// objective 20, a pyramid by 4 down to under 2048 px) read at level 0.
//
// The label's region. With T tumour patches in the H&E slide and f = label/3,
// the round(f·T) tumour patches nearest the centre (again all patches within
// the radius R_s of the last one) form the label region: nothing for HER2 0,
// the whole tumour for 3+, a central disc in between. In the IHC slide the
// patches within R_s of the centre are the stained ones (membrane staining of
// that share of the tumour).
//
// Features. For every slide (own PCG stream per slide), a batch effect b ~
// N(0, 0.1²) per dimension, then per patch of type t
//
//	H&E: x = 2·common + 4·proto_t + b + ε + HESignal·h  (h term in the label region only)
//	IHC: x = 2·common + 2·domain + 4·proto_t + b + ε + IHCSignal·s  (s term on stained patches only)
//
// with ε ~ N(0, I_Dim) (Box–Muller on the PCG stream, so the values do not
// depend on math/rand's algorithms), rounded to half precision's 11
// significant bits (as an encoder run in float16 gives; the files compress to
// half) and stored as float32. Hence, with the defaults, the IHC label is
// strong and easy (the stained share of the tumour is 0, ⅓, ⅔, 1 at 2 noise
// units per patch), while the H&E label is weak and spatial: a 0.35 shift,
// well below the per-patch noise, on a central part of the tumour, moving the
// whole-slide mean only by about τ·f·HESignal (≤ 0.18, against a spread of
// about 0.12 between slides from the batch effect and noise). Every random draw but the
// label's is made whatever the label, so with HESignal = 0 a case's H&E
// features are the same for every label.
func Generate(ctx context.Context, work pipeline.Work, opt Options) (csvPath string, err error) {
	opt = opt.withDefaults()
	if err := opt.validate(); err != nil {
		return "", err
	}
	if work.Dir == "" {
		return "", errors.New("caseset: no work folder")
	}
	cs := synthCaseList(opt)
	// Split first: a bad test fraction or fold count fails before any work.
	split, err := cases.Split(cs, opt.Seed, opt.TestFrac, opt.Folds)
	if err != nil {
		return "", fmt.Errorf("caseset: %w", err)
	}
	// cases.csv marks a complete set: removed first, written last.
	csvPath = filepath.Join(work.Dir, cases.DefaultName)
	if err := os.Remove(csvPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("caseset: %w", err)
	}
	gen := newSynthGen(opt)
	aopt := pipeline.DefaultAnchorOptions()
	if opt.SlideGraph {
		aopt.GraphFeatures = opt.Encoder
	}
	// Cases are independent (own PCG streams, own folders), so they run
	// concurrently without changing a byte; the time goes to compressing the
	// feature files (serialised by the HDF5 lock) and to fsync.
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(min(16, max(4, runtime.NumCPU())))
	for i, c := range split {
		eg.Go(func() error {
			if err := ectx.Err(); err != nil {
				return err
			}
			he, ihc := gen.makeCase(i, c.Label)
			he.id, ihc.id = c.HE, c.IHC
			for _, s := range []*synthSlide{he, ihc} {
				if err := gen.writeSlide(ectx, work, s, aopt); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", err
	}
	if err := cases.Write(csvPath, split); err != nil {
		return "", err
	}
	return csvPath, nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Dim == 0 {
		o.Dim = d.Dim
	}
	if o.Encoder == "" {
		o.Encoder = d.Encoder
	}
	if o.MinPatches == 0 && o.MaxPatches == 0 {
		o.MinPatches, o.MaxPatches = d.MinPatches, d.MaxPatches
	} else if o.MaxPatches == 0 {
		o.MaxPatches = max(o.MinPatches, d.MaxPatches)
	} else if o.MinPatches == 0 {
		o.MinPatches = min(o.MaxPatches, d.MinPatches)
	}
	if o.Folds == 0 {
		o.Folds = d.Folds
	}
	return o
}

func (o Options) validate() error {
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case o.Cases < 4 || o.Cases > 1_000_000:
		return fmt.Errorf("caseset: %d cases (4 to 1000000)", o.Cases)
	case o.Dim < 4 || o.Dim > 1<<16:
		return fmt.Errorf("caseset: feature dimension %d (4 to 65536)", o.Dim)
	case !features.ValidName(o.Encoder):
		return fmt.Errorf("caseset: encoder name %q must be letters, digits, '-', '_' or '.'", o.Encoder)
	case o.MinPatches < 32 || o.MaxPatches < o.MinPatches || o.MaxPatches > 200_000:
		return fmt.Errorf("caseset: patches %d..%d (need 32 ≤ min ≤ max ≤ 200000)", o.MinPatches, o.MaxPatches)
	case !finite(o.HESignal) || o.HESignal < 0 || !finite(o.IHCSignal) || o.IHCSignal < 0:
		return fmt.Errorf("caseset: signals H&E %g, IHC %g must be finite and ≥ 0", o.HESignal, o.IHCSignal)
	}
	return nil
}

// synthCaseList numbers the cases and gives them balanced, shuffled labels.
func synthCaseList(opt Options) []cases.Case {
	labels := make([]int, opt.Cases)
	for i := range labels {
		labels[i] = i % cases.NumClasses
	}
	src := rand.NewPCG(opt.Seed, synthStreamLabels)
	for i := len(labels) - 1; i > 0; i-- {
		j := synthIntN(src, i+1)
		labels[i], labels[j] = labels[j], labels[i]
	}
	width := max(3, len(strconv.Itoa(opt.Cases-1)))
	cs := make([]cases.Case, opt.Cases)
	for i := range cs {
		id := fmt.Sprintf("c%0*d", width, i)
		cs[i] = cases.Case{ID: id, HE: id + "_he", IHC: id + "_ihc", Label: labels[i], Fold: -1}
	}
	return cs
}

// synthGen holds the shared directions.
type synthGen struct {
	opt    Options
	stain  []float64 // s
	heDir  []float64 // h = (s + o)/√2
	proto  [synthNumTypes][]float64
	common []float64
	domain []float64
	info   featfile.Info
}

func newSynthGen(opt Options) *synthGen {
	g := &synthGen{opt: opt}
	norm := newSynthGauss(rand.NewPCG(opt.Seed, synthStreamGlobal))
	basis := synthOrthonormal(norm, 4+synthNumTypes, opt.Dim)
	g.stain = basis[0]
	g.heDir = make([]float64, opt.Dim)
	for d := range g.heDir {
		g.heDir[d] = (basis[0][d] + basis[1][d]) / math.Sqrt2
	}
	for t := range g.proto {
		g.proto[t] = basis[2+t]
	}
	g.common, g.domain = basis[2+synthNumTypes], basis[3+synthNumTypes]
	desc := fmt.Sprintf("%s cases=%d seed=%d dim=%d patches=%d..%d he_signal=%g ihc_signal=%g",
		synthVersion, opt.Cases, opt.Seed, opt.Dim, opt.MinPatches, opt.MaxPatches, opt.HESignal, opt.IHCSignal)
	sum := sha256.Sum256([]byte(desc))
	g.info = featfile.Info{
		Encoder: opt.Encoder, EncoderSHA256: "synthetic:" + hex.EncodeToString(sum[:]),
		TargetMPP: synthMPP, PatchSize: synthStep, PatchSizeLevel0: synthStep,
		Source: "synthetic: her2wsi " + pipeline.Version + " " + desc,
	}
	return g
}

// synthOrthonormal returns k orthonormal vectors of dimension d from Gaussian
// draws (modified Gram–Schmidt, applied twice). When k > d (tiny test
// encoders), vector i ≥ d is only made orthogonal to the first d−1.
func synthOrthonormal(norm *synthGauss, k, d int) [][]float64 {
	out := make([][]float64, k)
	for i := range out {
		v := make([]float64, d)
		for j := range v {
			v[j] = norm.next()
		}
		for range 2 {
			for _, u := range out[:min(i, d-1)] {
				p := synthDot(v, u)
				for j := range v {
					v[j] -= p * u[j]
				}
			}
		}
		n := math.Sqrt(synthDot(v, v))
		for j := range v {
			v[j] /= n
		}
		out[i] = v
	}
	return out
}

func synthDot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// synthSlide is one generated slide.
type synthSlide struct {
	id       string
	ihc      bool
	label    int
	w0, h0   int64 // level-0 px
	cols     int   // canvas in grid cells
	rows     int
	patches  []tiling.Patch // raster order
	kind     []uint8        // tissue type per patch
	marked   []bool         // H&E: label region; IHC: stained
	features []float32
}

// synthBlob is one piece of tissue: a modulated ellipse.
type synthBlob struct {
	cx, cy, a, b, cos, sin float64
	amp, phase             [3]float64
}

// depth is 1 at the centre, 0 on the (modulated) outline, negative outside.
func (b *synthBlob) depth(x, y float64) float64 {
	dx, dy := x-b.cx, y-b.cy
	u := (dx*b.cos + dy*b.sin) / b.a
	v := (-dx*b.sin + dy*b.cos) / b.b
	rho, psi := math.Hypot(u, v), math.Atan2(v, u)
	beta := 1.0
	for k := range b.amp {
		beta += b.amp[k] * math.Cos(float64(k+2)*psi+b.phase[k])
	}
	return 1 - rho/beta
}

// synthWave is one cosine of a tissue-type field.
type synthWave struct{ kx, ky, phase float64 }

// synthLayout is a case's tissue, shared by its two sections (physical
// coordinates are the H&E slide's grid units).
type synthLayout struct {
	blobs     []synthBlob
	transpose bool // blobs laid out top to bottom
	cols      int
	rows      int
	waves     [synthNumTypes][3]synthWave
	cx, cy    float64 // tumour centre
	rt        float64 // tumour radius
	tumour    int     // T: requested tumour patches
}

// field is the tissue depth at a physical point (largest over the blobs).
func (l *synthLayout) field(x, y float64) float64 {
	if l.transpose {
		x, y = y, x
	}
	best := math.Inf(-1)
	for i := range l.blobs {
		best = max(best, l.blobs[i].depth(x, y))
	}
	return best
}

// tissueType of a non-tumour patch at a physical point.
func (l *synthLayout) tissueType(x, y float64) uint8 {
	best, bt := math.Inf(-1), uint8(synthStroma)
	for t := range synthNumTypes {
		if t == synthTumour {
			continue
		}
		s := synthTypeWeight[t]
		for _, w := range l.waves[t] {
			s += 0.6 * math.Cos(2*math.Pi*(w.kx*x+w.ky*y)+w.phase)
		}
		if s > best {
			best, bt = s, uint8(t)
		}
	}
	return bt
}

// section picks n cells of the field shifted by (dx, dy) cells, with
// per-cell jitter, in raster order.
func (l *synthLayout) section(src *rand.PCG, n, dx, dy int) (cells []tiling.Patch) {
	type cell struct {
		f      float64
		r, c   int
		raster int
	}
	all := make([]cell, 0, l.cols*l.rows)
	for r := range l.rows {
		for c := range l.cols {
			x, y := float64(c-dx)+0.5, float64(r-dy)+0.5
			f := l.field(x, y) + synthJitter*(2*synthFloat(src)-1)
			all = append(all, cell{f, r, c, len(all)})
		}
	}
	slices.SortFunc(all, func(a, b cell) int {
		if a.f != b.f {
			if a.f > b.f {
				return -1
			}
			return 1
		}
		return a.raster - b.raster
	})
	kept := all[:n]
	thr := kept[n-1].f
	slices.SortFunc(kept, func(a, b cell) int { return a.raster - b.raster })
	cells = make([]tiling.Patch, n)
	for i, k := range kept {
		in := 0
		for sy := range 4 {
			for sx := range 4 {
				x := float64(k.c-dx) + (float64(sx)+0.5)/4
				y := float64(k.r-dy) + (float64(sy)+0.5)/4
				if l.field(x, y) >= thr {
					in++
				}
			}
		}
		cells[i] = tiling.Patch{
			X: int64(k.c) * synthStep, Y: int64(k.r) * synthStep, Row: int32(k.r), Col: int32(k.c),
			Tissue: float32(max(in, 2)) / 16,
		}
	}
	return cells
}

// makeCase generates case i's two slides. Every random draw is made
// whatever the label; the label only decides the region that carries the
// signal.
func (g *synthGen) makeCase(i, label int) (he, ihc *synthSlide) {
	opt := g.opt
	src := rand.NewPCG(opt.Seed, synthStreamCase+3*uint64(i))
	n := opt.MinPatches + synthIntN(src, opt.MaxPatches-opt.MinPatches+1)

	// Blobs, laid out left to right.
	l := &synthLayout{}
	nb := 1 + synthIntN(src, 3)
	w := make([]float64, nb)
	var ws float64
	for b := range w {
		w[b] = 0.5 + synthFloat(src)
		ws += w[b]
	}
	radius := make([]float64, nb)
	l.blobs = make([]synthBlob, nb)
	for b := range l.blobs {
		bl := &l.blobs[b]
		area := 1.3 * float64(n) * w[b] / ws
		q := 0.55 + 0.45*synthFloat(src)
		bl.a = math.Sqrt(area / (math.Pi * q))
		bl.b = q * bl.a
		th := math.Pi * synthFloat(src)
		bl.sin, bl.cos = math.Sincos(th)
		mod := 0.0
		for k := range bl.amp {
			bl.amp[k] = 0.12 * synthFloat(src)
			bl.phase[k] = 2 * math.Pi * synthFloat(src)
			mod += bl.amp[k]
		}
		radius[b] = bl.a * (1 + mod)
	}
	rmax := slices.Max(radius)
	cursor := float64(synthMargin)
	for b := range l.blobs {
		gap := 1 + 4*synthFloat(src)
		l.blobs[b].cx = cursor + radius[b]
		l.blobs[b].cy = synthMargin + rmax + 0.8*(2*synthFloat(src)-1)*(rmax-radius[b])
		cursor += 2*radius[b] + gap
		if b == nb-1 {
			cursor -= gap
		}
	}
	long, short := int(math.Ceil(cursor))+synthMargin, int(math.Ceil(2*rmax))+2*synthMargin
	l.cols, l.rows = long, short
	if l.transpose = synthFloat(src) < 0.5; l.transpose {
		l.cols, l.rows = short, long
	}
	for t := range l.waves {
		for j := range l.waves[t] {
			ang := 2 * math.Pi * synthFloat(src)
			lambda := 8 + 17*synthFloat(src)
			s, c := math.Sincos(ang)
			l.waves[t][j] = synthWave{kx: c / lambda, ky: s / lambda, phase: 2 * math.Pi * synthFloat(src)}
		}
	}

	// H&E section and tumour disc.
	he = &synthSlide{label: label, cols: l.cols, rows: l.rows}
	he.patches = l.section(src, n, 0, 0)
	he.w0 = int64(l.cols)*synthStep + int64(synthIntN(src, synthStep))
	he.h0 = int64(l.rows)*synthStep + int64(synthIntN(src, synthStep))
	tau := 0.25 + 0.25*synthFloat(src)
	centre := he.patches[synthIntN(src, n)]
	l.cx, l.cy = float64(centre.Col)+0.5, float64(centre.Row)+0.5
	l.tumour = max(1, int(math.Round(tau*float64(n))))
	heDist := synthDistances(he.patches, l.cx, l.cy, 0, 0)
	sorted := slices.Clone(heDist)
	slices.Sort(sorted)
	l.rt = sorted[l.tumour-1]

	// IHC section: shifted, own jitter and size.
	dx := synthIntN(src, 2*synthMaxShift+1) - synthMaxShift
	dy := synthIntN(src, 2*synthMaxShift+1) - synthMaxShift
	nIHC := int(math.Round(float64(n) * (0.92 + 0.16*synthFloat(src))))
	ihc = &synthSlide{ihc: true, label: label, cols: l.cols, rows: l.rows}
	ihc.patches = l.section(src, nIHC, dx, dy)
	ihc.w0 = int64(l.cols)*synthStep + int64(synthIntN(src, synthStep))
	ihc.h0 = int64(l.rows)*synthStep + int64(synthIntN(src, synthStep))
	ihcDist := synthDistances(ihc.patches, l.cx, l.cy, dx, dy)

	// Types and the label's region (radius rs; -1: none).
	tumourCount := 0
	for _, d := range heDist {
		if d <= l.rt {
			tumourCount++
		}
	}
	rs := -1.0
	if k := int(math.Round(float64(label) / 3 * float64(tumourCount))); k > 0 {
		rs = sorted[k-1]
	}
	classify := func(s *synthSlide, dist []float64, dx, dy int) {
		s.kind, s.marked = make([]uint8, len(s.patches)), make([]bool, len(s.patches))
		for p, pt := range s.patches {
			if dist[p] <= l.rt {
				s.kind[p] = synthTumour
				s.marked[p] = dist[p] <= rs
				continue
			}
			s.kind[p] = l.tissueType(float64(int(pt.Col)-dx)+0.5, float64(int(pt.Row)-dy)+0.5)
		}
	}
	classify(he, heDist, 0, 0)
	classify(ihc, ihcDist, dx, dy)

	g.embed(he, rand.NewPCG(opt.Seed, synthStreamCase+3*uint64(i)+1), opt.HESignal, g.heDir, nil)
	g.embed(ihc, rand.NewPCG(opt.Seed, synthStreamCase+3*uint64(i)+2), opt.IHCSignal, g.stain, g.domain)
	return he, ihc
}

// synthDistances: distances from the tumour centre, in physical grid units (shift undone).
func synthDistances(ps []tiling.Patch, cx, cy float64, dx, dy int) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = math.Hypot(float64(int(p.Col)-dx)+0.5-cx, float64(int(p.Row)-dy)+0.5-cy)
	}
	return out
}

// embed draws the slide's features: batch effect, then per patch the type's
// base vector, N(0, 1) noise and signal·dir on marked patches.
func (g *synthGen) embed(s *synthSlide, src *rand.PCG, signal float64, dir, domain []float64) {
	d := g.opt.Dim
	norm := newSynthGauss(src)
	batch := make([]float64, d)
	for j := range batch {
		batch[j] = synthSlideSD * norm.next()
	}
	var base [synthNumTypes][]float64
	for t := range base {
		base[t] = make([]float64, d)
		for j := range base[t] {
			v := synthCommonNorm*g.common[j] + synthProtoNorm*g.proto[t][j] + batch[j]
			if domain != nil {
				v += synthDomainNorm * domain[j]
			}
			base[t][j] = v
		}
	}
	s.features = make([]float32, len(s.patches)*d)
	for p := range s.patches {
		row := s.features[p*d : (p+1)*d]
		b := base[s.kind[p]]
		sig := 0.0
		if s.marked[p] {
			sig = signal
		}
		for j := range row {
			row[j] = synthHalf(b[j] + norm.next() + sig*dir[j])
		}
	}
}

// writeSlide writes a slide's folder as the tile, embed and anchors stages
// would: slide.json removed first and written after coords.h5 and qc.png,
// then the features, then anchors.h5 through AnchorSlide.
func (g *synthGen) writeSlide(ctx context.Context, work pipeline.Work, s *synthSlide, aopt pipeline.AnchorOptions) error {
	fail := func(err error) error { return fmt.Errorf("caseset: %s: %w", s.id, err) }
	dir := work.SlideDir(s.id)
	if err := os.MkdirAll(filepath.Join(dir, "features"), 0o755); err != nil {
		return fail(err)
	}
	_ = store.CleanTemps(dir)
	_ = store.CleanTemps(filepath.Join(dir, "features"))
	if err := os.Remove(work.SlideJSON(s.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(err)
	}
	meta, plan, err := synthMetadata(s)
	if err != nil {
		return fail(err)
	}
	grid := pipeline.DefaultTileOptions().Grid
	sum, err := pipeline.WriteCoords(work.CoordsH5(s.id), s.id, meta, plan, s.patches, grid)
	if err != nil {
		return fail(fmt.Errorf("coords.h5: %w", err))
	}
	if err := pipeline.WritePNG(work.QCPNG(s.id), synthQC(s)); err != nil {
		return fail(fmt.Errorf("qc.png: %w", err))
	}
	mw, mh, maskMPP := tiling.MaskSize(s.w0, s.h0, synthMPP, grid)
	maskLevel := 0
	for i, lv := range meta.Levels {
		if max(lv.Width, lv.Height) >= int64(max(mw, mh)) {
			maskLevel = i
		}
	}
	rec := pipeline.SlideRecord{
		Version: pipeline.Version, Slide: meta, Plan: plan, Params: pipeline.DefaultTileOptions(),
		MaskWidth: mw, MaskHeight: mh, MaskMPP: maskMPP, MaskLevel: maskLevel,
		TissueFraction: float64(len(s.patches)) * synthStep * synthStep / float64(s.w0*s.h0),
		GridCols:       s.w0 / synthStep, GridRows: s.h0 / synthStep,
		NumPatches: len(s.patches), CoordsSHA256: sum,
		Timings: map[string]string{},
	}
	if err := work.WriteSlideRecord(s.id, rec); err != nil {
		return err
	}
	coords := make([]int64, 2*len(s.patches))
	for i, p := range s.patches {
		coords[2*i], coords[2*i+1] = p.X, p.Y
	}
	info := g.info
	info.CoordsSHA256 = sum
	if err := featfile.Write(work.FeaturesH5(s.id, g.opt.Encoder), s.features, coords, g.opt.Dim, info); err != nil {
		return fail(err)
	}
	if r := pipeline.AnchorSlide(ctx, pipeline.Input{ID: s.id}, work, aopt); r.Err != nil {
		return r.Err
	}
	return nil
}

// synthMetadata describes a synthetic 20× slide with a 4× pyramid, and the
// tile stage's read plan for it (level 0, 256 px, no resampling).
func synthMetadata(s *synthSlide) (slide.Metadata, tiling.ReadPlan, error) {
	stain := "H&E"
	if s.ihc {
		stain = "HER2 IHC"
	}
	meta := slide.Metadata{
		ID: s.id, Format: "synthetic", Vendor: "synthetic", Reader: "none",
		MPPX: synthMPP, MPPY: synthMPP, MPPSource: "synthetic", ObjectivePower: 20,
		Associated: []string{},
		Properties: map[string]string{pipeline.GeneratedProperty: synthVersion, pipeline.GeneratedProperty + ".stain": stain},
	}
	infos := []tiling.LevelInfo{}
	for ds := int64(1); ; ds *= 4 {
		w, h := s.w0/ds, s.h0/ds
		meta.Levels = append(meta.Levels, slide.Level{Width: w, Height: h, Downsample: float64(ds),
			TileWidth: 256, TileHeight: 256, MPPX: synthMPP * float64(ds), MPPY: synthMPP * float64(ds)})
		infos = append(infos, tiling.LevelInfo{Width: w, Height: h, Downsample: float64(ds)})
		if max(w, h) < 2048 {
			break
		}
	}
	plan, err := tiling.PlanRead(infos, synthMPP, pipeline.DefaultTileOptions().Grid)
	return meta, plan, err
}

// synthQC draws the grid: H&E tissue types (the label region darker), IHC
// counterstain blue with the stained tumour brown.
func synthQC(s *synthSlide) *raster.RGB {
	px := max(2, min(8, 1024/max(s.cols, s.rows)))
	img := raster.New(s.cols*px, s.rows*px)
	for i := range img.Pix {
		img.Pix[i] = 244
	}
	heColors := [synthNumTypes][3]uint8{
		synthStroma: {236, 160, 196}, synthTumour: {150, 64, 160}, synthNormal: {206, 112, 200},
		synthImmune: {72, 52, 150}, synthAdipose: {250, 232, 240},
	}
	for i, p := range s.patches {
		var c [3]uint8
		switch {
		case s.ihc && s.marked[i]:
			c = [3]uint8{150, 90, 40}
		case s.ihc && s.kind[i] == synthTumour:
			c = [3]uint8{140, 150, 210}
		case s.ihc:
			c = [3]uint8{200, 206, 228}
		case s.marked[i]:
			c = [3]uint8{96, 26, 112}
		default:
			c = heColors[s.kind[i]]
		}
		for y := int(p.Row) * px; y < int(p.Row+1)*px; y++ {
			for x := int(p.Col) * px; x < int(p.Col+1)*px; x++ {
				img.Set(x, y, c[0], c[1], c[2])
			}
		}
	}
	return img
}

// synthGauss draws N(0, 1) by Box–Muller from a PCG stream, so the values
// depend only on PCG's definition, not on math/rand's algorithms.
type synthGauss struct {
	src   *rand.PCG
	spare float64
	has   bool
}

func newSynthGauss(src *rand.PCG) *synthGauss { return &synthGauss{src: src} }

func (n *synthGauss) next() float64 {
	if n.has {
		n.has = false
		return n.spare
	}
	u1 := (float64(n.src.Uint64()>>11) + 1) * 0x1p-53 // (0, 1]
	u2 := float64(n.src.Uint64()>>11) * 0x1p-53       // [0, 1)
	r := math.Sqrt(-2 * math.Log(u1))
	s, c := math.Sincos(2 * math.Pi * u2)
	n.spare, n.has = r*s, true
	return r * c
}

// synthHalf rounds to the nearest float32 with 11 significant bits (half
// precision's; ties away from zero), as an encoder run in float16 gives; the
// zero low mantissa bytes also make the feature files compress.
func synthHalf(v float64) float32 {
	b := math.Float32bits(float32(v))
	return math.Float32frombits((b + 1<<12) &^ (1<<13 - 1))
}

// synthFloat is uniform in [0, 1).
func synthFloat(src *rand.PCG) float64 { return float64(src.Uint64()>>11) * 0x1p-53 }

// synthIntN is uniform in [0, n), n > 0 (Lemire's unbiased method).
func synthIntN(src *rand.PCG, n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(src.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(src.Uint64(), un)
		}
	}
	return int(hi)
}
