package model

import (
	"fmt"
	"strconv"
	"strings"
)

// Variant names.
const (
	VariantIPCA    = "ipca"
	VariantNoProxy = "ipca-noproxy"
	VariantPAMA    = "pama"
	VariantABMIL   = "abmil"
)

// VariantSpec is one model variant: what it needs and has, and how its
// parameters and forward graph are built. Code that differs between variants
// asks the spec (c.Spec().NeedsAnchors, …) instead of comparing names;
// adding a variant is one entry in VariantSpecs (plus its parameter and graph
// code when it is genuinely new).
type VariantSpec struct {
	Name string
	Doc  string
	// NeedsAnchors: the H&E inputs are patches with anchors and the anchor ×
	// patch distance/polar bins (position-aware anchor attention), and kernel
	// masking applies. Without it the inputs are the patches alone.
	NeedsAnchors bool
	// HasPrompts: learned IHC prompts per block (kernel_token_i).
	HasPrompts bool
	// HasIHC: the IHC branch and its head, trained on paired IHC slides;
	// variants without it are H&E-only and can take their part of a full
	// IPCA weight file.
	HasIHC bool
	// SquarePad: the patches are padded to a square side² by repeating the
	// first ones (TransMIL), so graphs are compiled per side; a repeated
	// patch's attention is the mean of its two slots.
	SquarePad bool
	// NeedsGraph: the H&E inputs are the slide's SlideGraph+ graph (nodes
	// as cluster means of patch features, edges, each patch's node).
	NeedsGraph bool
	// MapLabel names what the per-patch map (heatmap, viewer) shows;
	// empty: attention. Variants without attention say what they map.
	MapLabel string

	// saveAlias gives a second state_dict name a parameter is also saved
	// under ("" none); ignoreLoad names weight-file tensors with no value
	// of their own here; extra are int64 tensors written beside the
	// parameters (torch buffers such as num_batches_tracked).
	saveAlias  func(name string) string
	ignoreLoad func(name string) bool
	extra      func(c Config) map[string][]int64

	// params lists the parameters in the order the graphs take them.
	params func(c Config, s VariantSpec, l *paramList)
	// forward builds the forward pass (see builder.forward).
	forward func(b *builder, he heInputs, ihc *ihcInputs, withPrompts bool) forwardOut
	// check validates the variant's own config keys (nil: none). Other
	// variants ignore those keys, so one config file can serve several
	// variants through --variant.
	check func(c Config) []error
	// checksCLAM: the variant reads the CLAM keys (CLAMConfig).
	checksCLAM bool
	// legacyName offers current names for a state_dict name of an older
	// version of the official code (nil: none).
	legacyName func(name string) []string
	// normalize fills the variant's keys left out with their defaults
	// (Config.Normalized; nil: nothing to fill).
	normalize func(c *Config)
	// dropout is the variant's official dropout rate, taken where the
	// config leaves "dropout" out (nil: DefaultDropout).
	dropout *float64
}

// VariantSpecs is the table of variants, in the order they are listed.
var VariantSpecs = []VariantSpec{
	{
		Name:         VariantIPCA,
		Doc:          "the paper: H&E branch with position-aware anchor attention, learned IHC prompts per block, the IHC branch during training, two heads",
		NeedsAnchors: true, HasPrompts: true, HasIHC: true,
		params: anchorParams, forward: (*builder).anchorForward,
	},
	{
		Name:         VariantNoProxy,
		Doc:          `prompts kept, IHC input and branch removed (the paper's "w/o proxy")`,
		NeedsAnchors: true, HasPrompts: true,
		params: anchorParams, forward: (*builder).anchorForward,
	},
	{
		Name:         VariantPAMA,
		Doc:          "the H&E branch without prompts",
		NeedsAnchors: true,
		params:       anchorParams, forward: (*builder).anchorForward,
	},
	{
		Name:   VariantABMIL,
		Doc:    "gated-attention MIL (CLAM-SB style)",
		params: abmilParams,
		forward: func(b *builder, he heInputs, _ *ihcInputs, _ bool) forwardOut {
			return b.abmil(he)
		},
	},
	{
		Name:      VariantTransMIL,
		Doc:       "TransMIL (szc19990412/TransMIL): two Nyström-attention layers with the PPEG positional convolution between them, [CLS] head",
		SquarePad: true,
		dropout:   Rate(TransMILDropout), // TransLayer's NystromAttention(dropout=0.1)
		params:    transmilParams,
		forward: func(b *builder, he heInputs, _ *ihcInputs, _ bool) forwardOut {
			return b.transmilForward(he, true)
		},
	},
	{
		Name:      VariantNystromformer,
		Doc:       "the Nyström-transformer MIL of Table 2: TransMIL without PPEG",
		SquarePad: true,
		dropout:   Rate(TransMILDropout), // TransLayer's NystromAttention(dropout=0.1)
		params:    transmilParams,
		forward: func(b *builder, he heInputs, _ *ihcInputs, _ bool) forwardOut {
			return b.transmilForward(he, false)
		},
	},
	{
		Name:   VariantCLAMSB,
		Doc:    "CLAM single-branch (mahmoodlab/CLAM CLAM_SB): gated or plain attention, instance-level clustering loss",
		params: clamParams, forward: (*builder).clamForward, check: clamCheck, checksCLAM: true, legacyName: clamLegacyName, normalize: clamNormalize,
	},
	{
		Name:   VariantCLAMMB,
		Doc:    "CLAM multi-branch (CLAM_MB): one attention branch and one bag classifier per class",
		params: clamParams, forward: (*builder).clamForward, check: clamCheck, checksCLAM: true, legacyName: clamLegacyName, normalize: clamNormalize,
	},
}

// Variants lists every variant name, in VariantSpecs order.
var Variants = variantNames()

func variantNames() []string {
	names := make([]string, len(VariantSpecs))
	for i, s := range VariantSpecs {
		names[i] = s.Name
	}
	return names
}

// VariantOf looks a variant up by name; the error lists the valid names.
func VariantOf(name string) (VariantSpec, error) {
	for _, s := range VariantSpecs {
		if s.Name == name {
			return s, nil
		}
	}
	return VariantSpec{}, fmt.Errorf("variant %q (one of %s)", name, strings.Join(variantNames(), ", "))
}

// MapLabel names what the variant's per-patch map shows ("attention"
// unless the variant says otherwise).
func (c Config) MapLabel() string {
	if l := c.Spec().MapLabel; l != "" {
		return l
	}
	return "attention"
}

// Spec is the config's variant (the zero VariantSpec for an unknown name,
// which Validate refuses).
func (c Config) Spec() VariantSpec {
	s, _ := VariantOf(c.Variant)
	return s
}

// HasPrompts says whether the variant has learned IHC prompts.
func (c Config) HasPrompts() bool { return c.Spec().HasPrompts }

// HasIHC says whether the variant has the IHC branch (training only).
func (c Config) HasIHC() bool { return c.Spec().HasIHC }

// paramList collects parameter specs.
type paramList struct {
	ps   []ParamSpec
	eDim int
}

func (l *paramList) add(name string, init int, shape ...int) {
	l.ps = append(l.ps, ParamSpec{Name: name, Shape: shape, Init: init})
}

// linear is a torch Linear: weight [out, in], bias [out].
func (l *paramList) linear(name string, in, out int) {
	l.add(name+".weight", initXavier, out, in)
	l.add(name+".bias", initZero, out)
}

// lnorm is a LayerNorm over e_dim.
func (l *paramList) lnorm(name string) {
	l.add(name+".weight", initOne, l.eDim)
	l.add(name+".bias", initZero, l.eDim)
}

// anchorParams are the parameters of the anchor-attention variants (IPCA and
// its ablations): the prompt and IHC-branch tensors as the spec has them.
func anchorParams(c Config, s VariantSpec, l *paramList) {
	D, H := c.EDim, c.Heads
	ihc, prompts := s.HasIHC, s.HasPrompts
	l.linear("patch_embed", c.InDim, D)
	if ihc {
		l.linear("patch_embed_i", c.InDim, D)
	}
	l.add("cls_token", initNormal02, 1, 1, D)
	if ihc {
		l.add("cls_token_i", initNormal02, 1, 1, D)
	}
	l.add("kernel_token", initNormal02, 1, 1, D)
	for b := 0; b < c.Depth; b++ {
		p := "blocks." + strconv.Itoa(b) + "."
		l.lnorm(p + "norm1")
		if prompts {
			l.lnorm(p + "norm1_i")
			l.add(p+"kernel_token_i", initNormal1, 1, c.Prompts, D)
		}
		l.lnorm(p + "norm2")
		if ihc {
			l.lnorm(p + "norm2_i")
		}
		l.add(p+"attn.dis_embed.weight", initNormal1, DistBins, H)
		l.add(p+"attn.polar_emb.weight", initNormal1, PolarBins, 1)
		l.linear(p+"attn.qkv", D, 3*D)
		l.linear(p+"attn.proj", D, D)
		if prompts {
			l.linear(p+"attn.qkv_i", D, 3*D)
		}
		if ihc {
			l.linear(p+"attn.qkv_i2", D, 3*D)
			l.linear(p+"attn.proj_i", D, D)
			l.linear(p+"attn.proj_i2", D, D)
		}
		l.linear(p+"mlp.fc1", D, c.Hidden())
		l.linear(p+"mlp.fc2", c.Hidden(), D)
		if ihc {
			l.linear(p+"mlp_i.fc1", D, c.Hidden())
			l.linear(p+"mlp_i.fc2", c.Hidden(), D)
		}
	}
	l.lnorm("norm")
	if ihc {
		l.lnorm("norm_i")
	}
	l.linear("head", D, c.Classes)
	if ihc {
		l.linear("head_i", D, c.Classes)
	}
}

// abmilParams are ABMIL's parameters.
func abmilParams(c Config, _ VariantSpec, l *paramList) {
	D := c.EDim
	l.linear("abmil.fc", c.InDim, D)
	l.linear("abmil.attention_a", D, D/2)
	l.linear("abmil.attention_b", D, D/2)
	l.linear("abmil.attention_c", D/2, 1)
	l.linear("abmil.classifier", D, c.Classes)
}
