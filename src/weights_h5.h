// Parameter buffers in HDF5: one float32 dataset per tensor, named after the
// tensor with '.' -> '/' under a group, e.g.
// /params/backbone/layer2/block1/reduce/conv/weight with shape (Cout, Cin, kh, kw).
// Files from PyTorch state dicts come from datasets/convert_weights.py.
// Serial HDF5 (one process per file).
#ifndef ZSSEG_WEIGHTS_H5_H
#define ZSSEG_WEIGHTS_H5_H

#include <hdf5.h>
#include <stdio.h>

#include "params.h"

#define WEIGHTS_GROUP "/params"

// Write every tensor of pt to PATH atomically (PATH.tmp, flush, rename).
void weights_save_h5(const char* path, const ParamTable* pt,
                     const float* params);  // (pt->total)

// Read the tensors of pt from PATH. Every name, shape and dtype is compared
// first, and all problems are reported at once (missing in the file,
// unexpected in the file, shape or dtype differs) before failing with a hint.
// strict: the file must hold exactly the tensors of pt. Not strict (a
// pretrained initialisation): tensors absent from the file keep their values
// and extra file tensors are ignored (both summarised in a warning), but a
// shape or dtype difference still fails, and so does a file sharing no tensor
// with pt. A missing, truncated or non-HDF5 file fails naming the file.
// Returns the number of tensors loaded.
int weights_load_h5(const char* path, const ParamTable* pt,
                    float* params,  // (pt->total) tensors found are overwritten
                    int strict);

// Print every dataset of PATH (HDF5 path, dtype, shape), then the count,
// element total and size. Backs `zsseg ckpt info`.
void weights_list_h5(const char* path, FILE* out);

// The same on an open file, for writers that store more than the parameters
// (checkpoints): `group` is e.g. WEIGHTS_GROUP; `path` only names the file in
// messages.
void weights_write_group(hid_t file, const char* group, const ParamTable* pt, const float* params,
                         const char* path);
int weights_read_group(hid_t file, const char* group, const ParamTable* pt, float* params,
                       int strict, const char* path);
// Open PATH read-only, failing with a clear message (missing, not HDF5,
// truncated) that names it.
hid_t weights_open_h5(const char* path);

// HDF5 prints its error stack by itself unless told not to; readers that
// report their own messages silence it around the calls that may fail.
typedef struct {
    H5E_auto2_t fn;
    void* data;
} H5Quiet;
H5Quiet h5_quiet(void);    // silence, returning the previous handler
void h5_loud(H5Quiet q);   // restore it

// Attributes of files zsseg writes (checkpoints, features): n = 0 a scalar,
// else a 1-D array of n; strings fixed-length, NUL-padded. Fatal on failure.
void h5_attr_write(hid_t obj, const char* name, hid_t file_type, hid_t mem_type, hsize_t n,
                   const void* v);
void h5_attr_write_string(hid_t obj, const char* name, const char* text);
// Fixed-length, NUL-padded string type of len bytes (at least 1: HDF5
// refuses 0); the caller closes it.
hid_t h5_string_type(size_t len);
// Readers for files as found: 0, or -1 when the attribute is missing or of
// another kind (call them silenced). HDF5 converts integer and float widths.
int h5_attr_read(hid_t obj, const char* name, hid_t mem_type, void* v);
// A fixed-length string attribute into out (cap bytes, NUL-terminated).
int h5_attr_read_string(hid_t obj, const char* name, char* out, size_t cap);

// A dataset of dims (ndim <= 3): chunk NULL = contiguous, else chunked,
// shuffled and gzip at level deflate; no modification times (files of equal
// content compare equal).
hid_t h5_dataset_create(hid_t file, const char* name, hid_t type, int ndim, const hsize_t* dims,
                        const hsize_t* chunk, int deflate);
// Rows [off, off + n) of ds's first dimension from buf (the rows' elements
// contiguous); with a parallel-HDF5 transfer list dxpl it is collective
// (filtered datasets need every rank in every write), n may be 0.
void h5_rows_write(hid_t ds, hid_t dxpl, hid_t mem_type, hsize_t off, hsize_t n, const void* buf);

#endif  // ZSSEG_WEIGHTS_H5_H
