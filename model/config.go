// Package model is the IPCA model (IHC-prompted cross-attention on top of
// PAMA's position-aware anchor attention) and its baselines, in GoMLX: the
// forward pass, gradients, weights in the reference PyTorch names
// (safetensors), training and H&E-only prediction.
//
// Graph-building code panics (GoMLX's convention); everything exported
// returns errors. Parameters live in Go memory (Params) and are passed to the
// compiled graphs on every call, so the optimiser, checkpoints and weight
// files are plain Go code over float32 slices.
package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
)

// Hyper-parameter defaults. The paper's where it states them, else the
// reference code's (DESIGN.md).
const (
	DefaultInDim      = 512  // PLIP ViT-B/32 embedding
	DefaultEDim       = 256  // reference e_dim
	DefaultDepth      = 2    // reference depth
	DefaultHeads      = 8    // reference heads
	DefaultMLPRatio   = 4.0  // reference
	DefaultPrompts    = 256  // paper's best IHC prompt count (code default 128)
	DefaultMaxAnchors = 128  // reference max-kernel-num
	DefaultMaxPatches = 2048 // reference: patches per slide in a training step
	// DefaultMaxPredictPatches is the most patches a prediction reads: every
	// patch up to here, a spatially uniform subset above (a real 40× breast
	// slide has 10k–50k patches at 20×). Attention is patch↔anchor (K×N),
	// never N×N, so memory grows linearly: measured ≈ 1.8 GB peak at 20k
	// and ≈ 5 GB at 50k patches (README "Whole slides at prediction"), so
	// the default stays near 1.6 GB; raise it where memory allows.
	DefaultMaxPredictPatches = 16384
	DefaultMaxIHC            = 2048 // IHC patches fed to the IHC branch
	DefaultPPK               = 18   // IPCA main patches per anchor
	DefaultClasses           = 4    // HER2 0, 1+, 2+, 3+
	DefaultMaskRatio         = 0.75 // paper's best kernel masking ratio (code default 0)
	DefaultDropout           = 0.0  // reference (variants with an official rate of their own: VariantSpec.dropout)
	DefaultLayerNormEps      = 1e-5 // PyTorch nn.LayerNorm default, as IPCA_vit_base
	DistBins                 = 66   // dis_embed rows: bins 0..64 and a spare
	// MaxPredictPatchesLimit bounds max_predict_patches (a 1M-patch
	// prediction would need tens of GB).
	MaxPredictPatchesLimit = 1 << 20
	PolarBins              = 8 // polar sectors
)

// Config is the model's shape and its reference-compatibility switches. It is
// saved with every checkpoint and weight file (model-config JSON).
type Config struct {
	Variant    string  `json:"variant"` // a name in VariantSpecs
	InDim      int     `json:"in_dim"`
	EDim       int     `json:"e_dim"`
	Depth      int     `json:"depth"`
	Heads      int     `json:"heads"`
	MLPRatio   float64 `json:"mlp_ratio"`
	Prompts    int     `json:"num_prompts"`
	MaxAnchors int     `json:"max_anchors"`
	MaxPatches int     `json:"max_patches"` // per training step
	// MaxPredictPatches caps the patches one prediction (and evaluation)
	// reads; slides above it are read as a spatially uniform subset.
	MaxPredictPatches int     `json:"max_predict_patches"`
	MaxIHC            int     `json:"max_ihc_patches"`
	PPK               int     `json:"patches_per_anchor"`
	Classes           int     `json:"classes"`
	MaskRatio         float64 `json:"mask_ratio"`
	// Dropout is the training dropout rate; nil (the key left out) takes
	// the variant's official rate (DropoutRate), and an explicit value,
	// 0 included, is used as given. A pointer because transmil and
	// nystromformer default to 0.1 and every other variant to 0, so "left
	// out" and 0 must differ.
	Dropout      *float64 `json:"dropout,omitempty"`
	LayerNormEps float64  `json:"layer_norm_eps"`
	// ReferencePadding reproduces the reference code's padding: the [CLS]
	// column of the distance/polar matrices is the mean over the padded row,
	// the main orientation sums over padded columns, [CLS] attends padded
	// anchors, and kernel masking draws among all max_anchors slots. Off
	// (default): padding is masked properly and results do not depend on it.
	ReferencePadding bool `json:"reference_padding"`
	// ReferenceEval reproduces the reference's H&E-only evaluation model
	// (IPCA_models_sin.py), which leaves the prompt path out at prediction.
	// Off (default): prediction uses the prompts, as the paper says.
	ReferenceEval bool `json:"reference_eval"`
	// ReferenceSampling reproduces the reference loader: a slide above
	// max_patches is cut to its first max_patches patches (and first
	// max_anchors anchors) in raster order, in training and at prediction.
	// Off (default): prediction reads every patch up to
	// max_predict_patches, training draws a spatially uniform random subset
	// of max_patches per load.
	ReferenceSampling bool `json:"reference_sampling"`
	// The transmil/nystromformer constructor arguments (transmil.go); their
	// keys sit at the top level of the JSON and are left out when zero.
	NystromConfig
	// CLAMConfig holds the clam_sb/clam_mb keys (clam.go); empty for the
	// other variants.
	CLAMConfig

	// SlideGraph+ (variant slidegraph): SlideGraphArch's arguments
	// (model/slidegraph.go); empty takes the notebook's values.
	Layers  []int  `json:"layers,omitempty"`
	Pooling string `json:"pooling,omitempty"`
	Conv    string `json:"conv,omitempty"`
	Aggr    string `json:"aggr,omitempty"`
	GEmbed  bool   `json:"gembed,omitempty"`
}

// DefaultConfig is the paper's IPCA.
func DefaultConfig() Config {
	return Config{
		Variant: VariantIPCA, InDim: DefaultInDim, EDim: DefaultEDim, Depth: DefaultDepth,
		Heads: DefaultHeads, MLPRatio: DefaultMLPRatio, Prompts: DefaultPrompts,
		MaxAnchors: DefaultMaxAnchors, MaxPatches: DefaultMaxPatches, MaxPredictPatches: DefaultMaxPredictPatches, MaxIHC: DefaultMaxIHC,
		PPK: DefaultPPK, Classes: DefaultClasses, MaskRatio: DefaultMaskRatio,
		LayerNormEps: DefaultLayerNormEps,
	}
}

// ReferenceCodeConfig is the reference code's main IPCA setting: 128
// prompts, no kernel masking, dropout 0 (its --dropout default), and the
// reference-compatibility switches (padding, evaluation, first-N sampling).
func ReferenceCodeConfig() Config {
	c := DefaultConfig()
	c.Prompts = 128
	c.MaskRatio = 0
	c.ReferencePadding = true
	c.ReferenceEval = true
	c.ReferenceSampling = true
	return c
}

// PredictPatches is the most patches one prediction reads: max_patches
// under the reference's sampling or padding (it pads every slide to
// max_patches), else max_predict_patches (never below max_patches).
func (c Config) PredictPatches() int {
	if c.ReferenceSampling || c.ReferencePadding {
		return c.MaxPatches
	}
	return max(c.MaxPredictPatches, c.MaxPatches)
}

// Rate makes a Config.Dropout value: c.Dropout = model.Rate(0.25).
func Rate(p float64) *float64 { return &p }

// DropoutRate is the dropout rate in effect: Dropout where the config sets
// it, else the variant's official rate (0.1 for transmil and nystromformer,
// DefaultDropout otherwise).
func (c Config) DropoutRate() float64 { return c.dropoutRate(c.Spec()) }

// dropoutRate is DropoutRate with the config's variant s given (graph code
// has it at hand, and going through Spec there would make the variant table
// refer to itself).
func (c Config) dropoutRate(s VariantSpec) float64 {
	if c.Dropout != nil {
		return *c.Dropout
	}
	if s.dropout != nil {
		return *s.dropout
	}
	return DefaultDropout
}

// Normalized is the config with the variant's own keys filled in where
// left out (dropout for every variant; the CLAM keys for clam_sb/clam_mb),
// as run folders record it.
func (c Config) Normalized() Config {
	c.Dropout = Rate(c.DropoutRate())
	if s := c.Spec(); s.normalize != nil {
		s.normalize(&c)
	}
	return c
}

// HeadDim is e_dim / heads.
func (c Config) HeadDim() int { return c.EDim / c.Heads }

// Hidden is the MLP width, int(e_dim·mlp_ratio) as the reference.
func (c Config) Hidden() int { return int(float64(c.EDim) * c.MLPRatio) }

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	spec, err := VariantOf(c.Variant)
	if err != nil {
		errs = append(errs, err)
	}
	if c.InDim <= 0 || c.EDim <= 0 || c.Depth < 0 || c.Heads <= 0 || c.Classes < 2 {
		bad("in_dim %d, e_dim %d, depth %d, heads %d, classes %d must be positive (classes ≥ 2)", c.InDim, c.EDim, c.Depth, c.Heads, c.Classes)
	} else if c.EDim%c.Heads != 0 {
		bad("e_dim %d is not a multiple of heads %d", c.EDim, c.Heads)
	}
	if c.MLPRatio <= 0 || c.Hidden() < 1 {
		bad("mlp_ratio %g", c.MLPRatio)
	}
	if spec.HasPrompts && c.Prompts <= 0 {
		bad("num_prompts %d", c.Prompts)
	}
	if c.MaxAnchors <= 0 || c.MaxPatches <= 0 || c.MaxIHC <= 0 || c.PPK <= 0 || c.MaxPredictPatches <= 0 {
		bad("max_anchors %d, max_patches %d, max_predict_patches %d, max_ihc_patches %d, patches_per_anchor %d must be positive", c.MaxAnchors, c.MaxPatches, c.MaxPredictPatches, c.MaxIHC, c.PPK)
	} else if c.MaxPredictPatches > MaxPredictPatchesLimit {
		bad("max_predict_patches %d (at most %d)", c.MaxPredictPatches, MaxPredictPatchesLimit)
	}
	if c.MaskRatio < 0 || c.MaskRatio >= 1 {
		bad("mask_ratio %g (0 ≤ r < 1)", c.MaskRatio)
	}
	if p := c.DropoutRate(); p < 0 || p >= 1 || math.IsNaN(p) {
		bad("dropout %g (0 ≤ p < 1)", p)
	}
	if c.LayerNormEps <= 0 {
		bad("layer_norm_eps %g", c.LayerNormEps)
	}
	if spec.Name != "" {
		if err := validateNystrom(c, spec); err != nil {
			errs = append(errs, err)
		}
	}
	if spec.check != nil {
		errs = append(errs, spec.check(c)...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("model: config: %w", errors.Join(errs...))
	}
	return nil
}

// ReadConfig reads a model-config JSON. Keys left out take the defaults
// (DefaultConfig); unknown keys are an error.
func ReadConfig(path string) (Config, error) { return ReadConfigOver(DefaultConfig(), path) }

// ReadConfigOver reads a model-config JSON file over base (ParseConfigOver).
func ReadConfigOver(base Config, path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model: config: %w", err)
	}
	c, err := ParseConfigOver(base, b)
	if err != nil {
		return Config{}, fmt.Errorf("model: config %s: %w", path, errors.Unwrap(err))
	}
	return c, nil
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// ParseConfig parses a model-config JSON over the defaults.
func ParseConfig(b []byte) (Config, error) { return ParseConfigOver(DefaultConfig(), b) }

// ParseConfigOver parses a model-config JSON over base: the keys it names
// replace base's, the others keep base's values (a variant's own settings
// over the settings shared by a comparison).
func ParseConfigOver(base Config, b []byte) (Config, error) {
	c := base
	// Nothing of base may be shared: the decoder writes into the slice and
	// into the values the pointer keys point at.
	c.Layers = slices.Clone(base.Layers)
	c.Dropout, c.Gate, c.BagWeight = clonePtr(base.Dropout), clonePtr(base.Gate), clonePtr(base.BagWeight)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("model: config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
