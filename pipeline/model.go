package pipeline

import (
	"fmt"
	"math/rand/v2"

	"github.com/her2wsi/her2wsi/bundle"
	"github.com/her2wsi/her2wsi/internal/cases"
	"github.com/her2wsi/her2wsi/model"
)

// CaseSource serves a case set's examples to the model from the work folder
// (it implements model.Source). H&E bundles hold up to max_patches patches
// and max_anchors anchors; IHC bundles up to max_ihc_patches patches and are
// loaded only for variants with the IHC branch. Training loads sample
// patches at random when Sampling is bundle.SampleRandom (evaluation loads
// always take the first in raster order, as the reference).
type CaseSource struct {
	Cases   []cases.Case
	Work    Work
	Encoder string
	Config  model.Config

	first, random, ihcFirst, ihcRandom *bundle.Loader
}

// NewCaseSource prepares loaders; sampling is bundle.SampleFirst or
// SampleRandom for training loads; cache keeps files in memory.
func NewCaseSource(cs []cases.Case, work Work, encoder string, c model.Config, sampling string, cache bool) (*CaseSource, error) {
	s := &CaseSource{Cases: cs, Work: work, Encoder: encoder, Config: c}
	mk := func(maxPatches int, samp string) (*bundle.Loader, error) {
		return bundle.NewLoader(bundle.Config{PPK: c.PPK, MaxPatches: maxPatches, MaxAnchors: c.MaxAnchors, Sampling: samp}, cache)
	}
	var err error
	if s.first, err = mk(c.MaxPatches, bundle.SampleFirst); err != nil {
		return nil, err
	}
	if s.random, err = mk(c.MaxPatches, sampling); err != nil {
		return nil, err
	}
	if s.ihcFirst, err = mk(c.MaxIHC, bundle.SampleFirst); err != nil {
		return nil, err
	}
	if s.ihcRandom, err = mk(c.MaxIHC, sampling); err != nil {
		return nil, err
	}
	return s, nil
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
	he, ihc := s.first, s.ihcFirst
	if train {
		he, ihc = s.random, s.ihcRandom
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
		sd, err := ihc.Load(s.Work.SlideFiles(c.IHC, s.Encoder, false), rng)
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
	return &model.Example{ID: id, N: sd.N(), HE: sd.Features, K: sd.K(), Dist: sd.Dist, Polar: sd.Polar, Label: -1}, sd, nil
}
