package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/her2wsi/her2wsi/internal/raster"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/slide"
	"github.com/her2wsi/her2wsi/tiling"
)

// Version is written into every output's metadata.
var Version = "dev"

// TileOptions are the tile stage's parameters.
type TileOptions struct {
	Grid      tiling.GridConfig `json:"grid"`
	Mask      tiling.MaskConfig `json:"mask"`
	MPP       float64           `json:"mpp_override,omitempty"` // µm/px override for slides without one
	Reader    string            `json:"reader,omitempty"`       // "", tiffload, openslideload
	QCMaxSide int               `json:"qc_max_side"`
}

// DefaultTileOptions follow the paper: 256 px patches at 20×.
func DefaultTileOptions() TileOptions {
	return TileOptions{Grid: tiling.DefaultGridConfig(), Mask: tiling.DefaultMaskConfig(), QCMaxSide: 1024}
}

// Validate checks every parameter.
func (o TileOptions) Validate() error {
	if err := o.Grid.Validate(); err != nil {
		return err
	}
	if err := o.Mask.Validate(); err != nil {
		return err
	}
	if o.MPP < 0 || o.MPP > 100 {
		return fmt.Errorf("pipeline: --mpp %g out of range", o.MPP)
	}
	if o.QCMaxSide < 64 {
		return fmt.Errorf("pipeline: qc max side %d too small", o.QCMaxSide)
	}
	return nil
}

// SlideRecord is slide.json: the slide's metadata and how it was tiled.
type SlideRecord struct {
	Version        string            `json:"her2wsi_version"`
	Slide          slide.Metadata    `json:"slide"`
	SourceModTime  time.Time         `json:"source_mod_time"`
	Fingerprint    string            `json:"slide_fingerprint,omitempty"` // SlideFingerprint of the file tiled
	Plan           tiling.ReadPlan   `json:"read_plan"`
	Params         TileOptions       `json:"parameters"`
	MaskWidth      int               `json:"mask_width"`
	MaskHeight     int               `json:"mask_height"`
	MaskMPP        float64           `json:"mask_mpp"`
	MaskLevel      int               `json:"mask_level"`
	TissueFraction float64           `json:"tissue_fraction"` // of the whole slide area
	GridCols       int64             `json:"grid_cols"`
	GridRows       int64             `json:"grid_rows"`
	NumPatches     int               `json:"num_patches"`
	CoordsSHA256   string            `json:"coords_sha256"`
	Timings        map[string]string `json:"timings"`
	Imported       string            `json:"imported,omitempty"` // features imported from this file; no slide here
}

// ErrNoTissue is wrapped when a slide has no patch with enough tissue.
var ErrNoTissue = errors.New("no tissue found")

// TileSlide runs the tile stage on one slide (unconditionally: the Runner
// decides what is up to date) and writes slide.json, coords.h5 and qc.png
// into its folder. slide.json is removed first and
// written last, so a slide is tiled exactly when slide.json exists.
func TileSlide(ctx context.Context, in Input, work Work, opt TileOptions) (res Result) {
	start := time.Now()
	res = Result{Stage: StageTile, ID: in.ID, Path: in.Path}
	defer func() { res.Elapsed = time.Since(start) }()
	log := slog.With("slide", in.ID, "stage", "tile")
	fail := func(err error) Result {
		res.Err = err
		return res
	}
	dir := work.SlideDir(in.ID)
	fi, err := os.Stat(in.Path)
	if err != nil {
		return fail(fmt.Errorf("slide: %s: %w", filepath.Base(in.Path), unwrapPath(err)))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(fmt.Errorf("pipeline: %s: %w", in.ID, err))
	}
	if err := os.Remove(work.SlideJSON(in.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail(fmt.Errorf("pipeline: %s: %w", in.ID, err))
	}
	_ = store.CleanTemps(dir)

	t0 := time.Now()
	fp, err := SlideFingerprint(in.Path)
	if err != nil {
		return fail(err)
	}
	s, err := slide.Open(in.Path, slide.Options{MPP: opt.MPP, Reader: opt.Reader})
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	mpp, _, err := s.MPP()
	if err != nil {
		return fail(err)
	}
	if strings.HasPrefix(s.Meta.MPPSource, "objective power") {
		log.Warn("no resolution in the metadata; derived from objective power", "mpp", mpp, "source", s.Meta.MPPSource)
	}
	levels := make([]tiling.LevelInfo, len(s.Meta.Levels))
	for i, lv := range s.Meta.Levels {
		levels[i] = tiling.LevelInfo{Width: lv.Width, Height: lv.Height, Downsample: lv.Downsample}
	}
	plan, err := tiling.PlanRead(levels, mpp, opt.Grid)
	if err != nil {
		return fail(fmt.Errorf("pipeline: %s: %w", filepath.Base(in.Path), err))
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	tOpen := time.Since(t0)

	t0 = time.Now()
	l0 := s.Meta.Levels[0]
	mw, mh, maskMPP := tiling.MaskSize(l0.Width, l0.Height, mpp, opt.Grid)
	maskLevel := s.ThumbnailLevel(max(mw, mh))
	low, err := s.ScaledLevelImage(maskLevel, mw, mh)
	if err != nil {
		return fail(err)
	}
	tRead := time.Since(t0)
	t0 = time.Now()
	mask, err := tiling.TissueMask(low, maskMPP, opt.Mask)
	if err != nil {
		return fail(fmt.Errorf("pipeline: %s: %w", filepath.Base(in.Path), err))
	}
	step := plan.PatchSizeLevel0
	patches := tiling.Grid(l0.Width, l0.Height, step, mask, opt.Grid.MinTissue)
	tMask := time.Since(t0)
	res.MaskTime = tRead + tMask
	res.NumPatches, res.Tissue = len(patches), mask.TissueFraction()

	t0 = time.Now()
	pic, err := qcBase(s, low, opt.QCMaxSide)
	if err != nil {
		// The picture is for people: a slide whose finer level cannot be
		// read still gets one, from the mask's image.
		log.Warn("QC picture from the mask's image", "err", err)
	}
	tPicture := time.Since(t0)
	t0 = time.Now()
	if err := WriteJPEG(work.ThumbnailJPG(in.ID), pic); err != nil {
		return fail(fmt.Errorf("pipeline: %s: thumbnail.jpg: %w", in.ID, err))
	}
	qc := qcPicture(pic, mask, patches, l0.Width, l0.Height, step, tiling.QCLabels{
		UMPerPixel: mpp * float64(l0.Width) / float64(pic.W),
		Patches:    len(patches), PatchSize: plan.PatchSize, PatchMPP: plan.TargetMPP,
	})
	if err := WritePNG(work.QCPNG(in.ID), qc); err != nil {
		return fail(fmt.Errorf("pipeline: %s: qc.png: %w", in.ID, err))
	}
	if err := WriteMask(work.TissuePNG(in.ID), mask); err != nil {
		return fail(fmt.Errorf("pipeline: %s: tissue.png: %w", in.ID, err))
	}
	if len(patches) == 0 {
		return fail(fmt.Errorf("pipeline: %s: %w (tissue covers %.2f%% of the slide, no %dx%d patch reaches %.0f%% tissue; see %s)",
			filepath.Base(in.Path), ErrNoTissue, 100*mask.TissueFraction(), opt.Grid.PatchSize, opt.Grid.PatchSize, 100*opt.Grid.MinTissue, work.QCPNG(in.ID)))
	}
	sum, err := WriteCoords(work.CoordsH5(in.ID), in.ID, s.Meta, plan, patches, opt.Grid)
	if err != nil {
		return fail(fmt.Errorf("pipeline: %s: coords.h5: %w", in.ID, err))
	}
	tWrite := time.Since(t0)

	meta := s.Meta
	meta.ID = in.ID // the run's id (FindSlides), which may name the folder too
	rec := SlideRecord{
		Version: Version, Slide: meta, SourceModTime: fi.ModTime().UTC(), Fingerprint: fp, Plan: plan, Params: opt,
		MaskWidth: mask.W, MaskHeight: mask.H, MaskMPP: maskMPP, MaskLevel: maskLevel,
		TissueFraction: mask.TissueFraction(),
		GridCols:       l0.Width / int64(step), GridRows: l0.Height / int64(step),
		NumPatches: len(patches), CoordsSHA256: sum,
		Timings: map[string]string{
			"open": tOpen.Round(time.Millisecond).String(), "read_low_res": tRead.Round(time.Millisecond).String(),
			"mask_and_grid": tMask.Round(time.Millisecond).String(), "read_picture": tPicture.Round(time.Millisecond).String(),
			"write": tWrite.Round(time.Millisecond).String(),
		},
	}
	if err := work.WriteSlideRecord(in.ID, rec); err != nil {
		return fail(err)
	}
	log.Info("tiled", "patches", len(patches), "tissue", fmt.Sprintf("%.1f%%", 100*mask.TissueFraction()),
		"level", plan.Level, "read_size", plan.ReadSize, "elapsed", time.Since(start).Round(time.Millisecond))
	return res
}

// WriteCoords writes coords.h5 in the CLAM/TRIDENT layout and returns the
// SHA-256 of the coordinates (the input checksum later stages record).
func WriteCoords(path, id string, meta slide.Metadata, plan tiling.ReadPlan, patches []tiling.Patch, g tiling.GridConfig) (string, error) {
	coords := make([]int64, 2*len(patches))
	tissue := make([]float32, len(patches))
	for i, p := range patches {
		coords[2*i], coords[2*i+1] = p.X, p.Y
		tissue[i] = p.Tissue
	}
	w, err := store.CreateH5(path)
	if err != nil {
		return "", err
	}
	defer w.Abort()
	if err := w.WriteInt64("coords", coords, len(patches), 2); err != nil {
		return "", err
	}
	if err := w.WriteFloat32("tissue", tissue, len(patches)); err != nil {
		return "", err
	}
	lv := meta.Levels[plan.Level]
	mag := 0.0
	if meta.MPPX > 0 {
		mag = math.Round(10/meta.MPPX*100) / 100
	}
	if meta.ObjectivePower > 0 {
		mag = meta.ObjectivePower
	}
	err = w.SetAttrs("coords", []store.Attr{
		{Key: "patch_size", Value: int64(plan.PatchSize)},
		{Key: "patch_size_level0", Value: int64(plan.PatchSizeLevel0)},
		{Key: "target_mpp", Value: plan.TargetMPP},
		{Key: "level", Value: int64(plan.Level)},
		{Key: "read_size", Value: int64(plan.ReadSize)},
		// CLAM's names.
		{Key: "patch_level", Value: int64(plan.Level)},
		{Key: "downsample", Value: []float64{lv.Downsample, lv.Downsample}},
		{Key: "level_dim", Value: []int64{lv.Width, lv.Height}},
		{Key: "downsampled_level_dim", Value: []int64{lv.Width, lv.Height}},
		{Key: "name", Value: id},
		// TRIDENT's names.
		{Key: "level0_magnification", Value: mag},
		{Key: "target_magnification", Value: math.Round(10/plan.TargetMPP*100) / 100},
		{Key: "overlap", Value: int64(0)},
		{Key: "min_tissue", Value: g.MinTissue},
	}...)
	if err != nil {
		return "", err
	}
	if err := w.Commit(); err != nil {
		return "", err
	}
	return CoordsChecksum(coords), nil
}

// CoordsChecksum is the hex SHA-256 of the little-endian coordinates.
func CoordsChecksum(coords []int64) string { return store.ChecksumInt64(coords) }

// qcBase returns the plain picture of the whole slide that the QC picture
// and the heatmap are drawn on: maxSide pixels on its long side, or level
// 0's size when that is smaller (never enlarged). The mask's image low
// serves when it is at least that large (scaled down to maxSide: a slide
// over maxSide mask pixels across, 8 mm at the defaults); a smaller one is
// replaced by the slide's thumbnail, read from the pyramid level nearest above that size
// and streamed, never a whole level into memory. On a read error qcBase
// returns the mask's image scaled up to that size, and the error.
func qcBase(s *slide.Slide, low *raster.RGB, maxSide int) (*raster.RGB, error) {
	l0 := s.Meta.Levels[0]
	long0 := max(l0.Width, l0.Height)
	target := int(min(int64(maxSide), long0))
	long := max(low.W, low.H)
	fit := func() *raster.RGB {
		sc := float64(target) / float64(long)
		if r, err := raster.Resize(low, max(1, int(math.Round(float64(low.W)*sc))), max(1, int(math.Round(float64(low.H)*sc)))); err == nil {
			return r
		}
		return low
	}
	switch {
	case long == target:
		return low, nil
	case long > target:
		return fit(), nil
	}
	pic, _, err := s.Thumbnail(target)
	if err != nil {
		return fit(), err
	}
	return pic, nil
}

// qcPicture draws the tissue outline, the kept patches and the legend
// (with a scale bar) on a copy of pic, the whole w0×h0 slide.
func qcPicture(pic *raster.RGB, mask *tiling.Mask, patches []tiling.Patch, w0, h0 int64, step int, labels tiling.QCLabels) *raster.RGB {
	sx, sy := float64(pic.W)/float64(w0), float64(pic.H)/float64(h0)
	boxes := make([]image.Rectangle, len(patches))
	for i, p := range patches {
		boxes[i] = image.Rect(int(float64(p.X)*sx), int(float64(p.Y)*sy),
			int(float64(p.X+int64(step))*sx), int(float64(p.Y+int64(step))*sy))
	}
	qc := tiling.DrawQC(pic, mask, boxes)
	tiling.DrawQCLegend(qc, mask, labels)
	return qc
}

// WriteMask writes the tissue mask as a 1-bit PNG (white: tissue),
// atomically.
func WriteMask(path string, m *tiling.Mask) error {
	img := image.NewPaletted(image.Rect(0, 0, m.W, m.H), color.Palette{color.Gray{0}, color.Gray{255}})
	for i, v := range m.Tissue {
		if v != 0 {
			img.Pix[i] = 1
		}
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img); err != nil {
		return err
	}
	return store.WriteFileAtomic(path, buf.Bytes(), 0o644)
}

// ReadMask reads a tissue mask written by WriteMask: w×h values, 1 where
// there is tissue.
func ReadMask(path string) (w, h int, tissue []uint8, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("pipeline: %s: %w", filepath.Base(path), err)
	}
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	tissue = make([]uint8, w*h)
	if p, ok := img.(*image.Paletted); ok { // as WriteMask writes it
		white := make([]uint8, len(p.Palette))
		for i, c := range p.Palette {
			if color.GrayModel.Convert(c).(color.Gray).Y >= 128 {
				white[i] = 1
			}
		}
		for y := 0; y < h; y++ {
			row := p.Pix[y*p.Stride : y*p.Stride+w]
			for x, v := range row {
				if int(v) < len(white) {
					tissue[y*w+x] = white[v]
				}
			}
		}
		return w, h, tissue, nil
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if c := color.GrayModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.Gray); c.Y >= 128 {
				tissue[y*w+x] = 1
			}
		}
	}
	return w, h, tissue, nil
}

// WriteJPEG writes img as a JPEG (quality 90) atomically.
func WriteJPEG(path string, img *raster.RGB) error {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img.ToImage(), &jpeg.Options{Quality: 90}); err != nil {
		return err
	}
	return store.WriteFileAtomic(path, buf.Bytes(), 0o644)
}

// WritePNG writes img as a PNG atomically (fast compression).
func WritePNG(path string, img *raster.RGB) error {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img.ToImage()); err != nil {
		return err
	}
	return store.WriteFileAtomic(path, buf.Bytes(), 0o644)
}

// TileAll tiles every input through a Runner (locks, freshness,
// state.json) with the given number of concurrent slides (default
// min(CPUs, 4)).
func TileAll(ctx context.Context, inputs []Input, work Work, opt TileOptions, workers int, prog Progress) Summary {
	return runOneStage(ctx, inputs, work, NewTileStage(work, opt, workers), prog)
}
