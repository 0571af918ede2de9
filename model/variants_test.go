package model

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every registered variant has the capabilities README and DESIGN.md give it,
// and its parameters agree with them.
func TestVariantSpecs(t *testing.T) {
	want := []struct {
		name                        string
		anchors, prompts, ihc       bool
		sampleParam, notSampleParam string
	}{
		{VariantIPCA, true, true, true, "head_i.weight", ""},
		{VariantNoProxy, true, true, false, "blocks.0.kernel_token_i", "head_i.weight"},
		{VariantPAMA, true, false, false, "blocks.0.attn.dis_embed.weight", "blocks.0.kernel_token_i"},
		{VariantABMIL, false, false, false, "abmil.fc.weight", "cls_token"},
		{VariantTransMIL, false, false, false, "pos_layer.proj.weight", "kernel_token"},
		{VariantNystromformer, false, false, false, "layer2.attn.res_conv.weight", "pos_layer.proj.weight"},
		{VariantCLAMSB, false, false, false, "attention_net.3.attention_c.weight", "classifiers.0.weight"},
		{VariantCLAMMB, false, false, false, "classifiers.0.weight", "classifiers.weight"},
		{VariantSlideGraph, false, false, false, "first_h.0.weight", "cls_token"},
	}
	var names []string
	for _, w := range want {
		names = append(names, w.name)
	}
	if !slices.Equal(Variants, names) {
		t.Fatalf("Variants = %v, the table test covers %v", Variants, names)
	}
	for i, w := range want {
		t.Run(w.name, func(t *testing.T) {
			s, err := VariantOf(w.name)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != w.name || VariantSpecs[i].Name != w.name {
				t.Errorf("VariantOf(%q) = %q, VariantSpecs[%d] = %q", w.name, s.Name, i, VariantSpecs[i].Name)
			}
			if s.NeedsAnchors != w.anchors || s.HasPrompts != w.prompts || s.HasIHC != w.ihc {
				t.Errorf("anchors/prompts/IHC = %v/%v/%v, want %v/%v/%v", s.NeedsAnchors, s.HasPrompts, s.HasIHC, w.anchors, w.prompts, w.ihc)
			}
			if s.Doc == "" || s.params == nil || s.forward == nil {
				t.Errorf("incomplete spec (doc %q, params %v, forward %v)", s.Doc, s.params != nil, s.forward != nil)
			}
			c := tinyConfig(w.name)
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if sp := c.Spec(); sp.Name != w.name || c.HasPrompts() != w.prompts || c.HasIHC() != w.ihc {
				t.Errorf("Config.Spec/HasPrompts/HasIHC disagree with the table")
			}
			has := map[string]bool{}
			for _, p := range c.Specs() {
				has[p.Name] = true
			}
			if !has[w.sampleParam] || (w.notSampleParam != "" && has[w.notSampleParam]) {
				t.Errorf("parameters: has %s %v (want true), has %s %v (want false)", w.sampleParam, has[w.sampleParam], w.notSampleParam, has[w.notSampleParam])
			}
			// Capabilities and parameters agree.
			if has["blocks.0.attn.dis_embed.weight"] != s.NeedsAnchors || has["blocks.0.kernel_token_i"] != s.HasPrompts || has["head_i.weight"] != s.HasIHC {
				t.Errorf("parameters disagree with the capabilities")
			}
		})
	}
}

// An unknown variant is refused everywhere with the valid names listed.
func TestUnknownVariant(t *testing.T) {
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		for _, n := range Variants {
			if !strings.Contains(err.Error(), n) {
				t.Errorf("%s: error %q does not name %s", what, err, n)
			}
		}
		if !strings.Contains(err.Error(), `"transformer"`) {
			t.Errorf("%s: error %q does not name the unknown variant", what, err)
		}
	}
	s, err := VariantOf("transformer")
	check("VariantOf", err)
	if s.Name != "" {
		t.Errorf("VariantOf gave %+v for an unknown name", s.Name)
	}
	c := DefaultConfig()
	c.Variant = "transformer"
	check("Validate", c.Validate())
	if c.Specs() != nil || c.HasPrompts() || c.HasIHC() {
		t.Errorf("an unknown variant has parameters or capabilities")
	}
	_, err = ParseConfig([]byte(`{"variant": "transformer"}`))
	check("ParseConfig", err)
	_, err = LoadWeights(filepath.Join(t.TempDir(), "none.safetensors"), c)
	check("LoadWeights", err)
	_, err = NewRuntime(c, nil)
	check("NewRuntime", err)
}
