package model

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // the pure-Go backend, always available
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/support/exceptions"
)

// DefaultBackend is the GoMLX backend used when neither the caller nor
// GOMLX_BACKEND names one: the pure-Go backend with its operations run one
// at a time (each still uses every core inside matrix products); see
// README "Model backend" for why not its default parallel executor.
const DefaultBackend = "go:ops_sequential"

var (
	Panicf   = exceptions.Panicf
	shapesOf = shapes.Make
	itoa     = strconv.Itoa
)

// NewBackend opens a GoMLX backend: config as GOMLX_BACKEND takes it
// ("go", "go:ops_sequential", "xla:/abs/path/pjrt_plugin.so", …); empty
// means GOMLX_BACKEND, else DefaultBackend. Nothing is ever downloaded.
func NewBackend(config string) (compute.Backend, error) {
	if config == "" {
		config = os.Getenv("GOMLX_BACKEND")
	}
	if config == "" {
		config = DefaultBackend
	}
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	if strings.HasPrefix(config, "xla") && !strings.Contains(config, "/") {
		return nil, fmt.Errorf("model: backend %q: give the PJRT plugin by absolute path (xla:/path/to/pjrt_plugin.so); nothing is downloaded", config)
	}
	var b compute.Backend
	var err error
	if perr := exceptions.TryCatch[error](func() { b, err = compute.NewWithConfig(config) }); perr != nil {
		err = perr
	}
	if err != nil {
		if strings.HasPrefix(config, "xla") {
			return nil, fmt.Errorf("model: backend %q: this build has only the pure-Go backend (no PJRT/XLA support compiled in): %w", config, err)
		}
		return nil, fmt.Errorf("model: backend %q: %w", config, err)
	}
	return b, nil
}

// Runtime compiles and runs a config's graphs on one backend. It is owned
// by one goroutine at a time (the pipeline's model stage); its methods are
// not safe for concurrent use.
type Runtime struct {
	Config  Config
	Backend compute.Backend
	specs   []ParamSpec

	mu              sync.Mutex
	fwdHE, fwdTrain *Exec
	grad            *Exec
	paramT          []*tensors.Tensor // cached parameter tensors for forwards
	paramSrc        *Params
	paramVer        uint64
}

// NewRuntime checks the config and prepares (lazily compiled) graphs.
func NewRuntime(c Config, backend compute.Backend) (*Runtime, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := &Runtime{Config: c, Backend: backend, specs: c.Specs()}
	np := len(r.specs)
	// Forward graphs: params, then the H&E inputs, then (training forward)
	// the IHC inputs.
	var err error
	r.fwdHE, err = NewExec(backend, func(g *Graph, in []*Node) []*Node {
		b := newBuilder(c, r.specs, in[:np])
		out := b.forward(heFrom(c, in[np:]), nil, c.HasPrompts() && !c.ReferenceEval)
		return []*Node{out.logits, out.attn}
	})
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	r.fwdTrain, err = NewExec(backend, func(g *Graph, in []*Node) []*Node {
		b := newBuilder(c, r.specs, in[:np])
		b.train = true
		he, ihc := heFrom(c, in[np:]), ihcFrom(c, in[np+heCount(c):])
		out := b.forward(he, ihc, c.HasPrompts())
		res := []*Node{out.logits}
		if out.logitsIHC != nil {
			res = append(res, out.logitsIHC)
		}
		return res
	})
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	r.grad, err = NewExec(backend, func(g *Graph, in []*Node) []*Node {
		params := in[:np]
		b := newBuilder(c, r.specs, params)
		b.train = true
		rest := in[np:]
		he := heFrom(c, rest)
		rest = rest[heCount(c):]
		ihc := ihcFrom(c, rest)
		if ihc != nil {
			rest = rest[2:]
		}
		label := rest[0]
		if c.DropoutRate() > 0 {
			b.rng = rest[1] // dropout's random state, one per step
		}
		out := b.forward(he, ihc, c.HasPrompts())
		loss := crossEntropy(out.logits, label, c.Classes)
		if out.loss != nil {
			loss = out.loss(label)
		}
		if out.logitsIHC != nil {
			loss = Add(loss, crossEntropy(out.logitsIHC, label, c.Classes))
		}
		res := []*Node{loss, out.logits}
		res = append(res, gradients(loss, params, r.specs)...)
		return append(res, b.bnStats...)
	})
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	for _, e := range []*Exec{r.fwdHE, r.fwdTrain, r.grad} {
		e.SetMaxCache(64)
	}
	return r, nil
}

// Close frees the compiled graphs and cached tensors.
func (r *Runtime) Close() {
	r.dropParamTensors()
	for _, e := range []*Exec{r.fwdHE, r.fwdTrain, r.grad} {
		if e != nil {
			e.Finalize()
		}
	}
}

// heCount is the number of H&E graph inputs: patches with anchors and bins,
// or (variants without anchors) patches and their mask.
func heCount(c Config) int {
	if c.Spec().NeedsGraph {
		return 6
	}
	if !c.Spec().NeedsAnchors {
		return 2
	}
	return 6
}

func heFrom(c Config, in []*Node) heInputs {
	if c.Spec().NeedsGraph {
		return heInputs{nodes: in[0], src: in[1], dst: in[2], edgeMask: in[3], nodeMask: in[4], assign: in[5]}
	}
	if !c.Spec().NeedsAnchors {
		return heInputs{feats: in[0], mask: in[1]}
	}
	return heInputs{feats: in[0], rd: in[1], pol: in[2], colMask: in[3], keep: in[4], rows: in[5]}
}

func ihcFrom(c Config, in []*Node) *ihcInputs {
	if !c.HasIHC() {
		return nil
	}
	return &ihcInputs{feats: in[0], keep: in[1]}
}

// heTensors makes the H&E input tensors of a packed example.
func (r *Runtime) heTensors(p *packed) []any {
	in := r.Config.InDim
	if r.Config.Spec().NeedsGraph {
		return []any{
			tensors.FromFlatDataAndDimensions(p.nodes, p.VB, in),
			tensors.FromFlatDataAndDimensions(p.src, p.EB),
			tensors.FromFlatDataAndDimensions(p.dst, p.EB),
			tensors.FromFlatDataAndDimensions(p.edgeMask, p.EB),
			tensors.FromFlatDataAndDimensions(p.nodeMask, p.VB),
			tensors.FromFlatDataAndDimensions(p.assign, p.NB),
		}
	}
	if !r.Config.Spec().NeedsAnchors {
		return []any{
			tensors.FromFlatDataAndDimensions(p.he, p.NB, in),
			tensors.FromFlatDataAndDimensions(p.mask, p.NB),
		}
	}
	W := p.NB + 1
	return []any{
		tensors.FromFlatDataAndDimensions(p.he, p.NB, in),
		tensors.FromFlatDataAndDimensions(p.rd, p.KB, W),
		tensors.FromFlatDataAndDimensions(p.pol, p.KB, W),
		tensors.FromFlatDataAndDimensions(p.colMask, W),
		tensors.FromFlatDataAndDimensions(p.keep, p.KB, W),
		tensors.FromFlatDataAndDimensions(p.rows, W),
	}
}

func (r *Runtime) ihcTensors(p *packed) []any {
	return []any{
		tensors.FromFlatDataAndDimensions(p.ihc, p.MB, r.Config.InDim),
		tensors.FromFlatDataAndDimensions(p.ihcKeep, p.MB+1),
	}
}

func paramTensors(p *Params) []*tensors.Tensor {
	ts := make([]*tensors.Tensor, len(p.Specs))
	for i, s := range p.Specs {
		ts[i] = tensors.FromFlatDataAndDimensions(p.Values[i], s.Shape...)
	}
	return ts
}

func (r *Runtime) dropParamTensors() {
	for _, t := range r.paramT {
		_ = t.FinalizeAll()
	}
	r.paramT, r.paramSrc = nil, nil
}

// forwardParams returns parameter tensors for forwards, reusing them while
// the same Params at the same version is passed.
func (r *Runtime) forwardParams(p *Params) []any {
	if r.paramSrc != p || r.paramVer != p.version {
		r.dropParamTensors()
		r.paramT, r.paramSrc, r.paramVer = paramTensors(p), p, p.version
	}
	args := make([]any, len(r.paramT))
	for i, t := range r.paramT {
		args[i] = t
	}
	return args
}

func (r *Runtime) checkParams(p *Params) error {
	if len(p.Specs) != len(r.specs) {
		return fmt.Errorf("model: parameters of another variant (%d tensors, %s needs %d)", len(p.Specs), r.Config.Variant, len(r.specs))
	}
	return nil
}

// Prediction is the H&E-only output for one slide.
type Prediction struct {
	Logits    []float32
	Probs     []float64
	Predicted int
	Attention []float32 // per real patch: [CLS]→patch attention of the last block
}

// Predict runs the H&E-only forward (no IHC input; the learned prompts are
// used unless the variant has none or ReferenceEval is set).
func (r *Runtime) Predict(p *Params, e *Example) (Prediction, error) {
	if err := r.checkParams(p); err != nil {
		return Prediction{}, err
	}
	if err := e.CheckPredict(r.Config); err != nil {
		return Prediction{}, err
	}
	pk := pack(r.Config, e, nil, false)
	args := append(r.forwardParams(p), r.heTensors(pk)...)
	outs, err := r.call(r.fwdHE, args)
	if err != nil {
		return Prediction{}, fmt.Errorf("model: %s: %w", e.ID, err)
	}
	defer finalize(outs)
	logits := tensors.MustCopyFlatData[float32](outs[0])
	attn := tensors.MustCopyFlatData[float32](outs[1])
	if r.Config.Spec().SquarePad {
		attn = foldSquare(attn, e.N)
	}
	pr := Prediction{Logits: logits, Probs: Softmax64(logits), Attention: attn[:e.N]}
	pr.Predicted = argmax(pr.Probs)
	return pr, nil
}

// ForwardTrain runs the training forward (H&E + IHC when the variant has
// the IHC branch) without kernel masking, for parity checks: H&E logits and
// IHC logits (nil without the branch).
func (r *Runtime) ForwardTrain(p *Params, e *Example) (logits, logitsIHC []float32, err error) {
	if err := r.checkParams(p); err != nil {
		return nil, nil, err
	}
	if err := e.Check(r.Config); err != nil {
		return nil, nil, err
	}
	pk := pack(r.Config, e, nil, r.Config.HasIHC())
	args := append(r.forwardParams(p), r.heTensors(pk)...)
	if r.Config.HasIHC() {
		args = append(args, r.ihcTensors(pk)...)
	}
	outs, err := r.call(r.fwdTrain, args)
	if err != nil {
		return nil, nil, fmt.Errorf("model: %s: %w", e.ID, err)
	}
	defer finalize(outs)
	logits = tensors.MustCopyFlatData[float32](outs[0])
	if len(outs) > 1 {
		logitsIHC = tensors.MustCopyFlatData[float32](outs[1])
	}
	return logits, logitsIHC, nil
}

// GradResult is one example's loss, H&E logits and gradients (Specs order).
type GradResult struct {
	Loss   float64
	Logits []float32
	Grads  [][]float32
	// BNStats are the training graph's BatchNorm batch statistics (mean,
	// unbiased variance per module; SlideGraph+), for UpdateRunningStats.
	BNStats [][]float32
}

// Grad computes loss and gradients for one example. anchorsKept is the
// kernel-masking draw (nil: all anchors). With dropout in the config its
// masks come from seed 0: use GradSeed in training.
func (r *Runtime) Grad(p *Params, e *Example, anchorsKept []int) (GradResult, error) {
	return r.GradSeed(p, e, anchorsKept, 0)
}

// GradSeed is Grad with the dropout masks drawn from seed (ignored without
// dropout).
func (r *Runtime) GradSeed(p *Params, e *Example, anchorsKept []int, seed uint64) (GradResult, error) {
	if err := r.checkParams(p); err != nil {
		return GradResult{}, err
	}
	if err := e.Check(r.Config); err != nil {
		return GradResult{}, err
	}
	if e.Label < 0 {
		return GradResult{}, fmt.Errorf("model: %s: no label", e.ID)
	}
	if r.Config.HasIHC() && e.M == 0 {
		return GradResult{}, fmt.Errorf("model: %s: the %s variant trains on paired IHC, and this case has no IHC patches", e.ID, r.Config.Variant)
	}
	pk := pack(r.Config, e, anchorsKept, r.Config.HasIHC())
	args := append(r.forwardParams(p), r.heTensors(pk)...)
	if r.Config.HasIHC() {
		args = append(args, r.ihcTensors(pk)...)
	}
	args = append(args, tensors.FromScalar(int32(e.Label)))
	if r.Config.DropoutRate() > 0 {
		args = append(args, rngState(seed))
	}
	outs, err := r.call(r.grad, args)
	if err != nil {
		return GradResult{}, fmt.Errorf("model: %s: %w", e.ID, err)
	}
	defer finalize(outs)
	res := GradResult{
		Loss:   float64(tensors.MustCopyFlatData[float32](outs[0])[0]),
		Logits: tensors.MustCopyFlatData[float32](outs[1]),
		Grads:  make([][]float32, len(r.specs)),
	}
	for i := range r.specs {
		res.Grads[i] = tensors.MustCopyFlatData[float32](outs[2+i])
	}
	for _, o := range outs[2+len(r.specs):] {
		res.BNStats = append(res.BNStats, tensors.MustCopyFlatData[float32](o))
	}
	return res, nil
}

// call runs an exec, turning GoMLX panics into errors.
func (r *Runtime) call(e *Exec, args []any) (outs []*tensors.Tensor, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		// The data inputs (all after the cached parameter tensors) are freed.
		for _, a := range args[len(r.paramT):] {
			if t, ok := a.(*tensors.Tensor); ok {
				_ = t.FinalizeAll()
			}
		}
	}()
	var execErr error
	if panicErr := exceptions.TryCatch[error](func() { outs, execErr = e.Exec(args...) }); panicErr != nil {
		return nil, panicErr
	}
	return outs, execErr
}

// rngState is a Philox state for the graph's random ops from a seed
// (SplitMix64 over it: distinct seeds give unrelated states).
func rngState(seed uint64) *tensors.Tensor {
	st := make([]uint64, 3)
	x := seed
	for i := range st {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		st[i] = z ^ (z >> 31)
	}
	return tensors.FromFlatDataAndDimensions(st, 3)
}

func finalize(ts []*tensors.Tensor) {
	for _, t := range ts {
		_ = t.FinalizeAll()
	}
}
