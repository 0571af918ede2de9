package model

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
)

// SlideGraph+ (variant slidegraph): TIAToolbox's SlideGraphArch (the
// SlideGraph notebook's model) over the graph its SlideGraphConstructor
// builds (anchors.BuildSlideGraph, written by the anchors stage). Config
// keys are the constructor's arguments: layers, pooling, dropout, conv,
// gembed and EdgeConv's aggr; dim_features is in_dim, dim_target classes.
// The state_dict names are the official ones (first_h.0/1, nns.k.0/1,
// convs.k.nn.0/1 — the same modules twice, as torch saves them —,
// linears.l, the BatchNorm buffers), so a converted official checkpoint
// loads here and ours loads there with load_state_dict(strict=True).
const VariantSlideGraph = "slidegraph"

// The SlideGraph notebook's training setting (arch_kwargs), used where the
// config leaves a key out; its dropout 0.5 is set with "dropout".
var (
	DefaultSlideGraphLayers = []int{16, 16, 8}
	bnEps                   = 1e-5 // torch BatchNorm1d default
	bnMomentum              = 0.1
)

const (
	DefaultSlideGraphPooling = "mean"
	DefaultSlideGraphConv    = "EdgeConv"
	DefaultSlideGraphAggr    = "max"
)

func init() {
	VariantSpecs = append(VariantSpecs, VariantSpec{
		Name:       VariantSlideGraph,
		Doc:        "SlideGraph+ (TIAToolbox SlideGraphArch: EdgeConv/GIN layers over the hybrid-clustered patch graph, per-layer node predictions pooled)",
		NeedsGraph: true,
		MapLabel:   "node contribution to the predicted class",
		params:     slideGraphParams,
		forward: func(b *builder, he heInputs, _ *ihcInputs, _ bool) forwardOut {
			return b.slideGraph(he)
		},
		check:      validateSlideGraph,
		saveAlias:  slideGraphAlias,
		ignoreLoad: slideGraphIgnore,
		extra:      slideGraphExtra,
	})
	Variants = variantNames()
}

// SGLayers is layers with its default.
func (c Config) SGLayers() []int {
	if len(c.Layers) == 0 {
		return DefaultSlideGraphLayers
	}
	return c.Layers
}

func (c Config) sgPooling() string { return cmp.Or(c.Pooling, DefaultSlideGraphPooling) }
func (c Config) sgConv() string    { return cmp.Or(c.Conv, DefaultSlideGraphConv) }
func (c Config) sgAggr() string    { return cmp.Or(c.Aggr, DefaultSlideGraphAggr) }

func validateSlideGraph(c Config) []error {
	var bad []string
	for _, l := range c.SGLayers() {
		if l <= 0 {
			bad = append(bad, fmt.Sprintf("layers %v must be positive", c.SGLayers()))
			break
		}
	}
	if !slices.Contains([]string{"max", "mean", "add"}, c.sgPooling()) {
		bad = append(bad, fmt.Sprintf("pooling %q (max, mean or add)", c.Pooling))
	}
	if !slices.Contains([]string{"EdgeConv", "GINConv"}, c.sgConv()) {
		bad = append(bad, fmt.Sprintf("conv %q (EdgeConv or GINConv)", c.Conv))
	}
	if !slices.Contains([]string{"max", "mean", "add"}, c.sgAggr()) {
		bad = append(bad, fmt.Sprintf("aggr %q (max, mean or add)", c.Aggr))
	}
	if c.sgConv() == "GINConv" && c.Aggr != "" && c.Aggr != "add" {
		bad = append(bad, fmt.Sprintf("aggr %q: GINConv sums its neighbours", c.Aggr))
	}
	if len(bad) > 0 {
		return []error{fmt.Errorf("%s", strings.Join(bad, "; "))}
	}
	return nil
}

// bnParams are a BatchNorm1d's affine parameters and running statistics
// (buffers: not trained by the optimiser, updated from batch statistics).
func (l *paramList) bn(name string, n int) {
	l.add(name+".weight", initOne, n)
	l.add(name+".bias", initZero, n)
	l.ps = append(l.ps, ParamSpec{Name: name + ".running_mean", Shape: []int{n}, Init: initZero, Buffer: true},
		ParamSpec{Name: name + ".running_var", Shape: []int{n}, Init: initOne, Buffer: true})
}

func slideGraphParams(c Config, _ VariantSpec, l *paramList) {
	layers := c.SGLayers()
	alpha := 1
	if c.sgConv() == "EdgeConv" {
		alpha = 2
	}
	l.linear("first_h.0", c.InDim, layers[0])
	l.bn("first_h.1", layers[0])
	for k := 1; k < len(layers); k++ {
		p := "nns." + strconv.Itoa(k-1) + "."
		l.linear(p+"0", alpha*layers[k-1], layers[k])
		l.bn(p+"1", layers[k])
		if c.sgConv() == "GINConv" {
			// GINConv(train_eps=False) registers eps (0) as a buffer.
			l.ps = append(l.ps, ParamSpec{Name: "convs." + strconv.Itoa(k-1) + ".eps", Shape: []int{1}, Init: initZero, Buffer: true})
		}
	}
	for k, d := range layers {
		l.linear("linears."+strconv.Itoa(k), d, c.Classes)
	}
}

// slideGraphAlias: nns.k.* are also saved as convs.k.nn.* (one module,
// two names in torch's state_dict).
func slideGraphAlias(name string) string {
	if rest, ok := strings.CutPrefix(name, "nns."); ok {
		k, sub, _ := strings.Cut(rest, ".")
		return "convs." + k + ".nn." + sub
	}
	return ""
}

// slideGraphIgnore: names in an official state_dict that have no separate
// value here (the convs.k.nn.* aliases, BatchNorm's step counters).
func slideGraphIgnore(name string) bool {
	return strings.HasSuffix(name, ".num_batches_tracked") || (strings.HasPrefix(name, "convs.") && strings.Contains(name, ".nn."))
}

// slideGraphExtra: BatchNorm's num_batches_tracked (int64 scalars), which
// torch's strict load requires; written as 0 (momentum 0.1 never reads it).
func slideGraphExtra(c Config) map[string][]int64 {
	out := map[string][]int64{"first_h.1.num_batches_tracked": {0}}
	for k := 1; k < len(c.SGLayers()); k++ {
		out["nns."+strconv.Itoa(k-1)+".1.num_batches_tracked"] = []int64{0}
		out["convs."+strconv.Itoa(k-1)+".nn.1.num_batches_tracked"] = []int64{0}
	}
	return out
}

// batchNorm applies BatchNorm1d named name to y [R, F] whose rows count
// with weight w [R] (1 real, 0 padding): batch statistics over the real
// rows in training (recorded for the running-statistics update), the
// running statistics otherwise.
func (b *builder) batchNorm(name string, y, w *Node) *Node {
	g := y.Graph()
	var mean, variance *Node
	if b.train {
		w2 := ExpandAxes(w, -1)
		cnt := Max(ReduceAllSum(w), Scalar(g, dtypes.Float32, 1))
		mean = Div(ReduceSum(Mul(y, w2), 0), cnt)
		variance = Div(ReduceSum(Mul(Square(Sub(y, ExpandAxes(mean, 0))), w2), 0), cnt)
		unbiased := Mul(variance, Div(cnt, Max(SubScalar(cnt, 1), Scalar(g, dtypes.Float32, 1))))
		b.bnStats = append(b.bnStats, StopGradient(mean), StopGradient(unbiased))
	} else {
		mean, variance = b.param(name+".running_mean"), b.param(name+".running_var")
	}
	yh := Div(Sub(y, ExpandAxes(mean, 0)), ExpandAxes(Sqrt(AddScalar(variance, bnEps)), 0))
	return Add(Mul(yh, ExpandAxes(b.param(name+".weight"), 0)), ExpandAxes(b.param(name+".bias"), 0))
}

// bnNames lists the BatchNorm modules in the order batchNorm records their
// statistics in a training graph.
func (c Config) bnNames() []string {
	names := []string{"first_h.1"}
	for k := 1; k < len(c.SGLayers()); k++ {
		names = append(names, "nns."+strconv.Itoa(k-1)+".1")
	}
	return names
}

func relu(x *Node) *Node { return Max(x, ScalarZero(x.Graph(), x.DType())) }

// slideGraph is SlideGraphArch.forward for one graph: V node slots with
// nodeMask and edges src[e] → dst[e] (edge_index columns).
func (b *builder) slideGraph(he heInputs) forwardOut {
	c := b.c
	g := he.nodes.Graph()
	m := he.nodeMask
	V := m.Shape().Dimensions[0]
	nReal := Max(ReduceAllSum(m), Scalar(g, dtypes.Float32, 1))
	pool := func(t *Node) *Node { // [V, F] → [F] over real nodes
		switch c.sgPooling() {
		case "add":
			return ReduceSum(Mul(t, ExpandAxes(m, -1)), 0)
		case "max":
			keep := BroadcastToDims(ExpandAxes(GreaterThan(m, ScalarZero(g, dtypes.Float32)), -1), t.Shape().Dimensions...)
			return ReduceMax(Where(keep, t, Scalar(g, dtypes.Float32, -3e38)), 0)
		}
		return Div(ReduceSum(Mul(t, ExpandAxes(m, -1)), 0), nReal)
	}
	h := relu(b.batchNorm("first_h.1", b.linear("first_h.0", he.nodes), m))
	layers := c.SGLayers()
	var wsi, nodePred *Node
	for l := range layers {
		lin := "linears." + strconv.Itoa(l)
		if l > 0 {
			h = b.graphConv(l-1, h, he)
		}
		var sub *Node
		if l == 0 || !c.GEmbed {
			np := b.linear(lin, h) // [V, C]
			if nodePred == nil {
				nodePred = np
			} else {
				nodePred = Add(nodePred, np)
			}
			sub = pool(np)
		} else {
			sub = Reshape(b.linear(lin, ExpandAxes(pool(h), 0)), c.Classes)
		}
		sub = b.drop(sub)
		if wsi == nil {
			wsi = sub
		} else {
			wsi = Add(wsi, sub)
		}
	}
	// Node contribution to the predicted class, read out per patch slot
	// through each patch's node.
	cls := OneHot(ArgMax(StopGradient(wsi), -1, dtypes.Int32), c.Classes, dtypes.Float32)
	contrib := Einsum("vc,c->v", StopGradient(nodePred), cls)
	attn := Reshape(Gather(contrib, ExpandAxes(he.assign, -1)), -1)
	_ = V
	return forwardOut{logits: wsi, attn: StopGradient(attn)}
}

// graphConv is convs[k]: EdgeConv(nns[k], aggr) — message
// nn([x_i, x_j − x_i]) over edges j → i, aggregated — or GINConv(nns[k]):
// nn((1+eps)·x_i + Σ_j x_j). The BatchNorm in nns[k] normalises over the
// edges (EdgeConv) or the nodes (GINConv), as in torch_geometric.
func (b *builder) graphConv(k int, x *Node, he heInputs) *Node {
	p := "nns." + strconv.Itoa(k) + "."
	g := x.Graph()
	V := x.Shape().Dimensions[0]
	D := x.Shape().Dimensions[1]
	src, dst := ExpandAxes(he.src, -1), ExpandAxes(he.dst, -1) // [E, 1]
	em := ExpandAxes(he.edgeMask, -1)                          // [E, 1]
	if b.c.sgConv() == "GINConv" {
		eps := b.param("convs." + strconv.Itoa(k) + ".eps")
		agg := ScatterSum(ZerosLike(x), dst, Mul(Gather(x, src), em), false, false)
		agg = Add(Mul(x, OnePlus(Reshape(eps))), agg)
		return relu(b.batchNorm(p+"1", b.linear(p+"0", agg), he.nodeMask))
	}
	w, bias := b.param(p+"0.weight"), b.param(p+"0.bias") // [F, 2D]
	F := w.Shape().Dimensions[0]
	w1 := Slice(w, AxisRange(), AxisRange(0, D))
	w2 := Slice(w, AxisRange(), AxisRange(D, 2*D))
	a := Add(Einsum("vd,fd->vf", x, Sub(w1, w2)), ExpandAxes(bias, 0)) // x_i part
	bj := Einsum("vd,fd->vf", x, w2)                                   // x_j part
	msg := Add(Gather(a, dst), Gather(bj, src))                        // [E, F]
	r := relu(b.batchNorm(p+"1", msg, he.edgeMask))
	r = Mul(r, em) // padded edges 0 (ReLU outputs ≥ 0, so the max is exact)
	zero := Zeros(g, shapesOf(dtypes.Float32, V, F))
	switch b.c.sgAggr() {
	case "add":
		return ScatterSum(zero, dst, r, false, false)
	case "mean":
		deg := ScatterSum(Zeros(g, shapesOf(dtypes.Float32, V, 1)), dst, em, false, false)
		return Div(ScatterSum(zero, dst, r, false, false), Max(deg, Scalar(g, dtypes.Float32, 1)))
	}
	// Nodes without incoming edges get 0, as torch_geometric's scatter max.
	return ScatterMax(zero, dst, r, false, false)
}

// UpdateRunningStats applies one training step's BatchNorm batch
// statistics (GradResult.BNStats) to the running buffers, as torch's
// BatchNorm1d in train mode: running ← (1−0.1)·running + 0.1·batch.
func (r *Runtime) UpdateRunningStats(p *Params, stats [][]float32) {
	if len(stats) == 0 {
		return
	}
	for i, name := range r.Config.bnNames() {
		for s, suf := range []string{".running_mean", ".running_var"} {
			dst, src := p.Get(name+suf), stats[2*i+s]
			for j := range dst {
				dst[j] = float32((1-bnMomentum)*float64(dst[j]) + bnMomentum*float64(src[j]))
			}
		}
	}
	p.Touch()
}

// gradients is Gradient(loss, params) with zeros for buffers, which the
// training graph does not read.
func gradients(loss *Node, params []*Node, specs []ParamSpec) []*Node {
	var idx []int
	var ps []*Node
	for i, s := range specs {
		if !s.Buffer {
			idx = append(idx, i)
			ps = append(ps, params[i])
		}
	}
	gs := Gradient(loss, ps...)
	out := make([]*Node, len(params))
	for i := range out {
		out[i] = ZerosLike(params[i])
	}
	for k, i := range idx {
		out[i] = gs[k]
	}
	return out
}

// checkGraph validates an example's graph.
func (e *Example) checkGraph(c Config) error {
	switch {
	case e.V <= 0:
		return fmt.Errorf("model: %s: no slide graph (run the anchors stage with the slide graph)", e.ID)
	case e.NodeX != nil && len(e.NodeX) != e.V*c.InDim:
		return fmt.Errorf("model: %s: slide graph node features hold %d values for %d nodes", e.ID, len(e.NodeX), e.V)
	case len(e.Assign) != e.N:
		return fmt.Errorf("model: %s: slide graph assigns %d patches, the slide has %d", e.ID, len(e.Assign), e.N)
	}
	for _, a := range e.Assign {
		if a < 0 || int(a) >= e.V {
			return fmt.Errorf("model: %s: slide graph node %d out of range (%d nodes)", e.ID, a, e.V)
		}
	}
	for _, ed := range e.Edges {
		if ed[0] < 0 || ed[1] < 0 || int(ed[0]) >= e.V || int(ed[1]) >= e.V {
			return fmt.Errorf("model: %s: slide graph edge %v out of range (%d nodes)", e.ID, ed, e.V)
		}
	}
	return nil
}

// graphBucket rounds a graph's node or edge count up to a quarter-octave
// step (at least 16: 16, 20, 24, 28, 32, 40, …, 256, 320, 384, 448, 512,
// 640, …): at most 25 % padding, against up to 100 % with powers of two.
// Every node and edge row is computed, padding included; on the
// benchmark's 300-node, 2148-edge graph (512/4096 slots before, 320/2560
// now) the step went from 11.1–11.9 to 10.4–10.6 ms: per-op overhead, not
// padding, is most of this small model's step. A few more compiled shapes
// are cheap for it.
func graphBucket(n int) int {
	if n <= 16 {
		return 16
	}
	step := 1 << (bits.Len(uint(n-1)) - 3)
	return (n + step - 1) / step * step
}

// packGraph pads a graph example: node features as the means of their
// patches' features (float64 sums), the dense adjacency, the node mask and
// each patch slot's node.
func packGraph(p *packed, c Config, e *Example) {
	in := c.InDim
	p.VB = graphBucket(e.V)
	p.nodes = make([]float32, p.VB*in)
	if e.NodeX != nil {
		copy(p.nodes, e.NodeX)
	} else {
		meanNodes(p.nodes, e, in)
	}
	p.EB = graphBucket(max(len(e.Edges), 1))
	p.src, p.dst, p.edgeMask = make([]int32, p.EB), make([]int32, p.EB), make([]float32, p.EB)
	for k, ed := range e.Edges {
		p.src[k], p.dst[k], p.edgeMask[k] = ed[0], ed[1], 1
	}
	p.nodeMask = make([]float32, p.VB)
	for v := 0; v < e.V; v++ {
		p.nodeMask[v] = 1
	}
	p.assign = make([]int32, p.NB)
	copy(p.assign, e.Assign)
}

// meanNodes writes each node's mean patch feature (float64 sums).
func meanNodes(nodes []float32, e *Example, in int) {
	sum := make([]float64, e.V*in)
	cnt := make([]float64, e.V)
	for i, a := range e.Assign {
		row := sum[int(a)*in : int(a)*in+in]
		for d, v := range e.HE[i*in : i*in+in] {
			row[d] += float64(v)
		}
		cnt[a]++
	}
	for v := 0; v < e.V; v++ {
		if cnt[v] == 0 {
			continue
		}
		for d := 0; d < in; d++ {
			nodes[v*in+d] = float32(sum[v*in+d] / cnt[v])
		}
	}
}
