package featfile

import (
	"path/filepath"
	"testing"
)

func TestFeatureFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.h5")
	feats := []float32{1, 2, 3, 4, 5, 6}
	coords := []int64{0, 0, 256, 0, 512, 256}
	info := Info{Encoder: "x", EncoderSHA256: "abc", CoordsSHA256: "def", TargetMPP: 0.5, PatchSize: 256, PatchSizeLevel0: 512, Source: "test"}
	if err := Write(p, feats, coords, 2, info); err != nil {
		t.Fatal(err)
	}
	got, n, dim, err := ReadInfo(p)
	if err != nil || got != info || n != 3 || dim != 2 {
		t.Fatalf("ReadInfo = %+v %d %d %v", got, n, dim, err)
	}
	f, c, d, err := Read(p)
	if err != nil || d != 2 || len(f) != 6 || f[5] != 6 || c[4] != 512 {
		t.Fatalf("ReadFile = %v %v %d %v", f, c, d, err)
	}
	if err := Write(p, feats[:5], coords, 2, info); err == nil {
		t.Error("mismatched shapes written")
	}
}
