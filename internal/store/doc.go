// Package store is the one place through which pipeline stages write into the
// work folder: atomic file replacement (temp file → fsync → rename → fsync of
// the directory) and HDF5 files (coords.h5, features/<encoder>.h5, anchors.h5)
// in the layout that CLAM/TRIDENT and h5py read.
//
// The HDF5 part is a small cgo shim over the C library (pkg-config hdf5).
// Not every build of the library is thread-safe, so every call into it holds
// one package mutex; automatic error printing is turned off and failures come
// back as Go errors that name the file, the object and the library's cause.
// Files are deterministic (no object timestamps) and readable by HDF5 1.8+,
// h5py, CLAM and TRIDENT; datasets over 1 MiB are chunked and compressed.
//
// Writers create their file under a temporary name (see TempPath and IsTemp)
// and rename it into place on Commit, so a crash never leaves a half-written
// file at a final path; CleanTemps removes such leftovers.
package store
