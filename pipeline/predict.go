package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/model"
)

// LoadedModel is a trained model ready for H&E-only prediction.
type LoadedModel struct {
	Config  model.Config
	Params  *model.Params
	ID      string // model id: hash of the weights
	Runtime *model.Runtime
	Info    ModelInfo // where it comes from and how it was trained, for the report
}

// OpenModel loads weights and their config: from a run folder
// (RUNDIR/model.safetensors + RUNDIR/config.json), or from a weight file
// and a model-config JSON (configPath may be empty when the weight file
// was written here and carries its config). backend as model.NewBackend.
// A run folder's report.json, when it is of these weights, tells the slide
// reports how the model was trained and tested (LoadedModel.Info).
func OpenModel(runDir, weights, configPath, backend string) (*LoadedModel, error) {
	if runDir != "" {
		weights = filepath.Join(runDir, "model.safetensors")
		configPath = filepath.Join(runDir, "config.json")
	}
	var c model.Config
	var err error
	if configPath != "" {
		c, err = model.ReadConfig(configPath)
	} else {
		var ok bool
		c, ok, err = model.ConfigOfWeights(weights)
		if err == nil && !ok {
			err = fmt.Errorf("pipeline: %s holds no model config: pass --model-config", weights)
		}
	}
	if err != nil {
		return nil, err
	}
	p, err := model.LoadWeights(weights, c)
	if err != nil {
		return nil, err
	}
	be, err := model.NewBackend(backend)
	if err != nil {
		return nil, err
	}
	rt, err := model.NewRuntime(c, be)
	if err != nil {
		return nil, err
	}
	id := model.ModelID(p)
	return &LoadedModel{Config: c, Params: p, ID: id, Runtime: rt, Info: modelInfo(c.Variant, runDir, weights, id)}, nil
}

// Close frees the compiled graphs.
func (m *LoadedModel) Close() { m.Runtime.Close() }

// PredictRow is one line of predictions.csv.
type PredictRow struct {
	SlideID   string
	Probs     []float64
	Predicted int
	ModelID   string
	Time      time.Time
	// Not in predictions.csv: the patches the model read, and a note when
	// that was not every patch of the slide (for the report).
	PatchesRead int
	PatchNote   string
}

const predictionsHeader = "slide_id,p0,p1,p2,p3,predicted,model_id,time"

func (r PredictRow) csv() string {
	var b strings.Builder
	b.WriteString(csvField(r.SlideID))
	for _, p := range r.Probs {
		fmt.Fprintf(&b, ",%.6f", p)
	}
	fmt.Fprintf(&b, ",%s,%s,%s\n", cases.LabelName(r.Predicted), r.ModelID, r.Time.UTC().Format(time.RFC3339))
	return b.String()
}

// PredictSlide predicts one anchored, embedded slide from H&E alone and
// draws its attention heatmap (heatmap.png) and writes it per patch
// (attention.json, for the slide viewer).
func PredictSlide(ctx context.Context, work Work, encoder, id string, m *LoadedModel) (PredictRow, error) {
	if err := ctx.Err(); err != nil {
		return PredictRow{}, err
	}
	if encoder == "" {
		var err error
		if encoder, err = onlyFeatures(work, id); err != nil {
			return PredictRow{}, err
		}
	}
	l, err := PredictLoader(m.Config, false)
	if err != nil {
		return PredictRow{}, err
	}
	ex, sd, err := loadExample(work, encoder, id, m.Config, l)
	if err != nil {
		return PredictRow{}, err
	}
	if i, ok := firstNonFinite(ex.HE); !ok {
		return PredictRow{}, fmt.Errorf("pipeline: slide %s: features/%s.h5 holds a non-finite value (NaN or Inf) at patch %d: embed the slide again", id, encoder, i/max(sd.D, 1))
	}
	pr, err := m.Runtime.Predict(m.Params, ex)
	if err != nil {
		return PredictRow{}, fmt.Errorf("pipeline: slide %s: %w", id, err)
	}
	if _, ok := firstNonFinite64(pr.Probs); !ok || len(pr.Probs) != 4 {
		return PredictRow{}, fmt.Errorf("pipeline: slide %s: the model's output is not finite (%v): the weights of model %s hold NaN or Inf", id, pr.Probs, m.ID)
	}
	if _, ok := firstNonFinite(pr.Attention); !ok {
		return PredictRow{}, fmt.Errorf("pipeline: slide %s: the model's attention is not finite: the weights of model %s hold NaN or Inf", id, m.ID)
	}
	if err := writeHeatmap(work, id, sd, pr.Attention, m.Config.MapLabel()); err != nil {
		return PredictRow{}, err
	}
	now := time.Now()
	if err := writeAttention(work, id, sd, pr.Attention, pr.Probs, pr.Predicted, m, now); err != nil {
		return PredictRow{}, err
	}
	note := patchNote(sd, m.Config)
	if note != "" {
		slog.Info("patches read", "slide", id, "stage", StagePredict, "note", note)
	}
	return PredictRow{SlideID: id, Probs: pr.Probs, Predicted: pr.Predicted, ModelID: m.ID, Time: now, PatchesRead: sd.N(), PatchNote: note}, nil
}

// patchNote says how the patches read relate to the slide's: empty when
// the model read every patch.
func patchNote(sd *bundle.SlideData, c model.Config) string {
	var parts []string
	if sd.Subsampled < sd.Total {
		parts = append(parts, fmt.Sprintf("the anchors stage kept every %d-th grid row and column (%d of %d patches, PAMA's extraction cap)", sd.GridFactor, sd.Subsampled, sd.Total))
	}
	if sd.N() < sd.Subsampled {
		if c.ReferenceSampling {
			parts = append(parts, fmt.Sprintf("the model read the first %d of %d patches in raster order (reference sampling: tissue below them is not seen)", sd.N(), sd.Subsampled))
		} else {
			parts = append(parts, fmt.Sprintf("the model read a spatially uniform subset of %d of %d patches (max_predict_patches %d); on the heatmap each other patch shows the value of the patch read in its region", sd.N(), sd.Subsampled, c.PredictPatches()))
		}
	}
	return strings.Join(parts, "; ")
}

// WritePredictions writes rows as WORK/predictions.csv, replacing the rows
// of the same slides and keeping the others (atomically).
func WritePredictions(work Work, rows []PredictRow) error {
	keep := map[string]string{}
	var order []string
	if b, err := os.ReadFile(work.PredictionsCSV()); err == nil {
		for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if i == 0 || line == "" {
				continue
			}
			id := csvFirstField(line)
			if _, dup := keep[id]; !dup {
				order = append(order, id)
			}
			keep[id] = line + "\n"
		}
	}
	for _, r := range rows {
		line := r.csv()
		id := csvFirstField(line) // as written (neutralised), like the rows read back
		if _, dup := keep[id]; !dup {
			order = append(order, id)
		}
		keep[id] = line
	}
	var b strings.Builder
	b.WriteString(predictionsHeader + "\n")
	for _, id := range order {
		b.WriteString(keep[id])
	}
	if err := store.WriteFileAtomic(work.PredictionsCSV(), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	return nil
}

func csvFirstField(line string) string {
	if !strings.HasPrefix(line, `"`) {
		id, _, _ := strings.Cut(line, ",")
		return id
	}
	var b strings.Builder
	for i := 1; i < len(line); i++ {
		if line[i] == '"' {
			if i+1 < len(line) && line[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			break
		}
		b.WriteByte(line[i])
	}
	return b.String()
}

// StagePredict is the H&E-only prediction stage.
const StagePredict = "predict"

// PredictAll predicts every slide (one at a time: one goroutine owns the
// model's compiled graphs) and then writes WORK/predictions.csv once, with
// the rows of the slides that succeeded. encoder names the features file.
func PredictAll(ctx context.Context, inputs []Input, work Work, encoder string, m *LoadedModel, prog Progress) Summary {
	return runOneStage(ctx, inputs, work, NewPredictStage(work, encoder, m), prog)
}

// Predictor is the predict stage for one run: Slide predicts one slide and
// keeps its row; Finish writes the rows into predictions.csv once (under the
// work folder's predictions lock, so shards and watchers merge safely).
type Predictor struct {
	work     Work
	encoder  string
	m        *LoadedModel
	mu       sync.Mutex
	rows     []PredictRow // predicted since the last Finish
	finished []PredictRow // written by the last Finish
}

// NewPredictor prepares the stage; m stays owned by the caller.
func NewPredictor(work Work, encoder string, m *LoadedModel) *Predictor {
	return &Predictor{work: work, encoder: encoder, m: m}
}

// Slide predicts one slide (call from one goroutine at a time).
func (p *Predictor) Slide(ctx context.Context, in Input) Result {
	start := time.Now()
	row, err := PredictSlide(ctx, p.work, p.encoder, in.ID, p.m)
	if err != nil {
		return Result{Stage: StagePredict, ID: in.ID, Path: in.Path, Err: err}
	}
	name := ""
	if in.Path != "" {
		name = filepath.Base(in.Path)
	}
	if err := WriteReport(p.work, ReportData{SlideName: name, Row: row, Encoder: p.encoder, Model: p.m.Info}); err != nil {
		return Result{Stage: StagePredict, ID: in.ID, Path: in.Path, Err: err}
	}
	p.mu.Lock()
	p.rows = append(p.rows, row)
	p.mu.Unlock()
	slog.Info("predicted", "slide", in.ID, "stage", StagePredict, "her2", cases.LabelName(row.Predicted), "p", fmt.Sprintf("%.3f", row.Probs[row.Predicted]), "elapsed", time.Since(start).Round(time.Millisecond))
	return Result{Stage: StagePredict, ID: in.ID, Path: in.Path, Elapsed: time.Since(start)}
}

// Rows returns the rows of the last Finish, sorted by slide id.
func (p *Predictor) Rows() []PredictRow {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]PredictRow(nil), p.finished...)
}

// Finish writes the rows predicted since the last Finish into
// predictions.csv; when that fails, their slides' results in sum become
// failures. The rows are then Rows().
func (p *Predictor) Finish(ctx context.Context, sum *Summary) {
	p.mu.Lock()
	sort.Slice(p.rows, func(i, j int) bool { return p.rows[i].SlideID < p.rows[j].SlideID })
	rows := p.rows
	p.rows, p.finished = nil, nil
	p.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	if err := WritePredictionsLocked(ctx, p.work, rows); err != nil {
		slog.Error(err.Error(), "stage", StagePredict)
		failed := map[string]bool{}
		for _, r := range rows {
			failed[r.SlideID] = true
		}
		for i := range sum.Results {
			if r := &sum.Results[i]; failed[r.ID] && r.Err == nil {
				r.Err = fmt.Errorf("pipeline: %s: predictions.csv: %w", r.ID, err)
			}
		}
		*sum = NewSummary(sum.Stage, sum.Results)
		return
	}
	p.mu.Lock()
	p.finished = rows
	p.mu.Unlock()
}

// WritePredictionsLocked is WritePredictions under the work folder's
// predictions lock, so that shards, runs and the watcher sharing WORK merge
// their rows instead of losing some.
func WritePredictionsLocked(ctx context.Context, work Work, rows []PredictRow) error {
	lock := filepath.Join(work.Dir, ".predictions.lock")
	return WithFileLock(ctx, lock, "predictions.csv", LockOptions{Wait: 5 * time.Minute}, func() error { return WritePredictions(work, rows) })
}

// onlyFeatures names a slide's features file when it has exactly one.
func onlyFeatures(work Work, id string) (string, error) {
	fs, _ := filepath.Glob(filepath.Join(work.SlideDir(id), "features", "*.h5"))
	switch len(fs) {
	case 0:
		return "", fmt.Errorf("pipeline: slide %s: not embedded (no features/*.h5 in %s)", id, work.SlideDir(id))
	case 1:
		return strings.TrimSuffix(filepath.Base(fs[0]), ".h5"), nil
	}
	return "", fmt.Errorf("pipeline: slide %s has features from %d encoders: name one with --encoder", id, len(fs))
}

// firstNonFinite returns the index of the first NaN or ±Inf in v, and
// false; or -1 and true when every value is finite.
func firstNonFinite(v []float32) (int, bool) {
	for i, x := range v {
		if x != x || x > math.MaxFloat32 || x < -math.MaxFloat32 {
			return i, false
		}
	}
	return -1, true
}

func firstNonFinite64(v []float64) (int, bool) {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return i, false
		}
	}
	return -1, true
}
