// Declarations of the C helpers in h5shim.c (see there).
#ifndef STORE_H5SHIM_H
#define STORE_H5SHIM_H

#include <hdf5.h>

// Element types of datasets and attributes.
enum { T_INT64, T_FLOAT32, T_UINT8, T_INT32, T_UINT16, T_FLOAT64 };

hid_t store_mem_type(int t);
hid_t store_file_type(int t);
hid_t store_vlen_utf8(void);
void store_quiet(void);
void store_last_error(char *api, char *cause, size_t n);
hid_t store_file_create(const char *name);
hid_t store_file_open(const char *name);
hid_t store_group_create(hid_t loc, const char *name);
hid_t store_dataset_create(hid_t loc, const char *name, int t, hid_t space, int rank,
                           const hsize_t *chunk, int gzip);
long store_attr_count(hid_t obj);
long store_link_count(hid_t group);
int store_dataset_layout(hid_t d, int *nfilters);

#endif
