package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/her2wsi/her2wsi/features"
)

// The four stages as Runner stages. Each does its work unconditionally
// (the runner decides freshness) and names the inputs that decide its
// outputs in Plan.

// TileStage is the tile stage.
type TileStage struct {
	work    Work
	opt     TileOptions
	workers int
}

// NewTileStage: workers slides at once (0: min(CPUs, 4)).
func NewTileStage(work Work, opt TileOptions, workers int) *TileStage {
	if workers <= 0 {
		workers = min(runtime.NumCPU(), 4)
	}
	return &TileStage{work: work, opt: opt, workers: workers}
}

func (s *TileStage) Name() string { return StageTile }
func (s *TileStage) Workers() int { return s.workers }
func (s *TileStage) Params() any  { return s.opt }
func (s *TileStage) Close() error { return nil }

// Plan: the slide file's content and the tile parameters.
func (s *TileStage) Plan(in Input, fingerprint func(string) (string, error)) (string, []string, error) {
	fp, err := fingerprint(in.Path)
	if err != nil {
		return "", nil, err
	}
	key, err := StageKey(StageTile, s.opt, map[string]string{"slide": fp})
	return key, []string{s.work.SlideJSON(in.ID), s.work.CoordsH5(in.ID), s.work.QCPNG(in.ID), s.work.ThumbnailJPG(in.ID), s.work.TissuePNG(in.ID)}, err
}

func (s *TileStage) Run(ctx context.Context, in Input) Result {
	return TileSlide(ctx, in, s.work, s.opt)
}

// EmbedStage is the embed stage: one Embedder, created at the first
// slide and kept until Close, takes opt.InFlight slides at once (one
// goroutine uses the encoder).
type EmbedStage struct {
	work Work
	enc  features.Encoder
	opt  EmbedOptions
	own  bool

	mu  sync.Mutex
	emb *Embedder
}

// NewEmbedStage embeds with enc, which the caller keeps and closes after
// the stage's Close.
func NewEmbedStage(work Work, enc features.Encoder, opt EmbedOptions) *EmbedStage {
	return &EmbedStage{work: work, enc: enc, opt: opt}
}

// OpenEmbedStage opens the encoder (a file or a name, as features.Open)
// and owns it: Close closes it.
func OpenEmbedStage(work Work, encoder string, eo features.Options, opt EmbedOptions) (*EmbedStage, error) {
	enc, err := features.Open(encoder, eo)
	if err != nil {
		return nil, err
	}
	s := NewEmbedStage(work, enc, opt)
	s.own = true
	return s, nil
}

// Encoder is the stage's encoder.
func (s *EmbedStage) Encoder() features.Encoder { return s.enc }

// OneEngine: the stage's workers share one encoder (FlowStage.OneEngine).
func (s *EmbedStage) OneEngine() {}

func (s *EmbedStage) Name() string { return StageEmbed }
func (s *EmbedStage) Workers() int { return max(s.opt.InFlight, 1) }

// Params are what state.json records: the encoder, the batch size and
// whether patches were read with scaled JPEG decoding.
func (s *EmbedStage) Params() any {
	return map[string]any{"encoder": s.enc.Name(), "encoder_sha256": s.enc.Checksum(), "device": s.enc.Device(), "batch": s.opt.Batch, "scaled_decode": s.opt.ScaledDecode}
}

func (s *EmbedStage) Close() error {
	s.mu.Lock()
	emb := s.emb
	s.emb = nil
	s.mu.Unlock()
	var err error
	if emb != nil {
		err = emb.Close()
	}
	if s.own {
		s.enc.Close()
	}
	return err
}

// Plan: the slide file's content, the coordinates, the encoder's weights
// and the read path (scaled JPEG decoding changes the pixels a little);
// the batch size and device do not change the features.
func (s *EmbedStage) Plan(in Input, fingerprint func(string) (string, error)) (string, []string, error) {
	rec, err := s.work.ReadSlideRecord(in.ID)
	if err != nil {
		return "", nil, err
	}
	src, err := s.slideSource(in, rec, fingerprint)
	if err != nil {
		return "", nil, err
	}
	key, err := StageKey(StageEmbed, map[string]any{"encoder": s.enc.Name(), "encoder_sha256": s.enc.Checksum(), "dim": s.enc.Dim(), "patch_size": s.enc.PatchSize(), "scaled_decode": s.opt.ScaledDecode},
		map[string]string{"slide": src, "coords": rec.CoordsSHA256})
	return key, []string{s.work.FeaturesH5(in.ID, s.enc.Name())}, err
}

// slideSource fingerprints the slide the features are read from, and
// refuses a slide file that is no longer the one tiled.
func (s *EmbedStage) slideSource(in Input, rec SlideRecord, fingerprint func(string) (string, error)) (string, error) {
	if rec.Imported != "" {
		return "imported " + rec.Imported, nil
	}
	path := in.Path
	if path == "" {
		path = rec.Slide.Path
	}
	fp, err := fingerprint(path)
	if err != nil {
		return "", err
	}
	if rec.Fingerprint != "" && rec.Fingerprint != fp {
		return "", fmt.Errorf("pipeline: %s: the slide file changed since it was tiled (%s): run the tile stage again", in.ID, path)
	}
	return fp, nil
}

// Run embeds the slide. A failure of the encoder's runtime (not of the
// slide) wraps ErrEncoderRuntime.
func (s *EmbedStage) Run(ctx context.Context, in Input) Result {
	s.mu.Lock()
	if s.emb == nil {
		emb, err := NewEmbedder(s.work, s.enc, s.opt)
		if err != nil {
			s.mu.Unlock()
			return Result{Stage: StageEmbed, ID: in.ID, Path: in.Path, Err: fmt.Errorf("pipeline: %s: %w: %w", in.ID, ErrEncoderRuntime, err)}
		}
		s.emb = emb
	}
	emb := s.emb
	s.mu.Unlock()
	return emb.Embed(ctx, in)
}

// ErrEncoderRuntime marks an embed failure of the encoder itself (the ONNX
// Runtime session), which would fail every slide alike.
var ErrEncoderRuntime = errors.New("encoder runtime failed")

// AnchorStage is the anchors stage.
type AnchorStage struct {
	work    Work
	opt     AnchorOptions
	workers int
}

// NewAnchorStage: workers slides at once (0: one per CPU).
func NewAnchorStage(work Work, opt AnchorOptions, workers int) *AnchorStage {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	return &AnchorStage{work: work, opt: opt, workers: workers}
}

func (s *AnchorStage) Name() string { return StageAnchors }
func (s *AnchorStage) Workers() int { return s.workers }
func (s *AnchorStage) Params() any  { return s.opt }
func (s *AnchorStage) Close() error { return nil }

// Plan: the coordinates and the k-means settings; with the slide graph,
// also the features file it is built from.
func (s *AnchorStage) Plan(in Input, fingerprint func(string) (string, error)) (string, []string, error) {
	rec, err := s.work.ReadSlideRecord(in.ID)
	if err != nil {
		return "", nil, err
	}
	inputs := map[string]string{"coords": rec.CoordsSHA256}
	outputs := []string{s.work.AnchorsH5(in.ID)}
	if s.opt.GraphFeatures != "" { // the slide graph: also the features it clusters
		fp, err := fingerprint(s.work.FeaturesH5(in.ID, s.opt.GraphFeatures))
		if err != nil {
			return "", nil, err
		}
		inputs["graph_features"] = fp
		outputs = append(outputs, s.work.SlideGraphH5(in.ID, s.opt.GraphFeatures))
	}
	key, err := StageKey(StageAnchors, s.opt, inputs)
	return key, outputs, err
}

func (s *AnchorStage) Run(ctx context.Context, in Input) Result {
	return AnchorSlide(ctx, in, s.work, s.opt)
}

// PredictStage is the H&E-only prediction stage: one goroutine uses the
// model. It always runs (a prediction is cheap next to embedding), writes
// each slide's report and heatmap, and predictions.csv once at the end.
type PredictStage struct {
	*Predictor
	own bool
}

// NewPredictStage predicts with m, which the caller keeps and closes;
// features names the features file read (empty: the slide's only one).
func NewPredictStage(work Work, features string, m *LoadedModel) *PredictStage {
	return &PredictStage{Predictor: NewPredictor(work, features, m)}
}

// OpenPredictStage loads the model (as OpenModel) and owns it.
func OpenPredictStage(work Work, features, runDir, weights, modelConfig, backend string) (*PredictStage, error) {
	m, err := OpenModel(runDir, weights, modelConfig, backend)
	if err != nil {
		return nil, err
	}
	return &PredictStage{Predictor: NewPredictor(work, features, m), own: true}, nil
}

// Model is the stage's model.
func (s *PredictStage) Model() *LoadedModel { return s.m }

func (s *PredictStage) Name() string { return StagePredict }
func (s *PredictStage) Workers() int { return 1 }

// Params are the model's id and configuration and the features name.
func (s *PredictStage) Params() any {
	return map[string]any{"model_id": s.m.ID, "model": s.m.Config, "features": s.encoder}
}

func (s *PredictStage) Close() error {
	if s.own {
		s.m.Close()
	}
	return nil
}

// Plan: always runs.
func (s *PredictStage) Plan(Input, func(string) (string, error)) (string, []string, error) {
	return "", nil, nil
}

func (s *PredictStage) Run(ctx context.Context, in Input) Result { return s.Slide(ctx, in) }
