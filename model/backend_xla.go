//go:build xla

package model

// Built with -tags xla, the binary can also run GoMLX's XLA backend through a
// PJRT plugin given by absolute path (GOMLX_BACKEND=xla:/abs/path/plugin.so),
// e.g. JAX's CUDA plugin on a GPU machine. Nothing is downloaded
// (NewBackend sets GOMLX_NO_AUTO_INSTALL).
import _ "github.com/gomlx/go-xla/compute/xla"
