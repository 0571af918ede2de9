package metrics

import (
	"fmt"
	"os"

	"github.com/her2wsi/her2wsi/internal/atomicfile"
)

// writeAtomic writes path through write on a temporary file that
// atomicfile commits (fsync, rename, fsync of the directory); the temporary
// file is removed on any error.
func writeAtomic(path string, write func(*os.File) error) error {
	f, err := atomicfile.CreateAtomic(path)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer f.Abort()
	if err := write(f.File); err != nil {
		return fmt.Errorf("metrics: %s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
