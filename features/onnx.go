package features

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// ONNXEncoder runs an ONNX image encoder with ONNX Runtime. It owns its
// session; Run must be called from one goroutine at a time (the pipeline
// gives each encoder one owner).
type ONNXEncoder struct {
	man     Manifest
	path    string
	sum     string
	device  string
	sample  int // input elements per sample
	session *ort.DynamicAdvancedSession
}

var nameSanitizer = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// OpenONNX loads an encoder from an .onnx file. The contract comes from the
// manifest beside it (<model>.json) or, without one, from the graph: a
// float32 [N,3,S,S] input is the CLIP contract (CLIP normalisation,
// 256-px patches), a uint8 [N,P,P,3] input the raw one. Names, types and
// shapes are checked before the session is made.
func OpenONNX(path string, opt Options) (*ONNXEncoder, error) {
	base := path // the whole path: messages name the file as the user gave it
	fail := func(format string, a ...any) error {
		return fmt.Errorf("features: %s: "+format, append([]any{base}, a...)...)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fail("%w", unwrapPath(err))
	}
	if err := InitRuntime(opt.Library, opt.Device); err != nil {
		return nil, err
	}
	sum, err := FileSHA256(path)
	if err != nil {
		return nil, fail("%w", err)
	}
	man, found, err := ReadManifest(path)
	if err != nil {
		return nil, err
	}
	if found && man.SHA256 != "" && !strings.EqualFold(man.SHA256, sum) {
		return nil, fail("file checksum %s… does not match its manifest (%s…): the model changed after the manifest was written", sum[:12], man.SHA256[:min(12, len(man.SHA256))])
	}
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fail("not a loadable ONNX model: %s", oneLine(err.Error()))
	}
	if !found {
		if man, err = inferManifest(path, ins, outs); err != nil {
			return nil, fail("%v", err)
		}
		slog.Info("no encoder manifest; contract inferred from the graph", "model", base, "contract", man.Contract, "dim", man.Dim)
	}
	if err := man.Validate(); err != nil {
		return nil, fail("manifest: %v", err)
	}
	if err := checkIO(man, ins, outs); err != nil {
		return nil, fail("%v", err)
	}
	e := &ONNXEncoder{man: man, path: path, sum: sum}
	if man.Contract == ContractCLIP {
		e.sample = 3 * man.InputSize * man.InputSize
	} else {
		e.sample = man.PatchSize * man.PatchSize * 3
	}
	if err := e.newSession(opt); err != nil {
		return nil, fail("%v", err)
	}
	return e, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func inferManifest(path string, ins, outs []ort.InputOutputInfo) (Manifest, error) {
	if len(ins) != 1 {
		return Manifest{}, fmt.Errorf("%d inputs: an encoder takes exactly one image input (write a manifest if this is intended)", len(ins))
	}
	in := ins[0]
	d := in.Dimensions
	m := Manifest{
		Name:  nameSanitizer.ReplaceAllString(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), "_"),
		Input: in.Name,
	}
	switch {
	case in.DataType == ort.TensorElementDataTypeFloat && len(d) == 4 && d[1] == 3 && d[2] > 0 && d[2] == d[3]:
		m.Contract, m.InputSize, m.PatchSize = ContractCLIP, int(d[2]), 256
		m.Mean, m.Std = CLIPMean, CLIPStd
	case in.DataType == ort.TensorElementDataTypeUint8 && len(d) == 4 && d[3] == 3 && d[1] > 0 && d[1] == d[2]:
		m.Contract, m.PatchSize = ContractRaw, int(d[1])
	default:
		return m, fmt.Errorf("input %q is %s %v: expected float32 [N,3,S,S] (CLIP pixel_values) or uint8 [N,P,P,3] (raw patches)", in.Name, in.DataType, d)
	}
	out, err := pickOutput(outs, "")
	if err != nil {
		return m, err
	}
	m.Output = out.Name
	if len(out.Dimensions) == 2 && out.Dimensions[1] > 0 {
		m.Dim = int(out.Dimensions[1])
	}
	if m.Dim <= 0 {
		return m, fmt.Errorf("output %q has shape %v: expected [N,D] with a fixed D", out.Name, out.Dimensions)
	}
	return m, nil
}

// pickOutput returns the named output, or the only one, or image_embeds.
func pickOutput(outs []ort.InputOutputInfo, name string) (ort.InputOutputInfo, error) {
	var names []string
	for _, o := range outs {
		names = append(names, o.Name)
		if o.Name == name || (name == "" && (len(outs) == 1 || o.Name == "image_embeds")) {
			return o, nil
		}
	}
	if name == "" {
		return ort.InputOutputInfo{}, fmt.Errorf("%d outputs %v and none named image_embeds: write a manifest naming the output", len(outs), names)
	}
	return ort.InputOutputInfo{}, fmt.Errorf("no output %q (outputs: %v)", name, names)
}

// checkIO verifies that the graph matches the manifest.
func checkIO(m Manifest, ins, outs []ort.InputOutputInfo) error {
	if len(ins) != 1 {
		return fmt.Errorf("%d inputs: an encoder takes exactly one image input", len(ins))
	}
	in := ins[0]
	if in.Name != m.Input {
		return fmt.Errorf("input is named %q, manifest says %q", in.Name, m.Input)
	}
	d := in.Dimensions
	var want []int64
	var wantType ort.TensorElementDataType
	if m.Contract == ContractCLIP {
		want, wantType = []int64{-1, 3, int64(m.InputSize), int64(m.InputSize)}, ort.TensorElementDataTypeFloat
	} else {
		want, wantType = []int64{-1, int64(m.PatchSize), int64(m.PatchSize), 3}, ort.TensorElementDataTypeUint8
	}
	if in.DataType != wantType || len(d) != 4 {
		return fmt.Errorf("input %q is %s %v, the %s contract needs %s %v", in.Name, in.DataType, d, m.Contract, wantType, want)
	}
	for i := 1; i < 4; i++ {
		if d[i] != want[i] {
			return fmt.Errorf("input %q has shape %v, the %s contract needs %v (batch axis free)", in.Name, d, m.Contract, want)
		}
	}
	out, err := pickOutput(outs, m.Output)
	if err != nil {
		return err
	}
	if out.DataType != ort.TensorElementDataTypeFloat || len(out.Dimensions) != 2 || (out.Dimensions[1] > 0 && out.Dimensions[1] != int64(m.Dim)) {
		return fmt.Errorf("output %q is %s %v, want float32 [N,%d]", out.Name, out.DataType, out.Dimensions, m.Dim)
	}
	return nil
}

// ParseDevice splits "cpu", "cuda", "cuda:N" or "auto".
func ParseDevice(s string) (kind string, id int, err error) {
	switch {
	case s == "" || s == "cpu":
		return "cpu", 0, nil
	case s == "auto":
		return "auto", 0, nil
	case s == "cuda":
		return "cuda", 0, nil
	case strings.HasPrefix(s, "cuda:"):
		id, err := strconv.Atoi(s[5:])
		if err != nil || id < 0 {
			return "", 0, fmt.Errorf("features: bad device %q (cpu, cuda, cuda:N or auto)", s)
		}
		return "cuda", id, nil
	}
	return "", 0, fmt.Errorf("features: bad device %q (cpu, cuda, cuda:N or auto)", s)
}

// CUDAProviderFile is the library the CUDA execution provider lives in; it
// must sit beside a CUDA-enabled ONNX Runtime core library.
const CUDAProviderFile = "libonnxruntime_providers_cuda.so"

func (e *ONNXEncoder) newSession(opt Options) error {
	kind, id, err := ParseDevice(opt.Device)
	if err != nil {
		return err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return err
	}
	defer so.Destroy()
	if opt.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opt.Threads); err != nil {
			return err
		}
	}
	e.device = "cpu"
	if kind == "cuda" || kind == "auto" {
		cerr := appendCUDA(so, id)
		switch {
		case cerr == nil:
			e.device = fmt.Sprintf("cuda:%d", id)
		case kind == "cuda":
			return cerr
		default:
			slog.Warn("--device auto: CUDA unavailable, using the CPU", "reason", cerr.Error())
		}
	}
	s, err := ort.NewDynamicAdvancedSession(e.path, []string{e.man.Input}, []string{e.man.Output}, so)
	if err != nil {
		return fmt.Errorf("create session on %s: %s", e.device, oneLine(err.Error()))
	}
	e.session = s
	return nil
}

// appendCUDA adds the CUDA execution provider, first checking that its
// library is there so the error can say which file is missing.
func appendCUDA(so *ort.SessionOptions, id int) error {
	lib, _ := RuntimeInfo()
	prov := filepath.Join(filepath.Dir(lib), CUDAProviderFile)
	if _, err := os.Stat(prov); err != nil {
		return fmt.Errorf("CUDA provider library %s is missing (the CPU build of ONNX Runtime from onnxruntime-node has none): run `scripts/fetch-onnxruntime.sh gpu` (ONNX Runtime 1.29.0 for CUDA 13; bin/pipeline then finds it, and `make install` installs it), or point %s or --ort-lib at another CUDA-enabled build", prov, LibraryEnv)
	}
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		// A core library built without CUDA (e.g. ORT 1.29 from npm's
		// com.github.asus4.onnxruntime) takes the CUDA provider as a plugin.
		if perr := appendPluginEP(so, lib, prov, "CUDAExecutionProvider", "cuda", id); perr != nil {
			return fmt.Errorf("CUDA execution provider: %s; as a plugin provider: %s", oneLine(err.Error()), oneLine(perr.Error()))
		}
		return nil
	}
	defer co.Destroy()
	if err := co.Update(map[string]string{"device_id": strconv.Itoa(id)}); err != nil {
		return fmt.Errorf("CUDA provider options: %s", oneLine(err.Error()))
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return fmt.Errorf("CUDA execution provider: %s", oneLine(err.Error()))
	}
	return nil
}

func (e *ONNXEncoder) Name() string       { return e.man.Name }
func (e *ONNXEncoder) Dim() int           { return e.man.Dim }
func (e *ONNXEncoder) PatchSize() int     { return e.man.PatchSize }
func (e *ONNXEncoder) Checksum() string   { return e.sum }
func (e *ONNXEncoder) Device() string     { return e.device }
func (e *ONNXEncoder) Manifest() Manifest { return e.man }

// Close frees the session.
func (e *ONNXEncoder) Close() error {
	if e.session == nil {
		return nil
	}
	err := e.session.Destroy()
	e.session = nil
	return err
}

// onnxBatch holds the full-size ONNX Runtime tensors over a batch's buffers.
type onnxBatch struct {
	in  ort.Value
	out *ort.Tensor[float32]
}

func (o *onnxBatch) close() {
	if o.in != nil {
		o.in.Destroy()
	}
	if o.out != nil {
		o.out.Destroy()
	}
}

// NewBatch allocates an input buffer and its tensors for capacity samples.
func (e *ONNXEncoder) NewBatch(capacity int) (*Batch, error) {
	if capacity <= 0 {
		return nil, fmt.Errorf("features: batch capacity %d", capacity)
	}
	b := &Batch{Cap: capacity, sample: e.sample}
	ob := &onnxBatch{}
	var err error
	if e.man.Contract == ContractCLIP {
		b.F32 = make([]float32, capacity*e.sample)
		ob.in, err = ort.NewTensor(e.inputShape(capacity), b.F32)
	} else {
		b.U8 = make([]uint8, capacity*e.sample)
		ob.in, err = ort.NewTensor(e.inputShape(capacity), b.U8)
	}
	if err == nil {
		ob.out, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(capacity), int64(e.man.Dim)))
	}
	if err != nil {
		ob.close()
		return nil, fmt.Errorf("features: batch of %d: %w", capacity, err)
	}
	b.impl = ob
	return b, nil
}

func (e *ONNXEncoder) inputShape(n int) ort.Shape {
	if e.man.Contract == ContractCLIP {
		s := int64(e.man.InputSize)
		return ort.NewShape(int64(n), 3, s, s)
	}
	p := int64(e.man.PatchSize)
	return ort.NewShape(int64(n), p, p, 3)
}

// Run embeds the batch's first N samples.
func (e *ONNXEncoder) Run(b *Batch) ([]float32, error) {
	ob, ok := b.impl.(*onnxBatch)
	if !ok || b.sample != e.sample {
		return nil, errors.New("features: batch was not made by this encoder")
	}
	if e.session == nil {
		return nil, errors.New("features: encoder is closed")
	}
	if b.N <= 0 || b.N > b.Cap {
		return nil, fmt.Errorf("features: batch holds %d of %d samples", b.N, b.Cap)
	}
	in, out := ob.in, ob.out
	if b.N < b.Cap {
		// A short batch (a slide's last): tensors of the right size over
		// the same memory.
		var err error
		if e.man.Contract == ContractCLIP {
			in, err = ort.NewTensor(e.inputShape(b.N), b.F32)
		} else {
			in, err = ort.NewTensor(e.inputShape(b.N), b.U8)
		}
		if err != nil {
			return nil, fmt.Errorf("features: %w", err)
		}
		defer in.Destroy()
		out, err = ort.NewTensor(ort.NewShape(int64(b.N), int64(e.man.Dim)), ob.out.GetData())
		if err != nil {
			return nil, fmt.Errorf("features: %w", err)
		}
		defer out.Destroy()
	}
	if err := e.session.Run([]ort.Value{in}, []ort.Value{out}); err != nil {
		return nil, fmt.Errorf("features: %s: run: %s", e.man.Name, oneLine(err.Error()))
	}
	return ob.out.GetData()[:b.N*e.man.Dim], nil
}

// onnxPreparer converts patches for one encoder's contract.
type onnxPreparer struct {
	e   *ONNXEncoder
	pre *Preprocessor
}

// NewPreparer returns a preparer for this encoder's contract (one per
// goroutine: it keeps resampling scratch space).
func (e *ONNXEncoder) NewPreparer() Preparer {
	p := &onnxPreparer{e: e}
	if e.man.Contract == ContractCLIP {
		p.pre = NewPreprocessor(e.man.PatchSize, e.man.InputSize, e.man.Mean, e.man.Std)
	}
	return p
}

func (p *onnxPreparer) Prepare(patch *raster.RGB, b *Batch, slot int) error {
	if slot < 0 || slot >= b.Cap || b.sample != p.e.sample {
		return fmt.Errorf("features: slot %d of a batch of %d", slot, b.Cap)
	}
	if patch.W != p.e.man.PatchSize || patch.H != p.e.man.PatchSize {
		return fmt.Errorf("features: %s takes %d px patches, got %dx%d", p.e.man.Name, p.e.man.PatchSize, patch.W, patch.H)
	}
	if p.pre != nil {
		return p.pre.Into(patch, b.F32[slot*b.sample:(slot+1)*b.sample])
	}
	copy(b.U8[slot*b.sample:(slot+1)*b.sample], patch.Pix)
	return nil
}

// Embed is a convenience for small jobs and tests: it embeds patches in
// batches of up to batch and returns len(patches)×Dim features.
func Embed(e Encoder, patches []*raster.RGB, batch int) ([]float32, error) {
	if batch <= 0 {
		batch = 32
	}
	b, err := e.NewBatch(min(batch, max(1, len(patches))))
	if err != nil {
		return nil, err
	}
	defer b.Close()
	prep := e.NewPreparer()
	out := make([]float32, 0, len(patches)*e.Dim())
	for start := 0; start < len(patches); start += b.Cap {
		b.N = min(b.Cap, len(patches)-start)
		for i := 0; i < b.N; i++ {
			if err := prep.Prepare(patches[start+i], b, i); err != nil {
				return nil, err
			}
		}
		f, err := e.Run(b)
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
	}
	return out, nil
}
