package features

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/her2wsi/her2wsi/internal/raster"
)

// Encoder embeds RGB patches into D-dimensional features. The pipeline
// fills a Batch through per-goroutine Preparers (so preprocessing runs in the
// reader goroutines) and hands it to the one goroutine that owns the
// encoder, which calls Run.
type Encoder interface {
	Name() string     // used for the feature file name: features/<name>.h5
	Dim() int         // D
	PatchSize() int   // side of the RGB patches it takes
	Checksum() string // identifies the weights (SHA-256 of the model file)
	Device() string   // where it runs, e.g. "cpu" or "cuda:0"
	NewBatch(capacity int) (*Batch, error)
	NewPreparer() Preparer
	// Run embeds b.N prepared samples; the result (b.N×Dim) is valid until
	// the next Run on the same batch.
	Run(b *Batch) ([]float32, error)
	Close() error
}

// Preparer writes one patch into a batch slot; one per goroutine.
type Preparer interface {
	Prepare(patch *raster.RGB, b *Batch, slot int) error
}

// Batch is an input buffer of Cap samples, N of them filled.
type Batch struct {
	Cap, N int
	F32    []float32 // float inputs (CLIP contract), Cap×sample
	U8     []uint8   // byte inputs (raw contract), Cap×sample
	sample int
	impl   batchImpl
}

type batchImpl interface{ close() }

// Close frees what the batch holds (ONNX Runtime tensors).
func (b *Batch) Close() {
	if b != nil && b.impl != nil {
		b.impl.close()
		b.impl = nil
	}
}

// Options configure opening an encoder.
type Options struct {
	Device  string // cpu (default), cuda, cuda:N, auto (CUDA if it loads, else CPU)
	Threads int    // intra-op threads; 0 = ONNX Runtime's default
	Library string // ONNX Runtime library; "" = FindLibrary
}

// OpenFunc opens an encoder for a reference (name or path).
type OpenFunc func(ref string, opt Options) (Encoder, error)

var (
	regMu    sync.Mutex
	registry = map[string]OpenFunc{}
)

// Register makes an encoder available by name to Open.
func Register(name string, open OpenFunc) {
	regMu.Lock()
	defer regMu.Unlock()
	registry[name] = open
}

// Registered lists the registered names.
func Registered() []string {
	regMu.Lock()
	defer regMu.Unlock()
	var n []string
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ModelsEnv names the folder where encoders are looked up by name
// (<dir>/<name>.onnx or <dir>/<name>/<name>.onnx).
const ModelsEnv = "HER2WSI_MODELS"

// Open resolves ref to an encoder: a path to an .onnx file (any model
// following one of the two contracts), a registered name, or a name found
// as <name>.onnx in $HER2WSI_MODELS.
func Open(ref string, opt Options) (Encoder, error) {
	if ref == "" {
		return nil, errors.New("features: no encoder given (--encoder FILE.onnx or a name)")
	}
	if strings.HasSuffix(strings.ToLower(ref), ".onnx") || strings.ContainsRune(ref, os.PathSeparator) {
		return OpenONNX(ref, opt)
	}
	regMu.Lock()
	open, ok := registry[ref]
	regMu.Unlock()
	if ok {
		return open(ref, opt)
	}
	if dir := os.Getenv(ModelsEnv); dir != "" {
		for _, p := range []string{filepath.Join(dir, ref+".onnx"), filepath.Join(dir, ref, ref+".onnx")} {
			if _, err := os.Stat(p); err == nil {
				return OpenONNX(p, opt)
			}
		}
	}
	return nil, fmt.Errorf("features: unknown encoder %q: give a path to an .onnx file, a registered name (%s) or put %s.onnx in $%s", ref, strings.Join(Registered(), ", "), ref, ModelsEnv)
}
