package store

// #include <stdlib.h>
// #include "h5shim.h"
import "C"

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
	"unsafe"
)

const (
	// chunkBytes: datasets larger than this are chunked (about this much per
	// chunk) and compressed (shuffle + gzip); smaller ones are contiguous.
	chunkBytes = 1 << 20
	gzipLevel  = 4
)

// H5Writer writes one HDF5 file under a temporary name; Commit moves it into
// place. A writer has one owner; its calls are serialised by the package lock.
//
//	w, err := store.CreateH5(path)
//	if err != nil { return err }
//	defer w.Abort()
//	... w.WriteInt64("coords", xy, n, 2) ...
//	return w.Commit()
type H5Writer struct {
	h5file
	tmp  string
	done bool
}

// CreateH5 creates a new HDF5 file that will appear at path on Commit.
func CreateH5(path string) (*H5Writer, error) {
	w := &H5Writer{h5file: h5file{path: path, id: -1}, tmp: TempPath(path)}
	ctmp := C.CString(w.tmp)
	defer C.free(unsafe.Pointer(ctmp))
	lock()
	defer unlock()
	if w.id = C.store_file_create(ctmp); w.id < 0 {
		err := w.fail("", h5err("create"))
		os.Remove(w.tmp)
		return nil, err
	}
	return w, nil
}

// Commit closes the file and renames it into place atomically.
func (w *H5Writer) Commit() error {
	if w.done {
		return fmt.Errorf("store: %s: commit: file already committed or aborted", w.path)
	}
	w.done = true
	lock()
	err := w.close()
	unlock()
	if err != nil {
		os.Remove(w.tmp)
		return err
	}
	return CommitPath(w.tmp, w.path)
}

// Abort closes and removes the temporary file; a no-op after Commit or Abort.
func (w *H5Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	lock()
	w.close()
	unlock()
	os.Remove(w.tmp)
}

// WriteInt64 writes a dataset of int64 with the given dims (default: 1-D).
// name may contain '/': missing groups are created.
func (w *H5Writer) WriteInt64(name string, data []int64, dims ...int) error {
	return w.write(name, tInt64, unsafe.Pointer(unsafe.SliceData(data)), len(data), dims)
}

// WriteFloat32 writes a dataset of float32 with the given dims (default: 1-D).
func (w *H5Writer) WriteFloat32(name string, data []float32, dims ...int) error {
	return w.write(name, tFloat32, unsafe.Pointer(unsafe.SliceData(data)), len(data), dims)
}

// WriteUint8 writes a dataset of uint8 with the given dims (default: 1-D).
func (w *H5Writer) WriteUint8(name string, data []uint8, dims ...int) error {
	return w.write(name, tUint8, unsafe.Pointer(unsafe.SliceData(data)), len(data), dims)
}

// write stores n elements of type t at buf as a new dataset.
func (w *H5Writer) write(name string, t dtype, buf unsafe.Pointer, n int, dims []int) error {
	obj := describe(kindDataset, name)
	if len(dims) == 0 {
		dims = []int{n}
	}
	hdims := make([]C.hsize_t, len(dims))
	total := 1
	for i, d := range dims {
		if d < 0 {
			return w.fail(obj, fmt.Errorf("negative dimension in %v", dims))
		}
		total *= d
		hdims[i] = C.hsize_t(d)
	}
	if total != n {
		return w.fail(obj, fmt.Errorf("%d values do not fill dims %v (%d)", n, dims, total))
	}
	var chunk *C.hsize_t
	if size := n * t.size(); size > chunkBytes {
		c := make([]C.hsize_t, len(dims))
		copy(c, hdims)
		c[0] = C.hsize_t(max(1, min(dims[0], chunkBytes/(size/dims[0]))))
		chunk = &c[0]
	}

	lock()
	defer unlock()
	cname, err := w.prepare(name, obj)
	if err != nil {
		return err
	}
	defer C.free(unsafe.Pointer(cname))
	space := C.H5Screate_simple(C.int(len(hdims)), &hdims[0], nil)
	if space < 0 {
		return w.fail(obj, h5err("create dataspace"))
	}
	defer C.H5Sclose(space)
	d := C.store_dataset_create(w.id, cname, C.int(t), space, C.int(len(hdims)), chunk, gzipLevel)
	if d < 0 {
		return w.fail(obj, h5err("create"))
	}
	defer C.H5Dclose(d)
	if n > 0 && C.H5Dwrite(d, C.store_mem_type(C.int(t)), C.H5S_ALL, C.H5S_ALL, C.H5P_DEFAULT, buf) < 0 {
		return w.fail(obj, h5err("write"))
	}
	return nil
}

// prepare checks that name is new, creates its parent groups and returns it
// as a C string (freed by the caller).
func (w *H5Writer) prepare(name, obj string) (*C.char, error) {
	if w.id < 0 {
		return nil, w.closed()
	}
	parts, err := splitName(name)
	if err == nil && len(parts) == 0 {
		err = errors.New("empty name")
	}
	if err != nil {
		return nil, w.fail(obj, err)
	}
	if w.exists(name) {
		return nil, w.fail(obj, errors.New("already exists"))
	}
	if err := w.mkdirAll(parts[:len(parts)-1]); err != nil {
		return nil, err
	}
	return C.CString(strings.Join(parts, "/")), nil
}

// mkdirAll creates the groups along parts that do not exist yet.
func (w *H5Writer) mkdirAll(parts []string) error {
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		if w.exists(p) {
			g, err := w.open(p, kindGroup)
			if err != nil {
				return err
			}
			C.H5Oclose(g)
			continue
		}
		cp := C.CString(p)
		g := C.store_group_create(w.id, cp)
		C.free(unsafe.Pointer(cp))
		if g < 0 {
			return w.fail(describe(kindGroup, p), h5err("create"))
		}
		C.H5Gclose(g)
	}
	return nil
}

// CreateGroup creates the group name and any missing parents; an existing
// group is not an error.
func (w *H5Writer) CreateGroup(name string) error {
	lock()
	defer unlock()
	if w.id < 0 {
		return w.closed()
	}
	parts, err := splitName(name)
	if err != nil {
		return w.fail(describe(kindGroup, name), err)
	}
	return w.mkdirAll(parts)
}

// SetAttr sets (or replaces) attribute key on object: "" or "/" for the root,
// a group or a dataset. Supported values: int, int64, float64, string (stored
// as variable-length UTF-8, which h5py reads as str), []int64, []float64 and
// []string. Scalars are stored with a scalar dataspace, slices as 1-D arrays.
func (w *H5Writer) SetAttr(object, key string, value any) error {
	obj := fmt.Sprintf("attribute %q of %q", key, "/"+strings.Trim(object, "/"))
	var (
		t      dtype
		buf    unsafe.Pointer
		n      = 1
		scalar = true
		strs   []string
	)
	switch v := value.(type) {
	case int:
		x := int64(v)
		t, buf = tInt64, unsafe.Pointer(&x)
	case int64:
		t, buf = tInt64, unsafe.Pointer(&v)
	case float64:
		t, buf = tFloat64, unsafe.Pointer(&v)
	case []int64:
		t, buf, n, scalar = tInt64, unsafe.Pointer(unsafe.SliceData(v)), len(v), false
	case []float64:
		t, buf, n, scalar = tFloat64, unsafe.Pointer(unsafe.SliceData(v)), len(v), false
	case string:
		strs = []string{v}
	case []string:
		strs, n, scalar = v, len(v), false
	default:
		return w.fail(obj, fmt.Errorf("unsupported attribute type %T", value))
	}
	for _, s := range strs {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return w.fail(obj, fmt.Errorf("string %q is not NUL-free UTF-8", s))
		}
	}
	if key == "" {
		return w.fail(obj, errors.New("empty attribute name"))
	}

	lock()
	defer unlock()
	o, err := w.open(object, kindAny)
	if err != nil {
		return err
	}
	defer C.H5Oclose(o)
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	if ex := C.H5Aexists(o, ckey); ex < 0 || (ex > 0 && C.H5Adelete(o, ckey) < 0) {
		return w.fail(obj, h5err("replace"))
	}

	var space C.hid_t
	if scalar {
		space = C.H5Screate(C.H5S_SCALAR)
	} else {
		dim := C.hsize_t(n)
		space = C.H5Screate_simple(1, &dim, nil)
	}
	if space < 0 {
		return w.fail(obj, h5err("create dataspace"))
	}
	defer C.H5Sclose(space)

	ftype, mtype := C.store_file_type(C.int(t)), C.store_mem_type(C.int(t))
	if strs != nil {
		if ftype = C.store_vlen_utf8(); ftype < 0 {
			return w.fail(obj, h5err("string type"))
		}
		defer C.H5Tclose(ftype)
		mtype = ftype
		ptrs := make([]*C.char, max(n, 1))
		for i, s := range strs {
			ptrs[i] = C.CString(s)
			defer C.free(unsafe.Pointer(ptrs[i]))
		}
		// C memory: the array handed to C must not hold Go pointers.
		arr := (**C.char)(C.malloc(C.size_t(len(ptrs)) * C.size_t(unsafe.Sizeof(ptrs[0]))))
		defer C.free(unsafe.Pointer(arr))
		copy(unsafe.Slice(arr, len(ptrs)), ptrs)
		buf = unsafe.Pointer(arr)
	}
	a := C.H5Acreate2(o, ckey, ftype, space, C.H5P_DEFAULT, C.H5P_DEFAULT)
	if a < 0 {
		return w.fail(obj, h5err("create"))
	}
	defer C.H5Aclose(a)
	if n > 0 && C.H5Awrite(a, mtype, buf) < 0 {
		return w.fail(obj, h5err("write"))
	}
	return nil
}

// Attr is one attribute for SetAttrs.
type Attr struct {
	Key   string
	Value any
}

// SetAttrs sets attributes on object in the order given (a fixed order
// keeps files byte-identical across runs).
func (w *H5Writer) SetAttrs(object string, attrs ...Attr) error {
	for _, a := range attrs {
		if err := w.SetAttr(object, a.Key, a.Value); err != nil {
			return err
		}
	}
	return nil
}
