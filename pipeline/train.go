package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/internal/store"
	"github.com/her2wsi/her2wsi/model"
	"github.com/her2wsi/her2wsi/model/metrics"
)

// TrainOptions configure `pipeline train`.
type TrainOptions struct {
	Cases    []cases.Case
	Work     Work
	Encoder  string
	Model    model.Config
	Train    model.TrainConfig
	Out      string // run folder
	CV       int    // > 0: cross-validate over folds 0..CV−1, then train on all training cases
	ValFold  int    // without CV: the fold validated on (−1: none, train on all training cases)
	Sampling string // training patch sampling: bundle.SampleSpatial, SampleFirst or SampleRandom ("": the config's default, TrainSampling)
	Cache    bool   // keep bundles in memory
	Runtime  *model.Runtime
	Epoch    func(run string, l model.EpochLog)
	Step     func(run string, done, total int, loss float64)
}

// TrainReport is what `pipeline train` reports (RUNDIR/report.json).
type TrainReport struct {
	Variant string                 `json:"variant"`
	CV      []FoldResult           `json:"cv,omitempty"`
	CVMean  map[string]float64     `json:"cv_mean,omitempty"`
	CVStd   map[string]float64     `json:"cv_std,omitempty"`
	Val     *metrics.Metrics       `json:"validation,omitempty"`
	Test    *metrics.Metrics       `json:"test,omitempty"`
	ModelID string                 `json:"model_id"`
	Epochs  int                    `json:"epochs"`
	Data    *TrainingData          `json:"data,omitempty"` // what it was trained on
	Extra   map[string]interface{} `json:"extra,omitempty"`
}

// FoldResult is one cross-validation fold.
type FoldResult struct {
	Fold      int             `json:"fold"`
	BestEpoch int             `json:"best_epoch"`
	Metrics   metrics.Metrics `json:"metrics"`
}

// Train trains (and cross-validates) a model on the case set and evaluates
// it on the held-out test cases. Outputs in Out: the model (config.json,
// model.safetensors), log.jsonl, validation and test metrics.json with the
// ROC picture, per-fold folders under CV, report.json (with what the model
// was trained on: TrainingData).
func Train(ctx context.Context, opt TrainOptions) (TrainReport, error) {
	var train, test []cases.Case
	for _, c := range opt.Cases {
		switch c.Split {
		case "test":
			test = append(test, c)
		default:
			train = append(train, c)
		}
	}
	if len(train) == 0 {
		return TrainReport{}, fmt.Errorf("pipeline: train: no training cases")
	}
	src := func(cs []cases.Case) (*CaseSource, error) {
		return NewCaseSource(cs, opt.Work, opt.Encoder, opt.Model, opt.Sampling, opt.Cache)
	}
	byFold := func(f int, in bool) []cases.Case {
		var out []cases.Case
		for _, c := range train {
			if (c.Fold == f) == in {
				out = append(out, c)
			}
		}
		return out
	}
	rep := TrainReport{Variant: opt.Model.Variant, Data: trainingData(opt.Work, opt.Encoder, train, test)}
	fit := func(dir string, tr, val []cases.Case, tc model.TrainConfig) (model.TrainResult, *metrics.Metrics, error) {
		trS, err := src(tr)
		if err != nil {
			return model.TrainResult{}, nil, err
		}
		var valS model.Source
		var valCS *CaseSource
		if len(val) > 0 {
			if valCS, err = src(val); err != nil {
				return model.TrainResult{}, nil, err
			}
			valS = valCS
		}
		name := filepath.Base(dir)
		t := &model.Trainer{Config: opt.Model, Train: tc, Runtime: opt.Runtime, Dir: dir,
			Progress: func(l model.EpochLog) {
				if opt.Epoch != nil {
					opt.Epoch(name, l)
				}
			},
			Step: func(d, n int, loss float64) {
				if opt.Step != nil {
					opt.Step(name, d, n, loss)
				}
			}}
		res, err := t.Fit(ctx, trS, valS)
		if err != nil {
			return res, nil, err
		}
		if valS == nil {
			return res, nil, nil
		}
		m, err := evaluateInto(filepath.Join(dir, "validation"), opt.Runtime, res.Params, valCS)
		return res, &m, err
	}
	tc := opt.Train
	if opt.CV > 0 {
		var bestEpochs []float64
		per := map[string][]float64{}
		for f := 0; f < opt.CV; f++ {
			val := byFold(f, true)
			if len(val) == 0 {
				return rep, fmt.Errorf("pipeline: train: fold %d has no cases; run `pipeline cases split --folds %d` first", f, opt.CV)
			}
			res, m, err := fit(filepath.Join(opt.Out, "fold"+strconv.Itoa(f)), byFold(f, false), val, tc)
			if err != nil {
				return rep, err
			}
			rep.CV = append(rep.CV, FoldResult{Fold: f, BestEpoch: res.BestEpoch, Metrics: *m})
			bestEpochs = append(bestEpochs, float64(res.BestEpoch+1))
			for k, v := range metricMap(*m) {
				per[k] = append(per[k], v)
			}
		}
		rep.CVMean, rep.CVStd = map[string]float64{}, map[string]float64{}
		for k, vs := range per {
			rep.CVMean[k], rep.CVStd[k] = meanStd(vs)
		}
		// The chosen setting: every training case, for the mean best epoch.
		mean, _ := meanStd(bestEpochs)
		tc.Epochs, tc.Patience = max(1, int(math.Round(mean))), 0
		res, _, err := fit(opt.Out, train, nil, tc)
		if err != nil {
			return rep, err
		}
		rep.Epochs, rep.ModelID = res.Epochs, model.ModelID(res.Params)
	} else {
		tr, val := train, []cases.Case(nil)
		if opt.ValFold >= 0 {
			tr, val = byFold(opt.ValFold, false), byFold(opt.ValFold, true)
			if len(val) == 0 {
				return rep, fmt.Errorf("pipeline: train: no training case is in fold %d; run `pipeline cases split` or pass --val-fold -1", opt.ValFold)
			}
		}
		res, m, err := fit(opt.Out, tr, val, tc)
		if err != nil {
			return rep, err
		}
		rep.Val, rep.Epochs, rep.ModelID = m, res.Epochs, model.ModelID(res.Params)
	}
	if len(test) > 0 {
		p, err := model.LoadWeights(filepath.Join(opt.Out, "model.safetensors"), opt.Model)
		if err != nil {
			return rep, err
		}
		ts, err := src(test)
		if err != nil {
			return rep, err
		}
		m, err := evaluateInto(filepath.Join(opt.Out, "test"), opt.Runtime, p, ts)
		if err != nil {
			return rep, err
		}
		rep.Test = &m
	}
	if err := writeJSONFile(filepath.Join(opt.Out, "report.json"), rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// evaluateInto predicts a case set and writes dir/metrics.json, dir/roc.png
// and dir/predictions.csv.
func evaluateInto(dir string, rt *model.Runtime, p *model.Params, s *CaseSource) (metrics.Metrics, error) {
	m, preds, err := model.Evaluate(rt, p, s)
	if err != nil {
		return m, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return m, fmt.Errorf("pipeline: %w", err)
	}
	if err := writeJSONFile(filepath.Join(dir, "metrics.json"), m); err != nil {
		return m, err
	}
	labels := make([]int, len(preds))
	probs := make([][]float64, len(preds))
	var b strings.Builder
	b.WriteString("case_id,label,p0,p1,p2,p3,predicted\n")
	for i, pr := range preds {
		labels[i], probs[i] = pr.Label, pr.Probs
		fmt.Fprintf(&b, "%s,%s", csvField(pr.ID), cases.LabelName(pr.Label))
		for _, q := range pr.Probs {
			fmt.Fprintf(&b, ",%.6f", q)
		}
		fmt.Fprintf(&b, ",%s\n", cases.LabelName(pr.Predicted))
	}
	if err := store.WriteFileAtomic(filepath.Join(dir, "predictions.csv"), []byte(b.String()), 0o644); err != nil {
		return m, fmt.Errorf("pipeline: %w", err)
	}
	names := []string{"0", "1+", "2+", "3+"}
	if err := metrics.WritePNG(filepath.Join(dir, "roc.png"), labels, probs, names, "ROC ("+filepath.Base(dir)+")"); err != nil {
		return m, fmt.Errorf("pipeline: %w", err)
	}
	return m, nil
}

func metricMap(m metrics.Metrics) map[string]float64 {
	return map[string]float64{"accuracy": m.Accuracy, "macro_auc": m.MacroAUC, "weighted_auc": m.WeightedAUC, "macro_f1": m.MacroF1, "weighted_f1": m.WeightedF1}
}

func meanStd(v []float64) (mean, std float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		std += (x - mean) * (x - mean)
	}
	if len(v) > 1 {
		std = math.Sqrt(std / float64(len(v)-1))
	}
	return mean, std
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("pipeline: %s: %w", path, err)
	}
	if err := store.WriteFileAtomic(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	return nil
}

// csvField quotes a CSV field when it needs it, and neutralises one that a
// spreadsheet would run as a formula (OWASP's CSV injection advice: a cell
// starting with = + - @, a tab or a carriage return gets a leading single
// quote and is quoted). pandas and R read it as the text it shows.
func csvField(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		s = "'" + s
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}
