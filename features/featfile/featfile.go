// Package featfile reads and writes per-slide feature files in the
// TRIDENT/CLAM layout: `features` [N,D] float32 and `coords` [N,2] int64
// (level-0 top-left x,y) in the order of the slide's coords.h5, with
// attributes naming the encoder and the checksums the features depend on.
package featfile

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/her2wsi/her2wsi/internal/store"
)

// Info is what a feature file records besides its arrays.
type Info struct {
	Encoder         string  // encoder name
	EncoderSHA256   string  // checksum of the encoder's weights
	CoordsSHA256    string  // checksum of the coordinates the features belong to
	TargetMPP       float64 // µm/px of the patches
	PatchSize       int     // pixels at the target resolution
	PatchSizeLevel0 int     // grid step in level-0 pixels
	Source          string  // "her2wsi" or "imported: <file>"
}

// WriteFile writes a feature file atomically.
func Write(path string, feats []float32, coords []int64, dim int, info Info) error {
	n := len(coords) / 2
	if len(coords)%2 != 0 || dim <= 0 || len(feats) != n*dim {
		return fmt.Errorf("featfile: %s: %d features for %d coordinates of dim %d", filepath.Base(path), len(feats), n, dim)
	}
	w, err := store.CreateH5(path)
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := w.WriteFloat32("features", feats, n, dim); err != nil {
		return err
	}
	if err := w.WriteInt64("coords", coords, n, 2); err != nil {
		return err
	}
	if err := w.SetAttrs("",
		store.Attr{Key: "encoder", Value: info.Encoder},
		store.Attr{Key: "encoder_sha256", Value: info.EncoderSHA256},
		store.Attr{Key: "coords_sha256", Value: info.CoordsSHA256},
		store.Attr{Key: "target_mpp", Value: info.TargetMPP},
		store.Attr{Key: "patch_size", Value: int64(info.PatchSize)},
		store.Attr{Key: "patch_size_level0", Value: int64(info.PatchSizeLevel0)},
		store.Attr{Key: "source", Value: info.Source},
		store.Attr{Key: "dim", Value: int64(dim)},
	); err != nil {
		return err
	}
	return w.Commit()
}

// ReadInfo reads a feature file's attributes (missing ones stay zero) and
// its shape, without loading the features.
func ReadInfo(path string) (info Info, n, dim int, err error) {
	r, err := store.OpenH5(path)
	if err != nil {
		return info, 0, 0, err
	}
	defer r.Close()
	d, err := r.Dims("features")
	if err != nil {
		return info, 0, 0, err
	}
	if len(d) != 2 {
		return info, 0, 0, fmt.Errorf("featfile: %s: features has shape %v, want [N,D]", filepath.Base(path), d)
	}
	str := func(k string) string {
		v, _ := r.Attr("", k)
		s, _ := v.(string)
		return s
	}
	num := func(k string) float64 {
		v, _ := r.Attr("", k)
		switch x := v.(type) {
		case int64:
			return float64(x)
		case float64:
			return x
		}
		return 0
	}
	info = Info{
		Encoder: str("encoder"), EncoderSHA256: str("encoder_sha256"), CoordsSHA256: str("coords_sha256"),
		TargetMPP: num("target_mpp"), PatchSize: int(num("patch_size")), PatchSizeLevel0: int(num("patch_size_level0")),
		Source: str("source"),
	}
	return info, d[0], d[1], nil
}

// ReadFile loads a whole feature file (features as float32 whatever the
// stored float type, coords as int64 whatever the stored integer type) and
// checks that its arrays agree: N rows each, coords [N,2], finite values.
func Read(path string) (feats []float32, coords []int64, dim int, err error) {
	base := filepath.Base(path)
	r, err := store.OpenH5(path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer r.Close()
	feats, fd, err := r.ReadFloat32("features")
	if err != nil {
		return nil, nil, 0, err
	}
	if len(fd) != 2 || fd[1] <= 0 {
		return nil, nil, 0, fmt.Errorf("featfile: %s: features has shape %v, want [N,D]", base, fd)
	}
	coords, cd, err := r.ReadInt64("coords")
	if err != nil {
		return nil, nil, 0, err
	}
	if len(cd) != 2 || cd[1] != 2 {
		return nil, nil, 0, fmt.Errorf("featfile: %s: coords has shape %v, want [N,2]", base, cd)
	}
	if cd[0] != fd[0] {
		return nil, nil, 0, fmt.Errorf("featfile: %s: %d feature rows but %d coordinates", base, fd[0], cd[0])
	}
	for i, v := range feats {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, nil, 0, fmt.Errorf("featfile: %s: non-finite feature at row %d", base, i/fd[1])
		}
	}
	for i, c := range coords {
		if c < 0 {
			return nil, nil, 0, fmt.Errorf("featfile: %s: negative coordinate in row %d", base, i/2)
		}
	}
	return feats, coords, fd[1], nil
}
