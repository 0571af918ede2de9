package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/her2wsi/her2wsi/internal/testutil"
)

// create writes an HDF5 file at path with fill and commits it.
func create(t testing.TB, path string, fill func(w *H5Writer) error) {
	t.Helper()
	w, err := CreateH5(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := fill(w); err != nil {
		t.Fatal(err)
	}
	if n := w.openCount(); n != 1 {
		t.Fatalf("writer holds %d open identifiers, want 1 (the file)", n)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, path string) *H5Reader {
	t.Helper()
	r, err := OpenH5(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n := r.openCount(); r.id >= 0 && n != 1 {
			t.Errorf("reader holds %d open identifiers, want 1 (the file)", n)
		}
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		if n := openCountAll(); n != 0 {
			t.Errorf("%d HDF5 identifiers still open after Close", n)
		}
	})
	return r
}

func seq[T int64 | float32 | uint8](n int, f func(i int) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// datasets are written by the round-trip and determinism tests.
var datasets = []struct {
	desc    string
	name    string
	data    any // []int64, []float32 or []uint8
	dims    []int
	want    []int // dims read back
	chunked bool
}{
	{"coords", "coords", []int64{0, 0, 256, 0, 512, 256}, []int{3, 2}, []int{3, 2}, false},
	{"1-D default dims", "index", []int64{5, -1, 1 << 40, math.MinInt64}, nil, []int{4}, false},
	{"features", "features", []float32{0.5, -1, float32(math.Inf(1)), 3e-38, 0, 1e6}, []int{2, 3}, []int{2, 3}, false},
	{"uint8 image in group", "thumb/rgb", seq(12, func(i int) uint8 { return uint8(i * 20) }), []int{2, 2, 3}, []int{2, 2, 3}, false},
	{"nested groups", "ppk_18/deep/anchor_index", []int64{3, 14, 15}, nil, []int{3}, false},
	{"zero rows int64", "empty/coords", []int64{}, []int{0, 2}, []int{0, 2}, false},
	{"zero rows float32 nil slice", "empty/features", []float32(nil), []int{0, 512}, []int{0, 512}, false},
	{"zero rows uint8", "empty/u8", []uint8{}, []int{0}, []int{0}, false},
	{"large features are chunked", "big", seq(700*512, func(i int) float32 { return float32(i%977) / 7 }), []int{700, 512}, []int{700, 512}, true},
}

var attrs = []struct {
	object, key string
	in, want    any
}{
	{"", "patch_size", 256, int64(256)},
	{"/", "level", int64(-1), int64(-1)},
	{"", "target_mpp", 0.5, 0.5},
	{"", "encoder", "plip", "plip"},
	{"", "unit", "µm/px ✓", "µm/px ✓"},
	{"", "empty", "", ""},
	{"coords", "patch_size_level0", 512, int64(512)},
	{"coords", "shape_hint", []int64{3, 2}, []int64{3, 2}},
	{"coords", "none", []int64{}, []int64{}},
	{"ppk_18", "bins", []float64{0.25, math.Pi}, []float64{0.25, math.Pi}},
	{"ppk_18/deep", "labels", []string{"0", "1+", "2+", "3+"}, []string{"0", "1+", "2+", "3+"}},
	{"big", "nan", math.NaN(), math.NaN()},
}

func writeSample(w *H5Writer) error {
	for _, d := range datasets {
		var err error
		switch v := d.data.(type) {
		case []int64:
			err = w.WriteInt64(d.name, v, d.dims...)
		case []float32:
			err = w.WriteFloat32(d.name, v, d.dims...)
		case []uint8:
			err = w.WriteUint8(d.name, v, d.dims...)
		}
		if err != nil {
			return err
		}
	}
	if err := w.CreateGroup("unused/empty"); err != nil {
		return err
	}
	if err := w.SetAttr("", "encoder", "replaced below"); err != nil {
		return err
	}
	for _, a := range attrs {
		if err := w.SetAttr(a.object, a.key, a.in); err != nil {
			return err
		}
	}
	return nil
}

func TestH5RoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "features.h5")
	create(t, path, writeSample)
	r := open(t, path)

	for _, d := range datasets {
		t.Run(d.desc, func(t *testing.T) {
			var got any
			var dims []int
			var err error
			switch d.data.(type) {
			case []int64:
				got, dims, err = r.ReadInt64(d.name)
			case []float32:
				got, dims, err = r.ReadFloat32(d.name)
			case []uint8:
				got, dims, err = r.ReadUint8(d.name)
			}
			if err != nil {
				t.Fatal(err)
			}
			want := reflect.ValueOf(d.data)
			if reflect.ValueOf(got).Len() != want.Len() || (want.Len() > 0 && !reflect.DeepEqual(got, d.data)) {
				t.Errorf("read %v, want %v", got, d.data)
			}
			if !slices.Equal(dims, d.want) {
				t.Errorf("dims %v, want %v", dims, d.want)
			}
			if shape, err := r.Dims(d.name); err != nil || !slices.Equal(shape, d.want) {
				t.Errorf("Dims = %v, %v; want %v", shape, err, d.want)
			}
			chunked, filters, err := r.layout(d.name)
			if err != nil || chunked != d.chunked || (chunked && filters != 2) || (!chunked && filters != 0) {
				t.Errorf("layout chunked=%v filters=%d err=%v, want chunked=%v", chunked, filters, err, d.chunked)
			}
		})
	}

	t.Run("attributes", func(t *testing.T) {
		for _, a := range attrs {
			got, err := r.Attr(a.object, a.key)
			if err != nil {
				t.Errorf("%s/%s: %v", a.object, a.key, err)
				continue
			}
			if f, ok := a.want.(float64); ok && math.IsNaN(f) {
				if g, ok := got.(float64); !ok || !math.IsNaN(g) {
					t.Errorf("%s/%s = %#v, want NaN", a.object, a.key, got)
				}
				continue
			}
			if !reflect.DeepEqual(got, a.want) {
				t.Errorf("%s/%s = %#v (%T), want %#v (%T)", a.object, a.key, got, got, a.want, a.want)
			}
		}
		names, err := r.AttrNames("/")
		want := []string{"empty", "encoder", "level", "patch_size", "target_mpp", "unit"}
		if err != nil || !slices.Equal(names, want) {
			t.Errorf("AttrNames(/) = %v, %v; want %v", names, err, want)
		}
		if names, err := r.AttrNames("features"); err != nil || len(names) != 0 {
			t.Errorf("AttrNames(features) = %v, %v; want none", names, err)
		}
	})

	t.Run("groups", func(t *testing.T) {
		tests := []struct {
			group string
			want  []string
		}{
			{"", []string{"big", "coords", "empty", "features", "index", "ppk_18", "thumb", "unused"}},
			{"/ppk_18", []string{"deep"}},
			{"ppk_18/deep/", []string{"anchor_index"}},
			{"empty", []string{"coords", "features", "u8"}},
			{"unused/empty", nil},
		}
		for _, tc := range tests {
			got, err := r.List(tc.group)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("List(%q) = %v, %v; want %v", tc.group, got, err, tc.want)
			}
		}
		for name, want := range map[string]bool{"": true, "coords": true, "ppk_18": true, "ppk_18/deep/anchor_index": true,
			"ppk_9": false, "coords/x": false, "ppk_18/missing/x": false, "a//b": false} {
			if got := r.Has(name); got != want {
				t.Errorf("Has(%q) = %v", name, got)
			}
		}
	})
}

// writeTyped writes a dataset of a type the exported writer does not offer,
// as other producers (h5py, CLAM, TRIDENT) may.
func writeTyped[T int32 | uint16 | float64](w *H5Writer, name string, t dtype, data []T, dims ...int) error {
	return w.write(name, t, unsafe.Pointer(unsafe.SliceData(data)), len(data), dims)
}

func TestH5ReadConverts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.h5")
	create(t, path, func(w *H5Writer) error {
		return errors.Join(
			writeTyped(w, "coords_i32", tInt32, []int32{-5, 7, math.MaxInt32, 0}, 2, 2),
			writeTyped(w, "u16", tUint16, []uint16{0, math.MaxUint16}),
			writeTyped(w, "features_f64", tFloat64, []float64{0.1, -2.5, 1e300, 0}, 2, 2),
		)
	})
	r := open(t, path)
	if v, dims, err := r.ReadInt64("coords_i32"); err != nil || !slices.Equal(v, []int64{-5, 7, math.MaxInt32, 0}) || !slices.Equal(dims, []int{2, 2}) {
		t.Errorf("int32 → int64: %v %v %v", v, dims, err)
	}
	if v, _, err := r.ReadInt64("u16"); err != nil || !slices.Equal(v, []int64{0, math.MaxUint16}) {
		t.Errorf("uint16 → int64: %v %v", v, err)
	}
	v, _, err := r.ReadFloat32("features_f64")
	if want := []float32{0.1, -2.5, float32(math.Inf(1)), 0}; err != nil || !slices.Equal(v, want) {
		t.Errorf("float64 → float32: %v %v, want %v", v, err, want)
	}
	if rows, err := r.ReadFloat32Rows("features_f64", 1, 1); err != nil || !slices.Equal(rows, []float32{float32(math.Inf(1)), 0}) {
		t.Errorf("float64 rows: %v %v", rows, err)
	}
}

func TestH5Rows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rows.h5")
	const n, d = 700, 512 // chunked: row ranges cross chunk boundaries
	feats := seq(n*d, func(i int) float32 { return float32(i) })
	coords := seq(n*2, func(i int) int64 { return int64(i) })
	create(t, path, func(w *H5Writer) error {
		return errors.Join(w.WriteFloat32("features", feats, n, d), w.WriteInt64("coords", coords, n, 2),
			w.WriteFloat32("small", feats[:6*d], 6, d), w.WriteFloat32("empty", nil, 0, d))
	})
	r := open(t, path)
	tests := []struct {
		name         string
		start, count int
		wantErr      bool
	}{
		{"features", 0, 1, false},
		{"features", 0, n, false},
		{"features", 510, 100, false},
		{"features", n - 1, 1, false},
		{"features", n, 0, false},
		{"small", 2, 3, false},
		{"empty", 0, 0, false},
		{"features", n - 1, 2, true},
		{"features", -1, 1, true},
		{"features", 0, -1, true},
		{"empty", 0, 1, true},
		{"missing", 0, 1, true},
	}
	for _, tc := range tests {
		got, err := r.ReadFloat32Rows(tc.name, tc.start, tc.count)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("%s[%d:+%d]: error %v, want one naming the file", tc.name, tc.start, tc.count, err)
			}
			continue
		}
		if want := feats[tc.start*d : (tc.start+tc.count)*d]; err != nil || len(got) != len(want) || !slices.Equal(got, want) {
			t.Errorf("%s[%d:+%d]: %d values, %v", tc.name, tc.start, tc.count, len(got), err)
		}
	}
	if got, err := r.ReadInt64Rows("coords", 100, 3); err != nil || !slices.Equal(got, coords[200:206]) {
		t.Errorf("coords rows: %v %v", got, err)
	}
}

func TestH5WriteErrors(t *testing.T) {
	dir := t.TempDir()
	w, err := CreateH5(filepath.Join(dir, "coords.h5"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.WriteInt64("coords", []int64{1, 2}, 1, 2); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() error
		want string
		is   error
	}{
		{"dims do not match", func() error { return w.WriteInt64("x", []int64{1, 2, 3}, 2, 2) }, `dataset "x": 3 values do not fill dims [2 2] (4)`, nil},
		{"negative dims", func() error { return w.WriteUint8("x", nil, -1) }, "negative dimension", nil},
		{"duplicate", func() error { return w.WriteFloat32("coords", []float32{1}) }, `dataset "coords": already exists`, nil},
		{"parent is a dataset", func() error { return w.WriteInt64("coords/x", []int64{1}) }, `group "/coords": is a dataset`, nil},
		{"empty name", func() error { return w.WriteInt64("/", []int64{1}) }, "empty name", nil},
		{"bad name", func() error { return w.WriteInt64("a/../b", []int64{1}) }, "bad object name", nil},
		{"group over dataset", func() error { return w.CreateGroup("coords") }, "is a dataset", nil},
		{"unsupported attribute", func() error { return w.SetAttr("", "flag", true) }, "unsupported attribute type bool", nil},
		{"attribute on missing object", func() error { return w.SetAttr("nope", "k", 1) }, `object "/nope": not found`, ErrNotFound},
		{"invalid utf-8", func() error { return w.SetAttr("", "k", "\xff") }, "not NUL-free UTF-8", nil},
		{"empty attribute name", func() error { return w.SetAttr("", "", 1) }, "empty attribute name", nil},
	}
	stderr := captureStderr(t, func() {
		for _, tc := range tests {
			err := tc.do()
			if err == nil || !strings.HasPrefix(err.Error(), "store: "+w.path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%s: %v is not %v", tc.name, err, tc.is)
			}
		}
	})
	if stderr != "" {
		t.Errorf("HDF5 wrote to stderr:\n%s", stderr)
	}
	if n := w.openCount(); n != 1 {
		t.Errorf("%d identifiers open after failed writes, want 1", n)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInt64("late", []int64{1}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("write after Commit: %v", err)
	}
	if got := testutil.DirNames(t, dir); !slices.Equal(got, []string{"coords.h5"}) {
		t.Errorf("directory holds %v", got)
	}
}

func TestH5ReadErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "coords.h5")
	create(t, good, writeSample)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	truncated := write("truncated.h5", data[:len(data)/2])
	notHDF5 := write("slide.json", []byte(`{"not":"hdf5"}`))
	empty := write("empty.h5", nil)

	openTests := []struct {
		name, path, want string
		is               error
	}{
		{"missing file", filepath.Join(dir, "missing.h5"), "file does not exist", fs.ErrNotExist},
		{"not HDF5", notHDF5, "signature", nil},
		{"empty file", empty, "signature", nil},
		{"truncated", truncated, "truncated file", nil},
		{"directory", dir, "not a regular file", nil},
	}
	r := open(t, good)
	readTests := []struct {
		name string
		do   func() error
		want string
		is   error
	}{
		{"missing dataset", func() error { _, _, err := r.ReadInt64("nope"); return err }, `dataset "nope": not found`, ErrNotFound},
		{"missing nested", func() error { _, _, err := r.ReadFloat32("ppk_9/anchor_index"); return err }, "not found", ErrNotFound},
		{"below a dataset", func() error { _, err := r.Dims("coords/x"); return err }, "not found", ErrNotFound},
		{"float from int", func() error { _, _, err := r.ReadFloat32("coords"); return err }, "stored type is 8-byte integer, want float", nil},
		{"int from float", func() error { _, _, err := r.ReadInt64("features"); return err }, "stored type is 4-byte float, want integer", nil},
		{"uint8 from int64", func() error { _, _, err := r.ReadUint8("coords"); return err }, "want uint8", nil},
		{"dataset is a group", func() error { _, err := r.Dims("ppk_18"); return err }, `dataset "ppk_18": is a group`, nil},
		{"list a dataset", func() error { _, err := r.List("coords"); return err }, `group "/coords": is a dataset`, nil},
		{"missing attribute", func() error { _, err := r.Attr("coords", "nope"); return err }, `attribute "nope" of "/coords": not found`, ErrNotFound},
		{"attribute of missing object", func() error { _, err := r.Attr("nope", "k"); return err }, "not found", ErrNotFound},
		{"attribute names of missing", func() error { _, err := r.AttrNames("nope"); return err }, "not found", ErrNotFound},
	}

	stderr := captureStderr(t, func() {
		for _, tc := range openTests {
			r, err := OpenH5(tc.path)
			if err == nil {
				r.Close()
				t.Errorf("%s: opened", tc.name)
				continue
			}
			if !strings.HasPrefix(err.Error(), "store: "+tc.path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %q, want one naming the file and %q", tc.name, err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%s: %v is not %v", tc.name, err, tc.is)
			}
		}
		for _, tc := range readTests {
			err := tc.do()
			if err == nil || !strings.HasPrefix(err.Error(), "store: "+good+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%s: %v is not %v", tc.name, err, tc.is)
			}
		}
	})
	if stderr != "" {
		t.Errorf("HDF5 wrote to stderr:\n%s", stderr)
	}
	if n := openCountAll(); n != 1 {
		t.Errorf("%d identifiers open after failed opens and reads, want 1 (the good file)", n)
	}

	closed, err := OpenH5(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(closed.Close(), closed.Close()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := closed.ReadInt64("coords"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("read after Close: %v", err)
	}
	if closed.Has("coords") {
		t.Error("Has after Close")
	}
}

func TestH5Abort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "anchors.h5")
	w, err := CreateH5(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInt64("ppk_18/anchor_index", []int64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.DirNames(t, dir); len(got) != 1 || !IsTemp(got[0]) {
		t.Fatalf("while writing the directory holds %v, want one temp file", got)
	}
	w.Abort()
	w.Abort()
	if err := w.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	if got := testutil.DirNames(t, dir); len(got) != 0 {
		t.Errorf("Abort left %v", got)
	}
	if n := openCountAll(); n != 0 {
		t.Errorf("%d identifiers open after Abort", n)
	}
	if _, err := CreateH5(filepath.Join(dir, "missing", "x.h5")); err == nil || !strings.Contains(err.Error(), "missing/x.h5") {
		t.Errorf("CreateH5 in a missing directory: %v", err)
	}
}

func TestH5Deterministic(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.h5"), filepath.Join(dir, "b.h5")
	create(t, a, writeSample)
	create(t, b, writeSample)
	da, err1 := os.ReadFile(a)
	db, err2 := os.ReadFile(b)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(da, db) {
		t.Errorf("same content gave different bytes (%d and %d bytes)", len(da), len(db))
	}
}

func TestH5Concurrent(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			path := filepath.Join(dir, fmt.Sprintf("%d.h5", i))
			w, err := CreateH5(path)
			if err != nil {
				errs <- err
				return
			}
			defer w.Abort()
			want := seq(64*8, func(j int) float32 { return float32(i*1000 + j) })
			if err := errors.Join(w.WriteFloat32("f", want, 64, 8), w.SetAttr("f", "i", i), w.Commit()); err != nil {
				errs <- err
				return
			}
			r, err := OpenH5(path)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			for k := range 8 {
				got, err := r.ReadFloat32Rows("f", k*8, 8)
				if err != nil || !slices.Equal(got, want[k*64:(k+1)*64]) {
					errs <- fmt.Errorf("file %d rows %d: %v", i, k, err)
				}
			}
			if _, err := r.Attr("f", "missing"); !errors.Is(err, ErrNotFound) {
				errs <- fmt.Errorf("file %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := openCountAll(); n != 0 {
		t.Errorf("%d identifiers open", n)
	}
}

func TestH5Dump(t *testing.T) {
	if _, err := exec.LookPath("h5dump"); err != nil {
		t.Skip("h5dump not on PATH (apt-get install hdf5-tools)")
	}
	path := filepath.Join(t.TempDir(), "coords.h5")
	create(t, path, func(w *H5Writer) error {
		return errors.Join(w.WriteInt64("coords", []int64{0, 0, 256, 0, 512, 256}, 3, 2),
			w.SetAttr("", "encoder", "plip"), w.SetAttr("coords", "patch_size", 256))
	})
	out, err := exec.Command("h5dump", path).CombinedOutput()
	if err != nil {
		t.Fatalf("h5dump: %v\n%s", err, out)
	}
	for _, want := range []string{
		`DATASET "coords"`,
		"DATATYPE  H5T_STD_I64LE",
		"DATASPACE  SIMPLE { ( 3, 2 ) / ( 3, 2 ) }",
		"(0,0): 0, 0,",
		"(2,0): 512, 256",
		`ATTRIBUTE "encoder"`,
		"STRSIZE H5T_VARIABLE;",
		"CSET H5T_CSET_UTF8;",
		`(0): "plip"`,
		`ATTRIBUTE "patch_size"`,
		"(0): 256",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("h5dump output lacks %q:\n%s", want, out)
		}
	}
}

const python = "/usr/bin/python3"

func needH5py(t *testing.T) {
	if err := exec.Command(python, "-c", "import h5py").Run(); err != nil {
		t.Skip("h5py not installed (apt-get install python3-h5py)")
	}
}

// TestH5py checks that h5py reads our files with the expected types.
func TestH5py(t *testing.T) {
	needH5py(t)
	path := filepath.Join(t.TempDir(), "features.h5")
	create(t, path, writeSample)
	script := `
import sys, json, h5py
f = h5py.File(sys.argv[1], "r")
out = {}
for name in ["coords", "features", "thumb/rgb", "empty/coords", "big"]:
    out[name] = [str(f[name].dtype), list(f[name].shape)]
out["coords[2]"] = f["coords"][2].tolist()
for obj, key in [("/", "encoder"), ("/", "unit"), ("/", "patch_size"), ("/", "target_mpp"),
                 ("coords", "shape_hint"), ("ppk_18", "bins"), ("ppk_18/deep", "labels")]:
    v = f[obj].attrs[key]
    out[obj + "@" + key] = [type(v).__name__, str(getattr(v, "dtype", "")), v.tolist() if hasattr(v, "tolist") else v]
print(json.dumps(out))
`
	out, err := exec.Command(python, "-c", script, path).Output()
	if err != nil {
		t.Fatalf("h5py: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := map[string]any{
		"coords":             []any{"int64", []any{3.0, 2.0}},
		"features":           []any{"float32", []any{2.0, 3.0}},
		"thumb/rgb":          []any{"uint8", []any{2.0, 2.0, 3.0}},
		"empty/coords":       []any{"int64", []any{0.0, 2.0}},
		"big":                []any{"float32", []any{700.0, 512.0}},
		"coords[2]":          []any{512.0, 256.0},
		"/@encoder":          []any{"str", "", "plip"},
		"/@unit":             []any{"str", "", "µm/px ✓"},
		"/@patch_size":       []any{"int64", "int64", 256.0},
		"/@target_mpp":       []any{"float64", "float64", 0.5},
		"coords@shape_hint":  []any{"ndarray", "int64", []any{3.0, 2.0}},
		"ppk_18@bins":        []any{"ndarray", "float64", []any{0.25, math.Pi}},
		"ppk_18/deep@labels": []any{"ndarray", "object", []any{"0", "1+", "2+", "3+"}},
	}
	for k, v := range want {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("h5py %s = %v, want %v", k, got[k], v)
		}
	}
}

// TestReadH5pyFile reads a file written by h5py the way CLAM and TRIDENT
// write theirs, with other integer and float widths and string kinds.
func TestReadH5pyFile(t *testing.T) {
	needH5py(t)
	path := filepath.Join(t.TempDir(), "clam.h5")
	script := `
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    d = f.create_dataset("coords", data=np.array([[0, 0], [256, 512]], dtype=np.int32))
    d.attrs["patch_size"] = np.int32(256)
    d.attrs["patch_level"] = 0
    d.attrs["downsample"] = np.array([1.0, 1.0], dtype=np.float32)
    d.attrs["name"] = np.bytes_("slide-1")
    d.attrs["vlen"] = "é"
    f.create_dataset("features", data=np.arange(8, dtype=np.float64).reshape(2, 4) / 4, compression="gzip")
    f.create_dataset("half", data=np.array([0.5, -2], dtype=np.float16))
    f.create_dataset("mask", data=np.array([[1, 0]], dtype=np.uint8))
    f.attrs["fixed"] = np.array([b"ab", b"cd"], dtype="S3")
`
	if out, err := exec.Command(python, "-c", script, path).CombinedOutput(); err != nil {
		t.Fatalf("h5py: %v\n%s", err, out)
	}
	r := open(t, path)
	if v, dims, err := r.ReadInt64("coords"); err != nil || !slices.Equal(v, []int64{0, 0, 256, 512}) || !slices.Equal(dims, []int{2, 2}) {
		t.Errorf("coords: %v %v %v", v, dims, err)
	}
	if v, _, err := r.ReadFloat32("features"); err != nil || !slices.Equal(v, []float32{0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75}) {
		t.Errorf("features: %v %v", v, err)
	}
	if v, err := r.ReadFloat32Rows("features", 1, 1); err != nil || !slices.Equal(v, []float32{1, 1.25, 1.5, 1.75}) {
		t.Errorf("features rows: %v %v", v, err)
	}
	if v, _, err := r.ReadFloat32("half"); err != nil || !slices.Equal(v, []float32{0.5, -2}) {
		t.Errorf("float16: %v %v", v, err)
	}
	if v, _, err := r.ReadUint8("mask"); err != nil || !slices.Equal(v, []uint8{1, 0}) {
		t.Errorf("mask: %v %v", v, err)
	}
	for _, a := range []struct {
		object, key string
		want        any
	}{
		{"coords", "patch_size", int64(256)},
		{"coords", "patch_level", int64(0)},
		{"coords", "downsample", []float64{1, 1}},
		{"coords", "name", "slide-1"},
		{"coords", "vlen", "é"},
		{"/", "fixed", []string{"ab", "cd"}},
	} {
		if got, err := r.Attr(a.object, a.key); err != nil || !reflect.DeepEqual(got, a.want) {
			t.Errorf("%s@%s = %#v, %v; want %#v", a.object, a.key, got, err, a.want)
		}
	}
}

func BenchmarkWriteFloat32(b *testing.B) {
	const n, d = 20000, 512
	feats := seq(n*d, func(i int) float32 { return float32(math.Sin(float64(i))) })
	dir := b.TempDir()
	b.ReportAllocs()
	b.SetBytes(int64(len(feats) * 4))
	for i := 0; b.Loop(); i++ {
		path := filepath.Join(dir, fmt.Sprintf("%d.h5", i%2))
		create(b, path, func(w *H5Writer) error { return w.WriteFloat32("features", feats, n, d) })
	}
}
