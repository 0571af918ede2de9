package safetensors

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/her2wsi/her2wsi/internal/atomicfile"
)

// Write stores f at path atomically: it writes a temporary file
// ".<base>.tmp-<16 hex digits>" in the same directory (mode 0666 before
// umask), fsyncs it, renames it over path and fsyncs the directory. Readers
// see the old file or the complete new one; on error the temporary file is
// removed and an existing file at path is left as it was.
func Write(path string, f *File) error {
	if err := write(path, f); err != nil {
		var pe *fs.PathError
		var le *os.LinkError
		if errors.As(err, &pe) || errors.As(err, &le) {
			return fmt.Errorf("safetensors: %w", err) // names the file already
		}
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return nil
}

func write(path string, f *File) error {
	h, names, _, err := f.header()
	if err != nil {
		return err
	}
	tmp, err := atomicfile.CreateAtomic(path)
	if err != nil {
		return err
	}
	defer tmp.Abort()
	bw := bufio.NewWriterSize(tmp.File, 1<<20)
	if _, err := f.writeTo(bw, h, names); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return tmp.Commit()
}
