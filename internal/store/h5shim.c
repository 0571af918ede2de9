// Small C helpers for the HDF5 shim: macros that cgo cannot evaluate, and
// steps that must keep the error stack intact while cleaning up.

#include <stdio.h>
#include "h5shim.h"

// close_keep closes id with fn without losing the error stack left by an
// earlier failure, so the caller can still report its cause.
static void close_keep(herr_t (*fn)(hid_t), hid_t id) {
	if (id < 0) return;
	hid_t stack = H5Eget_current_stack();
	fn(id);
	if (stack >= 0) H5Eset_current_stack(stack);
}

// store_mem_type is the in-memory type of an element type. The H5T_NATIVE_*
// and H5T_STD_* names are macros that call H5open(), which cgo cannot
// evaluate, hence these helpers.
hid_t store_mem_type(int t) {
	switch (t) {
	case T_INT64: return H5T_NATIVE_INT64;
	case T_FLOAT32: return H5T_NATIVE_FLOAT;
	case T_UINT8: return H5T_NATIVE_UINT8;
	case T_INT32: return H5T_NATIVE_INT32;
	case T_UINT16: return H5T_NATIVE_UINT16;
	case T_FLOAT64: return H5T_NATIVE_DOUBLE;
	}
	return -1;
}

// store_file_type is the little-endian standard type stored in files, so the
// bytes do not depend on the machine that wrote them.
hid_t store_file_type(int t) {
	switch (t) {
	case T_INT64: return H5T_STD_I64LE;
	case T_FLOAT32: return H5T_IEEE_F32LE;
	case T_UINT8: return H5T_STD_U8LE;
	case T_INT32: return H5T_STD_I32LE;
	case T_UINT16: return H5T_STD_U16LE;
	case T_FLOAT64: return H5T_IEEE_F64LE;
	}
	return -1;
}

// store_vlen_utf8 is a variable-length UTF-8 string type (h5py reads it as str).
hid_t store_vlen_utf8(void) {
	hid_t t = H5Tcopy(H5T_C_S1);
	if (t < 0) return -1;
	if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0 ||
	    H5Tset_strpad(t, H5T_STR_NULLTERM) < 0) {
		close_keep(H5Tclose, t);
		return -1;
	}
	return t;
}

void store_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

struct store_errbuf { char *api, *cause; size_t n; };

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
	struct store_errbuf *b = data;
	if (e->desc == NULL) return 0;
	if (n == 0) snprintf(b->api, b->n, "%s", e->desc);
	snprintf(b->cause, b->n, "%s", e->desc);
	return 0;
}

// store_last_error copies the outermost (API) and innermost (cause) messages
// of the calling thread's error stack, then clears it.
void store_last_error(char *api, char *cause, size_t n) {
	struct store_errbuf b = {api, cause, n};
	api[0] = cause[0] = 0;
	H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, walk_cb, &b);
	H5Eclear2(H5E_DEFAULT);
}

// Property lists: no object timestamps (deterministic bytes), file format
// readable by HDF5 1.8 and later (h5py, CLAM, TRIDENT), and a file close that
// closes everything still open in it.
static hid_t make_plist(hid_t cls, int track_times) {
	hid_t p = H5Pcreate(cls);
	if (p >= 0 && !track_times && H5Pset_obj_track_times(p, 0) < 0) {
		close_keep(H5Pclose, p);
		return -1;
	}
	return p;
}

hid_t store_file_create(const char *name) {
	hid_t fcpl = make_plist(H5P_FILE_CREATE, 0);
	hid_t fapl = make_plist(H5P_FILE_ACCESS, 1);
	hid_t f = -1;
	if (fcpl >= 0 && fapl >= 0 &&
	    H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_V18) >= 0 &&
	    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0)
		f = H5Fcreate(name, H5F_ACC_EXCL, fcpl, fapl);
	close_keep(H5Pclose, fcpl);
	close_keep(H5Pclose, fapl);
	return f;
}

hid_t store_file_open(const char *name) {
	hid_t fapl = make_plist(H5P_FILE_ACCESS, 1);
	hid_t f = -1;
	if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0)
		f = H5Fopen(name, H5F_ACC_RDONLY, fapl);
	close_keep(H5Pclose, fapl);
	return f;
}

hid_t store_group_create(hid_t loc, const char *name) {
	hid_t gcpl = make_plist(H5P_GROUP_CREATE, 0);
	hid_t g = -1;
	if (gcpl >= 0) g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
	close_keep(H5Pclose, gcpl);
	return g;
}

// store_dataset_create makes a dataset, chunked and compressed (byte shuffle
// + gzip, where the deflate filter is available) when chunk is not NULL,
// contiguous otherwise. The shuffle makes float data compress better and
// decompress much faster than gzip alone.
hid_t store_dataset_create(hid_t loc, const char *name, int t, hid_t space, int rank,
                           const hsize_t *chunk, int gzip) {
	hid_t dcpl = make_plist(H5P_DATASET_CREATE, 0);
	hid_t d = -1;
	int ok = dcpl >= 0;
	if (ok && chunk != NULL) {
		ok = H5Pset_chunk(dcpl, rank, chunk) >= 0;
		if (ok && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0)
			ok = H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, gzip) >= 0;
	}
	if (ok)
		d = H5Dcreate2(loc, name, store_file_type(t), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
	close_keep(H5Pclose, dcpl);
	return d;
}

static herr_t count_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
	(*(long *)data)++;
	return 0;
}

long store_attr_count(hid_t obj) {
	long n = 0;
	hsize_t idx = 0;
	if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, count_cb, &n) < 0) return -1;
	return n;
}

long store_link_count(hid_t group) {
	H5G_info_t info;
	if (H5Gget_info(group, &info) < 0) return -1;
	return (long)info.nlinks;
}

// store_dataset_layout reports 1 for a chunked dataset, 0 for another layout,
// and the number of filters.
int store_dataset_layout(hid_t d, int *nfilters) {
	hid_t p = H5Dget_create_plist(d);
	if (p < 0) return -1;
	int chunked = H5Pget_layout(p) == H5D_CHUNKED;
	*nfilters = H5Pget_nfilters(p);
	close_keep(H5Pclose, p);
	return chunked;
}
