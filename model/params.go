package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Initialisers, as the reference's initialize_weights.
const (
	initXavier      = iota // Linear weight: xavier_uniform
	initZero               // Linear bias, LayerNorm bias
	initOne                // LayerNorm weight
	initNormal02           // cls_token, cls_token_i, kernel_token: normal(0, 0.02)
	initNormal1            // kernel_token_i (torch.randn), nn.Embedding default
	initConvDefault        // torch Conv2d weight default: U(±1/√fan_in), fan_in = Π shape[1:]
	initTorchLinear        // torch's default nn.Linear init (weight and bias): U(−1/√fan_in, 1/√fan_in)
)

// ParamSpec is one parameter: its reference state_dict name, its shape (the
// reference layout: Linear weight [out, in]) and how it is initialised.
type ParamSpec struct {
	Name  string
	Shape []int
	Init  int
	FanIn int // initTorchLinear: the layer's input width
	// Buffer: a torch buffer (BatchNorm running statistics, GINConv eps),
	// saved and loaded with the parameters but not trained.
	Buffer bool
}

// Size is the number of elements.
func (s ParamSpec) Size() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// Specs lists the variant's parameters in a fixed order (the order the
// graphs take them in); nil for an unknown variant.
func (c Config) Specs() []ParamSpec {
	s := c.Spec()
	if s.params == nil {
		return nil
	}
	l := &paramList{eDim: c.EDim}
	s.params(c, s, l)
	return l.ps
}

// Params holds a model's parameter values in Specs order.
type Params struct {
	Specs  []ParamSpec
	Values [][]float32
	index  map[string]int
	// version changes whenever Values change through this package (the
	// optimiser, SetFrom), so cached device copies are refreshed.
	version uint64
}

// Touch marks the values as changed (call after editing Values directly).
func (p *Params) Touch() { p.version++ }

// NewParams allocates zero parameters for the config.
func NewParams(c Config) *Params {
	specs := c.Specs()
	p := &Params{Specs: specs, Values: make([][]float32, len(specs)), index: make(map[string]int, len(specs))}
	for i, s := range specs {
		p.Values[i] = make([]float32, s.Size())
		p.index[s.Name] = i
	}
	return p
}

// InitParams draws initial values as the reference does (xavier_uniform
// Linear weights, zero biases, LayerNorm 1/0, tokens normal(0, 0.02),
// prompts and embeddings normal(0, 1)) from a seeded generator.
func InitParams(c Config, seed uint64) *Params {
	p := NewParams(c)
	rng := rand.New(rand.NewPCG(seed, 0x1f83d9abfb41bd6b))
	for i, s := range p.Specs {
		v := p.Values[i]
		switch s.Init {
		case initXavier:
			fanOut, fanIn := s.Shape[0], s.Shape[1]
			a := math.Sqrt(6 / float64(fanIn+fanOut))
			for j := range v {
				v[j] = float32((2*rng.Float64() - 1) * a)
			}
		case initOne:
			for j := range v {
				v[j] = 1
			}
		case initNormal02:
			for j := range v {
				v[j] = float32(0.02 * rng.NormFloat64())
			}
		case initNormal1:
			for j := range v {
				v[j] = float32(rng.NormFloat64())
			}
		case initConvDefault:
			fanIn := 1
			for _, d := range s.Shape[1:] {
				fanIn *= d
			}
			a := 1 / math.Sqrt(float64(fanIn))
			for j := range v {
				v[j] = float32((2*rng.Float64() - 1) * a)
			}
		case initTorchLinear:
			// kaiming_uniform(a=√5) on the weight and the bias rule both
			// come to this bound.
			a := 1 / math.Sqrt(float64(s.FanIn))
			for j := range v {
				v[j] = float32((2*rng.Float64() - 1) * a)
			}
		}
	}
	return p
}

// Get returns a parameter's values by reference name (nil if absent).
func (p *Params) Get(name string) []float32 {
	if i, ok := p.index[name]; ok {
		return p.Values[i]
	}
	return nil
}

// Count is the number of scalar parameters.
func (p *Params) Count() int {
	n := 0
	for _, v := range p.Values {
		n += len(v)
	}
	return n
}

// Clone copies the values.
func (p *Params) Clone() *Params {
	q := &Params{Specs: p.Specs, Values: make([][]float32, len(p.Values)), index: p.index}
	for i, v := range p.Values {
		q.Values[i] = append([]float32(nil), v...)
	}
	return q
}

// SetFrom copies named tensors into the parameters. Every parameter must be
// present with its exact shape; extra names are an error unless allowExtra
// (a full IPCA file loaded into an H&E-only variant). shapes/values come
// from a weight file.
func (p *Params) SetFrom(get func(name string) ([]int, []float32, bool, error), names []string, allowExtra bool) error {
	want := map[string]bool{}
	for i, s := range p.Specs {
		want[s.Name] = true
		shape, vals, ok, err := get(s.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if !ok {
			return fmt.Errorf("missing %s %v", s.Name, s.Shape)
		}
		if !slices.Equal(shape, s.Shape) {
			return fmt.Errorf("%s has shape %v, the config needs %v", s.Name, shape, s.Shape)
		}
		copy(p.Values[i], vals)
	}
	p.version++
	if !allowExtra {
		var extra []string
		for _, n := range names {
			if !want[n] {
				extra = append(extra, n)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			return fmt.Errorf("%d tensors the config has no place for (first: %s); check variant and sizes", len(extra), extra[0])
		}
	}
	return nil
}
