package store

// #include <stdlib.h>
// #include "h5shim.h"
import "C"

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"unsafe"
)

// H5Reader reads an HDF5 file written by this package, h5py, CLAM or TRIDENT.
// Its calls are serialised by the package lock, so it may be shared.
type H5Reader struct {
	h5file
}

// OpenH5 opens an existing HDF5 file read-only.
func OpenH5(path string) (*H5Reader, error) {
	if st, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fs.ErrNotExist
		}
		return nil, fmt.Errorf("store: %s: %w", path, err)
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("store: %s: not a regular file", path)
	}
	r := &H5Reader{h5file{path: path, id: -1}}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	lock()
	defer unlock()
	if r.id = C.store_file_open(cpath); r.id < 0 {
		return nil, r.fail("", h5err("open"))
	}
	return r, nil
}

// Close closes the file; later calls are no-ops.
func (r *H5Reader) Close() error {
	lock()
	defer unlock()
	return r.close()
}

// Has reports whether a dataset or group called name exists.
func (r *H5Reader) Has(name string) bool {
	lock()
	defer unlock()
	return r.id >= 0 && r.exists(name)
}

// Dims returns the shape of a dataset.
func (r *H5Reader) Dims(name string) ([]int, error) {
	lock()
	defer unlock()
	d, err := r.open(name, kindDataset)
	if err != nil {
		return nil, err
	}
	defer C.H5Oclose(d)
	space := C.H5Dget_space(d)
	if space < 0 {
		return nil, r.fail(describe(kindDataset, name), h5err("dataspace"))
	}
	defer C.H5Sclose(space)
	return r.extent(space, describe(kindDataset, name))
}

// ReadInt64 reads a whole integer dataset of any width and sign as int64
// (values beyond the int64 range are clipped), with its shape.
func (r *H5Reader) ReadInt64(name string) ([]int64, []int, error) {
	return read[int64](r, name, tInt64, nil)
}

// ReadFloat32 reads a whole float dataset (float16, float32 or float64) as
// float32, with its shape.
func (r *H5Reader) ReadFloat32(name string) ([]float32, []int, error) {
	return read[float32](r, name, tFloat32, nil)
}

// ReadUint8 reads a whole uint8 dataset, with its shape.
func (r *H5Reader) ReadUint8(name string) ([]uint8, []int, error) {
	return read[uint8](r, name, tUint8, nil)
}

// ReadInt64Rows reads rows [start, start+count) along the first axis, like
// ReadInt64.
func (r *H5Reader) ReadInt64Rows(name string, start, count int) ([]int64, error) {
	v, _, err := read[int64](r, name, tInt64, &[2]int{start, count})
	return v, err
}

// ReadFloat32Rows reads rows [start, start+count) along the first axis, like
// ReadFloat32, so large feature files can be streamed.
func (r *H5Reader) ReadFloat32Rows(name string, start, count int) ([]float32, error) {
	v, _, err := read[float32](r, name, tFloat32, &[2]int{start, count})
	return v, err
}

// read reads a dataset, or the rows [rows[0], rows[0]+rows[1]) of it, as t.
func read[T int64 | float32 | uint8](r *H5Reader, name string, t dtype, rows *[2]int) ([]T, []int, error) {
	obj := describe(kindDataset, name)
	lock()
	defer unlock()
	d, err := r.open(name, kindDataset)
	if err != nil {
		return nil, nil, err
	}
	defer C.H5Oclose(d)
	if err := checkType(d, t); err != nil {
		return nil, nil, r.fail(obj, err)
	}
	fspace := C.H5Dget_space(d)
	if fspace < 0 {
		return nil, nil, r.fail(obj, h5err("dataspace"))
	}
	defer C.H5Sclose(fspace)
	dims, err := r.extent(fspace, obj)
	if err != nil {
		return nil, nil, err
	}
	mspace := C.hid_t(C.H5S_ALL)
	if rows != nil {
		start, count := rows[0], rows[1]
		if len(dims) == 0 || start < 0 || count < 0 || start > dims[0]-count {
			return nil, nil, r.fail(obj, fmt.Errorf("rows [%d,%d) outside shape %v", start, start+count, dims))
		}
		dims[0] = count
		if count > 0 {
			off := make([]C.hsize_t, len(dims))
			cnt := make([]C.hsize_t, len(dims))
			for i, n := range dims {
				cnt[i] = C.hsize_t(n)
			}
			off[0] = C.hsize_t(start)
			if C.H5Sselect_hyperslab(fspace, C.H5S_SELECT_SET, &off[0], nil, &cnt[0], nil) < 0 {
				return nil, nil, r.fail(obj, h5err("select rows"))
			}
			if mspace = C.H5Screate_simple(C.int(len(cnt)), &cnt[0], nil); mspace < 0 {
				return nil, nil, r.fail(obj, h5err("dataspace"))
			}
			defer C.H5Sclose(mspace)
		}
	}
	n := 1
	for _, v := range dims {
		n *= v
	}
	out := make([]T, n)
	if n > 0 {
		fsel := fspace
		if rows == nil {
			fsel = C.H5S_ALL
		}
		if C.H5Dread(d, C.store_mem_type(C.int(t)), mspace, fsel, C.H5P_DEFAULT, unsafe.Pointer(&out[0])) < 0 {
			return nil, nil, r.fail(obj, h5err("read"))
		}
	}
	return out, dims, nil
}

// extent returns the dimensions of a simple or scalar dataspace.
func (r *H5Reader) extent(space C.hid_t, obj string) ([]int, error) {
	rank := C.H5Sget_simple_extent_ndims(space)
	if rank < 0 {
		return nil, r.fail(obj, h5err("dataspace"))
	}
	if rank == 0 {
		return []int{}, nil
	}
	hd := make([]C.hsize_t, rank)
	if C.H5Sget_simple_extent_dims(space, &hd[0], nil) < 0 {
		return nil, r.fail(obj, h5err("dataspace"))
	}
	dims := make([]int, rank)
	for i, v := range hd {
		dims[i] = int(v)
	}
	return dims, nil
}

// checkType accepts integer datasets for int64, float datasets for float32
// and unsigned 8-bit datasets for uint8.
func checkType(d C.hid_t, t dtype) error {
	ft := C.H5Dget_type(d)
	if ft < 0 {
		return h5err("datatype")
	}
	defer C.H5Tclose(ft)
	class, size := C.H5Tget_class(ft), int(C.H5Tget_size(ft))
	var ok bool
	var want string
	switch t {
	case tInt64:
		ok, want = class == C.H5T_INTEGER, "integer"
	case tFloat32:
		ok, want = class == C.H5T_FLOAT, "float"
	case tUint8:
		ok, want = class == C.H5T_INTEGER && size == 1 && C.H5Tget_sign(ft) == C.H5T_SGN_NONE, "uint8"
	}
	if ok {
		return nil
	}
	stored := fmt.Sprintf("class-%d", int(class))
	switch class {
	case C.H5T_INTEGER:
		stored = "integer"
	case C.H5T_FLOAT:
		stored = "float"
	case C.H5T_STRING:
		stored = "string"
	}
	return fmt.Errorf("stored type is %d-byte %s, want %s", size, stored, want)
}

// Attr returns attribute key of object ("" or "/" for the root, a group or a
// dataset): int64 or []int64 for integers of any width, float64 or []float64
// for floats, string or []string for fixed- or variable-length strings. A
// scalar attribute gives a scalar, an array attribute a slice.
func (r *H5Reader) Attr(object, key string) (any, error) {
	obj := fmt.Sprintf("attribute %q of %q", key, "/"+strings.Trim(object, "/"))
	lock()
	defer unlock()
	o, err := r.open(object, kindAny)
	if err != nil {
		return nil, err
	}
	defer C.H5Oclose(o)
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	switch ex := C.H5Aexists(o, ckey); {
	case ex < 0:
		return nil, r.fail(obj, h5err("open"))
	case ex == 0:
		return nil, r.fail(obj, ErrNotFound)
	}
	a := C.H5Aopen(o, ckey, C.H5P_DEFAULT)
	if a < 0 {
		return nil, r.fail(obj, h5err("open"))
	}
	defer C.H5Aclose(a)
	ft := C.H5Aget_type(a)
	if ft < 0 {
		return nil, r.fail(obj, h5err("datatype"))
	}
	defer C.H5Tclose(ft)
	space := C.H5Aget_space(a)
	if space < 0 {
		return nil, r.fail(obj, h5err("dataspace"))
	}
	defer C.H5Sclose(space)
	n := int(C.H5Sget_simple_extent_npoints(space))
	scalar := C.H5Sget_simple_extent_type(space) == C.H5S_SCALAR

	var v any
	switch class := C.H5Tget_class(ft); class {
	case C.H5T_INTEGER:
		v, err = readAttr[int64](a, C.store_mem_type(C.T_INT64), n, scalar)
	case C.H5T_FLOAT:
		v, err = readAttr[float64](a, C.store_mem_type(C.T_FLOAT64), n, scalar)
	case C.H5T_STRING:
		v, err = readStrings(a, ft, n, scalar)
	default:
		err = fmt.Errorf("unsupported attribute type class %d", int(class))
	}
	if err != nil {
		return nil, r.fail(obj, err)
	}
	return v, nil
}

func readAttr[T int64 | float64](a, mtype C.hid_t, n int, scalar bool) (any, error) {
	v := make([]T, n)
	if n > 0 && C.H5Aread(a, mtype, unsafe.Pointer(&v[0])) < 0 {
		return nil, h5err("read")
	}
	if scalar && n == 1 {
		return v[0], nil
	}
	return v, nil
}

// readStrings reads n fixed- or variable-length strings; ft also serves as
// the memory type, since a datatype read from a file is a memory type.
func readStrings(a, ft C.hid_t, n int, scalar bool) (any, error) {
	v := make([]string, n)
	switch {
	case n == 0:
	case C.H5Tis_variable_str(ft) > 0:
		ptrs := unsafe.Slice((**C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil))))), n)
		defer C.free(unsafe.Pointer(&ptrs[0]))
		if C.H5Aread(a, ft, unsafe.Pointer(&ptrs[0])) < 0 {
			return nil, h5err("read")
		}
		for i, p := range ptrs {
			if p != nil {
				v[i] = C.GoString(p)
				C.H5free_memory(unsafe.Pointer(p))
			}
		}
	default:
		size := int(C.H5Tget_size(ft))
		buf := make([]byte, n*size)
		if size > 0 && C.H5Aread(a, ft, unsafe.Pointer(&buf[0])) < 0 {
			return nil, h5err("read")
		}
		spacePad := C.H5Tget_strpad(ft) == C.H5T_STR_SPACEPAD
		for i := range v {
			s := buf[i*size : (i+1)*size]
			if j := strings.IndexByte(string(s), 0); j >= 0 {
				s = s[:j]
			}
			v[i] = string(s)
			if spacePad {
				v[i] = strings.TrimRight(v[i], " ")
			}
		}
	}
	if scalar && n == 1 {
		return v[0], nil
	}
	return v, nil
}

// AttrNames lists the attribute names of object in name order.
func (r *H5Reader) AttrNames(object string) ([]string, error) {
	return r.names(object, kindAny, true)
}

// List lists the members (groups and datasets) of group ("" or "/" for the
// root) in name order.
func (r *H5Reader) List(group string) ([]string, error) {
	return r.names(group, kindGroup, false)
}

// names lists in name order the attribute names (attrs) or the link names
// of the object at path, which must be of kind.
func (r *H5Reader) names(path string, kind C.H5I_type_t, attrs bool) ([]string, error) {
	lock()
	defer unlock()
	o, err := r.open(path, kind)
	if err != nil {
		return nil, err
	}
	defer C.H5Oclose(o)
	obj := describe(kind, path)
	dot := C.CString(".")
	defer C.free(unsafe.Pointer(dot))
	var n C.long
	verb := "list"
	if attrs {
		n, verb = C.store_attr_count(o), "list attributes"
	} else {
		n = C.store_link_count(o)
	}
	if n < 0 {
		return nil, r.fail(obj, h5err(verb))
	}
	// get is the i-th name: its length without a buffer, else written to buf.
	get := func(i C.hsize_t, buf *C.char, size C.size_t) C.ssize_t {
		if attrs {
			return C.H5Aget_name_by_idx(o, dot, C.H5_INDEX_NAME, C.H5_ITER_INC, i, buf, size, C.H5P_DEFAULT)
		}
		return C.H5Lget_name_by_idx(o, dot, C.H5_INDEX_NAME, C.H5_ITER_INC, i, buf, size, C.H5P_DEFAULT)
	}
	out := make([]string, 0, n)
	for i := range C.hsize_t(n) {
		l := get(i, nil, 0)
		if l < 0 {
			return nil, r.fail(obj, h5err("name"))
		}
		buf := make([]C.char, l+1)
		if get(i, &buf[0], C.size_t(l+1)) < 0 {
			return nil, r.fail(obj, h5err("name"))
		}
		out = append(out, C.GoString(&buf[0]))
	}
	return out, nil
}

// layout reports whether a dataset is chunked and how many filters it has
// (for tests).
func (r *H5Reader) layout(name string) (chunked bool, filters int, err error) {
	lock()
	defer unlock()
	d, err := r.open(name, kindDataset)
	if err != nil {
		return false, 0, err
	}
	defer C.H5Oclose(d)
	var nf C.int
	c := C.store_dataset_layout(d, &nf)
	if c < 0 {
		return false, 0, r.fail(describe(kindDataset, name), h5err("layout"))
	}
	return c == 1, int(nf), nil
}
