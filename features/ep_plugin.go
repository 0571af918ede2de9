package features

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "ep_plugin.h"
*/
import "C"

import (
	"errors"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// appendPluginEP appends a plugin execution provider (ORT ≥ 1.22 style: the
// provider library exports CreateEpFactories) for the gpu-th GPU it lists.
func appendPluginEP(so *ort.SessionOptions, lib, providerPath, epName, match string, gpu int) error {
	cl, cn, cp, ce, cm := C.CString(lib), C.CString(epName), C.CString(providerPath), C.CString(epName), C.CString(match)
	defer C.free(unsafe.Pointer(cm))
	defer C.free(unsafe.Pointer(cl))
	defer C.free(unsafe.Pointer(cn))
	defer C.free(unsafe.Pointer(cp))
	defer C.free(unsafe.Pointer(ce))
	// onnxruntime_go's SessionOptions holds the C pointer as its only field.
	raw := *(*unsafe.Pointer)(unsafe.Pointer(so))
	msg := C.her2_ep_append(cl, cn, cp, ce, cm, C.int(gpu), raw, nil, nil, 0)
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}
