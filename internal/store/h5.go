package store

/*
#cgo pkg-config: hdf5
#include <stdlib.h>
#include "h5shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// ErrNotFound is wrapped by errors for a missing dataset, group or attribute.
var ErrNotFound = errors.New("not found")

// mu serialises every call into the HDF5 library.
var mu sync.Mutex

// lock takes the HDF5 lock. The error stack and the automatic-printing switch
// belong to the calling OS thread in thread-safe builds, so the goroutine is
// pinned to its thread while it holds the lock and printing is switched off
// for that thread.
func lock() {
	mu.Lock()
	runtime.LockOSThread()
	C.store_quiet()
}

func unlock() {
	runtime.UnlockOSThread()
	mu.Unlock()
}

// dtype is an element type of a dataset, mirrored by the C enum.
type dtype C.int

const (
	tInt64   dtype = C.T_INT64
	tFloat32 dtype = C.T_FLOAT32
	tUint8   dtype = C.T_UINT8
	tInt32   dtype = C.T_INT32
	tUint16  dtype = C.T_UINT16
	tFloat64 dtype = C.T_FLOAT64
)

// size is the number of bytes of one element.
func (t dtype) size() int {
	switch t {
	case tInt64, tFloat64:
		return 8
	case tFloat32, tInt32:
		return 4
	case tUint16:
		return 2
	}
	return 1
}

// h5err turns the HDF5 error stack left by a failed call into an error. Call
// it right after the failing call, before any other HDF5 call clears the stack.
func h5err(op string) error {
	var api, cause [256]C.char
	C.store_last_error(&api[0], &cause[0], C.size_t(len(api)))
	// Messages may hold line breaks (file read errors quote a time stamp).
	a := strings.Join(strings.Fields(C.GoString(&api[0])), " ")
	c := strings.Join(strings.Fields(C.GoString(&cause[0])), " ")
	switch {
	case a == "" && c == "":
		return errors.New(op + " failed")
	case a == c || a == "":
		return errors.New(op + ": " + c)
	}
	return errors.New(op + ": " + a + ": " + c)
}

// h5file is what readers and writers share: the path named in errors and the
// open file.
type h5file struct {
	path string
	id   C.hid_t // -1 once closed
}

func (f *h5file) fail(obj string, err error) error {
	if obj == "" {
		return fmt.Errorf("store: %s: %w", f.path, err)
	}
	return fmt.Errorf("store: %s: %s: %w", f.path, obj, err)
}

func (f *h5file) closed() error {
	return fmt.Errorf("store: %s: file is closed", f.path)
}

// close closes the file (and, by the close degree, anything left open in it).
func (f *h5file) close() error {
	if f.id < 0 {
		return nil
	}
	id := f.id
	f.id = -1
	if C.H5Fclose(id) < 0 {
		return f.fail("", h5err("close"))
	}
	return nil
}

// splitName turns "a/b/c" or "/a/b/c" into components; "" and "/" are the root.
func splitName(name string) ([]string, error) {
	name = strings.Trim(name, "/")
	if name == "" {
		return nil, nil
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return nil, fmt.Errorf("bad object name %q", name)
		}
	}
	return parts, nil
}

// exists reports whether every link along name exists.
func (f *h5file) exists(name string) bool {
	parts, err := splitName(name)
	if err != nil {
		return false
	}
	for i := range parts {
		p := C.CString(strings.Join(parts[:i+1], "/"))
		ok := C.H5Lexists(f.id, p, C.H5P_DEFAULT) > 0
		C.free(unsafe.Pointer(p))
		if !ok {
			C.H5Eclear2(C.H5E_DEFAULT)
			return false
		}
	}
	return true
}

// kindAny, kindGroup and kindDataset select what open accepts.
const (
	kindAny     = C.H5I_BADID
	kindGroup   = C.H5I_GROUP
	kindDataset = C.H5I_DATASET
)

// describe names an object in errors: `dataset "coords"`, `group "/"`.
func describe(kind C.H5I_type_t, name string) string {
	switch kind {
	case kindDataset:
		return fmt.Sprintf("dataset %q", name)
	case kindGroup:
		return fmt.Sprintf("group %q", "/"+strings.Trim(name, "/"))
	}
	return fmt.Sprintf("object %q", "/"+strings.Trim(name, "/"))
}

// open opens an object of the given kind; the caller closes it with H5Oclose.
func (f *h5file) open(name string, kind C.H5I_type_t) (C.hid_t, error) {
	obj := describe(kind, name)
	if f.id < 0 {
		return -1, f.closed()
	}
	if _, err := splitName(name); err != nil {
		return -1, f.fail(obj, err)
	}
	if !f.exists(name) {
		return -1, f.fail(obj, ErrNotFound)
	}
	cname := C.CString("/" + strings.Trim(name, "/"))
	defer C.free(unsafe.Pointer(cname))
	id := C.H5Oopen(f.id, cname, C.H5P_DEFAULT)
	if id < 0 {
		return -1, f.fail(obj, h5err("open"))
	}
	if got := C.H5Iget_type(id); kind != kindAny && got != kind {
		C.H5Oclose(id)
		what := "a dataset"
		if got == kindGroup {
			what = "a group"
		}
		return -1, f.fail(obj, errors.New("is "+what))
	}
	return id, nil
}

// openCount is the number of HDF5 identifiers open in this file, the file
// itself included (for leak tests).
func (f *h5file) openCount() int {
	lock()
	defer unlock()
	return int(C.H5Fget_obj_count(f.id, C.H5F_OBJ_ALL))
}

// openCountAll is the number of HDF5 identifiers open in all files.
func openCountAll() int {
	lock()
	defer unlock()
	return int(C.H5Fget_obj_count(C.hid_t(C.H5F_OBJ_ALL), C.H5F_OBJ_ALL))
}
