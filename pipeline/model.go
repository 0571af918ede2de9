package pipeline

import (
	"fmt"
	"math/rand/v2"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/model"
)

// CaseSource serves a case set's examples to the model from the work folder
// (it implements model.Source). Training loads hold up to max_patches H&E
// patches and max_anchors anchors, sampled per load as Sampling says
// (default spatial: a new spatially uniform random subset each time);
// evaluation loads are predictions: every patch up to max_predict_patches,
// a fixed spatially uniform subset above. Under the config's
// ReferenceSampling both take the first patches in raster order, as the
// reference loader. IHC bundles hold up to max_ihc_patches patches and are
// loaded only for training variants with the IHC branch.
type CaseSource struct {
	Cases   []cases.Case
	Work    Work
	Encoder string
	Config  model.Config

	eval, train, ihcTrain *bundle.Loader
}

// NewCaseSource prepares loaders; sampling is bundle.SampleSpatial,
// SampleFirst or SampleRandom for training loads (empty: first under the
// config's ReferenceSampling, else spatial); cache keeps files in memory.
func NewCaseSource(cs []cases.Case, work Work, encoder string, c model.Config, sampling string, cache bool) (*CaseSource, error) {
	s := &CaseSource{Cases: cs, Work: work, Encoder: encoder, Config: c}
	if sampling == "" {
		sampling = TrainSampling(c)
	}
	mk := func(maxPatches int, samp string) (*bundle.Loader, error) {
		return bundle.NewLoader(bundle.Config{PPK: c.PPK, MaxPatches: maxPatches, MaxAnchors: c.MaxAnchors, Sampling: samp}, cache)
	}
	var err error
	if s.eval, err = PredictLoader(c, cache); err != nil {
		return nil, err
	}
	if s.train, err = mk(c.MaxPatches, sampling); err != nil {
		return nil, err
	}
	if s.ihcTrain, err = mk(c.MaxIHC, sampling); err != nil {
		return nil, err
	}
	return s, nil
}

// TrainSampling is a config's default training sampling: the reference's
// first-N under ReferenceSampling, else spatially uniform random subsets.
func TrainSampling(c model.Config) string {
	if c.ReferenceSampling {
		return bundle.SampleFirst
	}
	return bundle.SampleSpatial
}

// PredictLoader reads slides for prediction: up to c.PredictPatches()
// patches, the first ones under ReferenceSampling, else a fixed spatially
// uniform subset of larger slides.
func PredictLoader(c model.Config, cache bool) (*bundle.Loader, error) {
	samp := bundle.SampleSpatial
	if c.ReferenceSampling {
		samp = bundle.SampleFirst
	}
	return bundle.NewLoader(bundle.Config{PPK: c.PPK, MaxPatches: c.PredictPatches(), MaxAnchors: c.MaxAnchors, Sampling: samp}, cache)
}

func (s *CaseSource) Len() int        { return len(s.Cases) }
func (s *CaseSource) ID(i int) string { return s.Cases[i].ID }
func (s *CaseSource) Label(i int) int { return s.Cases[i].Label }
func (s *CaseSource) Subset(idx []int) *CaseSource {
	t := *s
	t.Cases = make([]cases.Case, len(idx))
	for k, i := range idx {
		t.Cases[k] = s.Cases[i]
	}
	return &t
}

// Load reads case i.
func (s *CaseSource) Load(i int, train bool, rng *rand.Rand) (*model.Example, error) {
	c := s.Cases[i]
	he := s.eval
	if train {
		he = s.train
	} else {
		rng = nil // evaluation: the fixed subset
	}
	ex, err := LoadExample(s.Work, s.Encoder, c.HE, s.Config, he, rng)
	if err != nil {
		return nil, err
	}
	ex.ID, ex.Label = c.ID, c.Label
	if s.Config.HasIHC() && train {
		if c.IHC == "" {
			return nil, fmt.Errorf("pipeline: case %s has no IHC slide, which the %s model trains on", c.ID, s.Config.Variant)
		}
		f := s.Work.SlideFiles(c.IHC, s.Encoder, false)
		f.Grid = s.Work.AnchorsH5(c.IHC) // its grid subsample, when the anchors stage made one
		sd, err := s.ihcTrain.Load(f, rng)
		if err != nil {
			return nil, fmt.Errorf("pipeline: case %s: IHC slide %s: %w", c.ID, c.IHC, err)
		}
		if sd.D != s.Config.InDim {
			return nil, fmt.Errorf("pipeline: IHC slide %s: features have %d dimensions, the model takes %d", c.IHC, sd.D, s.Config.InDim)
		}
		ex.M, ex.IHC = sd.N(), sd.Features
	}
	return ex, nil
}

// LoadSlideData reads the H&E bundle of slide id as a training load of s
// (its training sampling and cap), for inspection and tests.
func LoadSlideData(work Work, encoder, id string, c model.Config, s *CaseSource, rng *rand.Rand) (*bundle.SlideData, error) {
	_, sd, err := loadExampleRNG(work, encoder, id, c, s.train, rng)
	return sd, err
}

// LoadExample reads one H&E slide's bundle as a model example (label −1).
func LoadExample(work Work, encoder, id string, c model.Config, l *bundle.Loader, rng *rand.Rand) (*model.Example, error) {
	ex, _, err := loadExampleRNG(work, encoder, id, c, l, rng)
	return ex, err
}

func loadExample(work Work, encoder, id string, c model.Config, l *bundle.Loader) (*model.Example, *bundle.SlideData, error) {
	return loadExampleRNG(work, encoder, id, c, l, nil)
}

func loadExampleRNG(work Work, encoder, id string, c model.Config, l *bundle.Loader, rng *rand.Rand) (*model.Example, *bundle.SlideData, error) {
	sd, err := l.Load(work.SlideFiles(id, encoder, c.Spec().NeedsAnchors), rng)
	if err != nil {
		return nil, nil, fmt.Errorf("pipeline: slide %s: %w", id, err)
	}
	if sd.D != c.InDim {
		return nil, nil, fmt.Errorf("pipeline: slide %s: features have %d dimensions, the model takes %d (in_dim)", id, sd.D, c.InDim)
	}
	ex := &model.Example{ID: id, N: sd.N(), HE: sd.Features, K: sd.K(), Dist: sd.Dist, Polar: sd.Polar, Label: -1}
	if c.Spec().NeedsGraph {
		if err := addGraph(work, encoder, ex, sd.Rows); err != nil {
			return nil, nil, err
		}
	}
	return ex, sd, nil
}
