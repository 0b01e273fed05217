// A self-training round's pseudo-labels in one HDF5 file; see st_store.h.
// The writer is collective (parallel HDF5, as extract.c); the reader reports
// instead of failing, so its HDF5 calls run silenced (a truncated file is an
// error message, never a crash).
#include "st_store.h"

#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "weights_h5.h"

#define ST_FORMAT 1
#define ST_DEFLATE 4  // extract.c's level: most of level 9's gain at a fraction of its time
#define CRC_PREFIX "crc32c:"

static const char* const ds_names[3] = {"/labels", "/weights", "/image_ids"};

void st_store_alloc(StStore* s, int n, int H, int W) {
    memset(s, 0, sizeof *s);
    s->n = n, s->H = H, s->W = W;
    const size_t nHW = (size_t)n * H * W;
    s->labels = (uint8_t*)callocCheck(nHW, 1);
    s->weights = (float*)callocCheck(nHW, sizeof(float));
}

void st_store_free(StStore* s) {
    free(s->labels);
    free(s->weights);
    memset(s, 0, sizeof *s);
}

// The ids as n fixed-length, NUL-padded strings of *len bytes (the longest + 1).
static char* ids_pack(const char* const* ids, int n, size_t* len) {
    *len = 1;
    for (int i = 0; i < n; i++)
        if (strlen(ids[i]) + 1 > *len) *len = strlen(ids[i]) + 1;
    char* buf = (char*)callocCheck((size_t)n, *len);
    for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * *len, ids[i], strlen(ids[i]));
    return buf;
}

// ---------------------------------------------------------------- writing
void st_store_write(const StStore* s, const char* path, const char* const* ids, int start,
                    int count, const Dist* d) {
    if (start < 0 || count < 0 || start + count > s->n)
        ZS_FAIL("this is a bug in the caller",
                "st_store_write: rows [%d, %d) outside the %d images", start, start + count, s->n);
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        ZS_FAIL("use a shorter run directory (run.out_dir)", "path too long: '%s'", path);
    const size_t HW = (size_t)s->H * s->W, nHW = (size_t)s->n * HW;
    size_t len;
    char* id_buf = ids_pack(ids, s->n, &len);
    // every rank holds the whole store, so every rank computes the same CRCs
    // (attribute writes are collective and need the same values everywhere);
    // float bytes in memory are the stored little-endian bytes on our hosts
    const uint32_t crc[3] = {crc32c(s->labels, nHW), crc32c(s->weights, nHW * sizeof(float)),
                             crc32c(id_buf, (size_t)s->n * len)};

    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    h5Check(fapl);
    h5Check(H5Pset_fapl_mpio(fapl, d->comm, MPI_INFO_NULL));
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (file < 0)
        ZS_FAIL("check that the directory exists and is writable on every node",
                "self-training: cannot create %s", tmp);
    h5Check(H5Pclose(fapl));
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    h5Check(dxpl);
    h5Check(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
    const hsize_t dims[3] = {(hsize_t)s->n, (hsize_t)s->H, (hsize_t)s->W};
    hid_t str = h5_string_type(len);
    // one image per chunk; the ids contiguous
    hsize_t chunk[3] = {1, dims[1], dims[2]};
    hid_t ds[3] = {h5_dataset_create(file, ds_names[0], H5T_STD_U8LE, 3, dims, chunk, ST_DEFLATE),
                   h5_dataset_create(file, ds_names[1], H5T_IEEE_F32LE, 3, dims, chunk,
                                     ST_DEFLATE),
                   h5_dataset_create(file, ds_names[2], str, 1, dims, NULL, 0)};
    h5_rows_write(ds[0], dxpl, H5T_NATIVE_UINT8, (hsize_t)start, (hsize_t)count,
               s->labels + (size_t)start * HW);
    h5_rows_write(ds[1], dxpl, H5T_NATIVE_FLOAT, (hsize_t)start, (hsize_t)count,
               s->weights + (size_t)start * HW);
    h5_rows_write(ds[2], dxpl, str, (hsize_t)start, (hsize_t)count, id_buf + (size_t)start * len);

    int format = ST_FORMAT, round = s->round;
    long long iteration = s->iteration;
    h5_attr_write(file, "format", H5T_STD_I32LE, H5T_NATIVE_INT, 0, &format);
    h5_attr_write(file, "round", H5T_STD_I32LE, H5T_NATIVE_INT, 0, &round);
    h5_attr_write_string(file, "mode", s->mode);
    h5_attr_write(file, "iteration", H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, &iteration);
    h5_attr_write_string(file, "zsseg_version", ZSSEG_VERSION);
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, CRC_PREFIX "%s", ds_names[k]);
        h5_attr_write(file, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, 0, &crc[k]);
    }
    for (int k = 0; k < 3; k++) h5Check(H5Dclose(ds[k]));
    h5Check(H5Tclose(str));
    h5Check(H5Pclose(dxpl));
    if (H5Fclose(file) < 0)
        ZS_FAIL("check free disk space and quota", "self-training: cannot finish %s", tmp);
    free(id_buf);
    if (d->rank == 0) file_commit(tmp, path);
    mpiCheck(MPI_Barrier(d->comm));  // the file is in place when any rank returns
}

// ---------------------------------------------------------------- reading
static void shape_text(char* out, size_t cap, int nd, const hsize_t* dims) {
    int at = snprintf(out, cap, "(");
    for (int k = 0; k < nd && at < (int)cap; k++)
        at += snprintf(out + at, cap - (size_t)at, "%s%llu", k ? ", " : "",
                       (unsigned long long)dims[k]);
    if (at < (int)cap) snprintf(out + at, cap - (size_t)at, ")");
}

// Dataset k: type class cls of size `size` (0: any fixed-length string,
// whose size goes to *size_out), shape want (nd), read whole into buf
// (allocated here when *buf is NULL, else of the right size) in mem_type (-1:
// the file type), its bytes' CRC-32C equal to the stored one. NULL or the
// first problem.
static char* dataset_read(hid_t file, const char* path, int k, H5T_class_t cls, size_t size,
                          int nd, const hsize_t* want, hid_t mem_type, void** buf,
                          size_t* size_out) {
    const char* name = ds_names[k];
    if (H5Lexists(file, name + 1, H5P_DEFAULT) <= 0)
        return strf("'%s': dataset %s is missing: not a self-training round file", path, name);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) return strf("'%s': cannot open dataset %s: the file is corrupt", path, name);
    char* err = NULL;
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    size_t tsize = type >= 0 ? H5Tget_size(type) : 0;
    int type_ok = type >= 0 && H5Tget_class(type) == cls && tsize > 0 &&
                  (size ? tsize == size : H5Tis_variable_str(type) == 0);
    int have_nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t have[3] = {0};
    int shape_ok = have_nd == nd && H5Sget_simple_extent_dims(space, have, NULL) >= 0 &&
                   memcmp(have, want, (size_t)nd * sizeof(hsize_t)) == 0;
    uint32_t stored = 0;
    char attr[64];
    snprintf(attr, sizeof attr, CRC_PREFIX "%s", name);
    if (!type_ok) {
        err = strf("'%s': dataset %s has the wrong type (want %s)", path, name,
                   k == 0 ? "uint8" : k == 1 ? "float32" : "fixed-length strings");
    } else if (!shape_ok) {
        char h[96], w[96];
        shape_text(h, sizeof h, have_nd > 0 && have_nd <= 3 ? have_nd : 0, have);
        shape_text(w, sizeof w, nd, want);
        err = strf("'%s': dataset %s has shape %s but this run needs %s: the training split or "
                   "data.warp_size changed",
                   path, name, h, w);
    } else if (h5_attr_read(file, attr, H5T_NATIVE_UINT32, &stored) != 0) {
        err = strf("'%s': attribute '%s' is missing: not a self-training round file", path, attr);
    } else {
        size_t bytes = tsize;
        for (int j = 0; j < nd; j++) bytes *= want[j];
        if (!*buf) *buf = mallocCheck(bytes);
        uint32_t crc = 0;
        if (H5Dread(ds, mem_type >= 0 ? mem_type : type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) < 0)
            err = strf("'%s': cannot read dataset %s: the file is truncated or corrupt", path,
                       name);
        else if ((crc = crc32c(*buf, bytes)) != stored)
            err = strf("'%s': dataset %s fails its CRC-32C check (stored 0x%08x, computed "
                       "0x%08x): the file is corrupt",
                       path, name, stored, crc);
        if (size_out) *size_out = tsize;
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return err;
}

// The checks once the file is open, silenced; s is allocated.
static char* read_open(StStore* s, hid_t file, const char* path, const char* const* ids) {
    int format = 0;
    if (h5_attr_read(file, "format", H5T_NATIVE_INT, &format) != 0)
        return strf("'%s': attribute 'format' is missing: not a self-training round file", path);
    if (format != ST_FORMAT)
        return strf("'%s': self-training round format %d, this zsseg reads format %d", path,
                    format, ST_FORMAT);
    long long iteration = 0;
    if (h5_attr_read(file, "round", H5T_NATIVE_INT, &s->round) != 0 ||
        h5_attr_read(file, "iteration", H5T_NATIVE_LLONG, &iteration) != 0 ||
        h5_attr_read_string(file, "mode", s->mode, sizeof s->mode) != 0)
        return strf("'%s': attribute 'round', 'iteration' or 'mode' is missing or malformed",
                    path);
    s->iteration = (long)iteration;
    const hsize_t dims[3] = {(hsize_t)s->n, (hsize_t)s->H, (hsize_t)s->W};
    void* labels = s->labels;
    void* weights = s->weights;
    char* err = dataset_read(file, path, 0, H5T_INTEGER, 1, 3, dims, H5T_NATIVE_UINT8, &labels,
                             NULL);
    if (!err)
        err = dataset_read(file, path, 1, H5T_FLOAT, 4, 3, dims, H5T_NATIVE_FLOAT, &weights,
                           NULL);
    void* id_buf = NULL;
    size_t len = 0;
    if (!err) err = dataset_read(file, path, 2, H5T_STRING, 0, 1, dims, -1, &id_buf, &len);
    for (int i = 0; i < s->n && !err; i++) {
        const char* got = (const char*)id_buf + (size_t)i * len;
        if (strlen(ids[i]) > len || strncmp(got, ids[i], len) != 0)
            err = strf("'%s': image %d is '%.*s' in the file but '%s' in the training split: the "
                       "split changed",
                       path, i, (int)len, got, ids[i]);
    }
    free(id_buf);
    return err;
}

char* st_store_read(StStore* s, const char* path, int n, int H, int W,
                    const char* const* ids) {
    memset(s, 0, sizeof *s);
    char* err = file_readable_problem(path, "self-training round");
    if (err) return err;
    H5Quiet q = h5_quiet();
    hid_t file = -1;
    if (H5Fis_hdf5(path) <= 0) {
        err = strf("'%s' is not an HDF5 file", path);
    } else if ((file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        err = strf("cannot open '%s': the HDF5 file is truncated or corrupt", path);
    } else {
        st_store_alloc(s, n, H, W);
        err = read_open(s, file, path, ids);
    }
    if (file >= 0 && H5Fclose(file) < 0 && !err)
        err = strf("cannot close '%s': the file is corrupt", path);
    h5_loud(q);
    if (err) st_store_free(s);
    return err;
}
