package store

import "github.com/her2wsi/her2wsi/internal/atomicfile"

// The atomic-write helpers live in the pure-Go package atomicfile; these
// names keep store's callers (and cgo-free packages use atomicfile directly).
var (
	TempPath        = atomicfile.TempPath
	IsTemp          = atomicfile.IsTemp
	CleanTemps      = atomicfile.CleanTemps
	WriteFileAtomic = atomicfile.WriteFileAtomic
	CreateAtomic    = atomicfile.CreateAtomic
	CommitPath      = atomicfile.CommitPath
)

// AtomicFile is atomicfile.AtomicFile.
type AtomicFile = atomicfile.AtomicFile
