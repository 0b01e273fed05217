// Parameter tensors to and from HDF5; see weights_h5.h. Reads compare the
// whole file against the table before touching the buffer, so one run shows
// every mismatch.
#include "weights_h5.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define MAX_RANK 8
#define CONVERT_HINT                                                                        \
    "check model.backbone, model.feature_dim and the other model.* sizes against the file " \
    "(`zsseg ckpt info FILE` lists it); PyTorch .pth files must first be converted with "   \
    "datasets/convert_weights.py"

// "group" + "/" + name with '.' -> '/'.
static void dataset_path(char* out, size_t cap, const char* group, const char* name) {
    if ((size_t)snprintf(out, cap, "%s/%s", group, name) >= cap)
        ZS_FAIL("use shorter parameter names", "HDF5 path too long for '%s'", name);
    for (char* c = out + strlen(group) + 1; *c; c++)
        if (*c == '.') *c = '/';
}

static void shape_text(char* out, size_t cap, int ndim, const hsize_t* dims) {
    size_t n = (size_t)snprintf(out, cap, "(");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(out + n, cap - n, "%s%llu", d ? ", " : "",
                              (unsigned long long)dims[d]);
    if (n < cap) snprintf(out + n, cap - n, ")");
}

static void tensor_shape_text(char* out, size_t cap, const ParamTensor* t) {
    hsize_t dims[4];
    for (int d = 0; d < t->ndim; d++) dims[d] = (hsize_t)t->shape[d];
    shape_text(out, cap, t->ndim, dims);
}

// ---------------------------------------------------------------- writing
void weights_write_group(hid_t file, const char* group, const ParamTable* pt, const float* params,
                         const char* path) {
    if (!pt->finalized)
        ZS_FAIL("finalise the parameter table first", "weights_write_group on '%s'", path);
    int* order = (int*)mallocCheck((size_t)pt->n * sizeof(int));
    for (int i = 0; i < pt->n; i++) order[pt->t[i].pos] = i;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    h5Check(lcpl);
    h5Check(H5Pset_create_intermediate_group(lcpl, 1));
    for (int k = 0; k < pt->n; k++) {
        const ParamTensor* t = &pt->t[order[k]];
        char name[512];
        dataset_path(name, sizeof name, group, t->name);
        hsize_t dims[4];
        for (int d = 0; d < t->ndim; d++) dims[d] = (hsize_t)t->shape[d];
        hid_t space = H5Screate_simple(t->ndim, dims, NULL);
        h5Check(space);
        hid_t ds = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        h5Check(ds);
        h5Check(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, params + t->offset));
        h5Check(H5Dclose(ds));
        h5Check(H5Sclose(space));
    }
    h5Check(H5Pclose(lcpl));
    free(order);
}

void weights_save_h5(const char* path, const ParamTable* pt, const float* params) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        ZS_FAIL("use a shorter path", "path too long: '%s'", path);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5Check(file);
    weights_write_group(file, WEIGHTS_GROUP, pt, params, path);
    h5Check(H5Fflush(file, H5F_SCOPE_GLOBAL));
    h5Check(H5Fclose(file));
    file_commit(tmp, path);
}

// ---------------------------------------------------------------- reading
hid_t weights_open_h5(const char* path) {
    char* bad = file_readable_problem(path, "weights file");
    if (bad)
        ZS_FAIL("check the path (model.pretrained, --ckpt or the command line): it must be a "
                "regular, readable HDF5 file",
                "%s", bad);
    H5Quiet q = h5_quiet();
    htri_t is = H5Fis_hdf5(path);
    hid_t file = is > 0 ? H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
    h5_loud(q);
    if (is <= 0)
        ZS_FAIL(
            "a PyTorch .pth file must first be converted with datasets/convert_weights.py; "
            "otherwise the file is damaged: re-copy it",
            "'%s' is not an HDF5 file", path);
    if (file < 0)
        ZS_FAIL(
            "the file is truncated or corrupt (an interrupted copy or write?): re-copy it or "
            "use another checkpoint",
            "cannot open HDF5 file '%s': it is truncated or corrupt", path);
    return file;
}

typedef struct {
    char* name;  // dotted, relative to the visited group
    int ndim;
    hsize_t dims[MAX_RANK];
    char dtype[16];  // "float32", "int64", ...
    size_t type_bytes;
    int is_float;
    int matched;
} FileTensor;

typedef struct {
    FileTensor* v;
    int n, cap;
} FileTensors;

static void dtype_text(char* out, size_t cap, hid_t type) {
    H5T_class_t c = H5Tget_class(type);
    int bits = (int)H5Tget_size(type) * 8;
    if (c == H5T_FLOAT)
        snprintf(out, cap, "float%d", bits);
    else if (c == H5T_INTEGER)
        snprintf(out, cap, "%sint%d", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    else if (c == H5T_STRING)
        snprintf(out, cap, "string");
    else
        snprintf(out, cap, "other");
}

// H5Lvisit callback: record every dataset below the group.
static herr_t collect_cb(hid_t g, const char* name, const H5L_info_t* info, void* op) {
    (void)info;
    FileTensors* ft = (FileTensors*)op;
    hid_t obj = H5Oopen(g, name, H5P_DEFAULT);
    if (obj < 0) return -1;
    if (H5Iget_type(obj) == H5I_DATASET) {
        if (ft->n == ft->cap) {
            ft->cap = ft->cap ? 2 * ft->cap : 256;
            ft->v = (FileTensor*)realloc(ft->v, (size_t)ft->cap * sizeof(FileTensor));
            if (!ft->v) ZS_FAIL("out of memory", "listing %d datasets", ft->cap);
        }
        FileTensor* e = &ft->v[ft->n++];
        memset(e, 0, sizeof *e);
        e->name = strdup(name);
        hid_t space = H5Dget_space(obj), type = H5Dget_type(obj);
        int nd = H5Sget_simple_extent_ndims(space);
        e->ndim = nd > MAX_RANK ? MAX_RANK : nd < 0 ? 0 : nd;
        if (nd > MAX_RANK)
            e->dims[0] = 0;  // never matches; shown as a rank mismatch
        else
            H5Sget_simple_extent_dims(space, e->dims, NULL);
        e->is_float = H5Tget_class(type) == H5T_FLOAT;
        e->type_bytes = H5Tget_size(type);
        dtype_text(e->dtype, sizeof e->dtype, type);
        H5Tclose(type);
        H5Sclose(space);
    }
    H5Oclose(obj);
    return 0;
}

// Every dataset below `group` of file (its paths relative to the group), or
// fails naming `path`.
static FileTensors collect(hid_t file, const char* group, const char* path, int dotted) {
    FileTensors ft = {NULL, 0, 0};
    H5Quiet q = h5_quiet();
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    herr_t err = g >= 0 ? H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, collect_cb, &ft) : 0;
    if (g >= 0) H5Gclose(g);
    h5_loud(q);
    if (g < 0)
        ZS_FAIL(
            "this file holds no parameters: is it a zsseg weights or checkpoint file? "
            "(`zsseg ckpt info FILE` lists it)",
            "'%s' has no group %s", path, group);
    if (err < 0)
        ZS_FAIL("the file is truncated or corrupt: re-copy it", "cannot list the datasets of '%s'",
                path);
    for (int i = 0; i < ft.n && dotted; i++)
        for (char* c = ft.v[i].name; *c; c++)
            if (*c == '/') *c = '.';
    return ft;
}

static void file_tensors_free(FileTensors* ft) {
    for (int i = 0; i < ft->n; i++) free(ft->v[i].name);
    free(ft->v);
}

static int shape_equal(const ParamTensor* t, const FileTensor* e) {
    if (t->ndim != e->ndim) return 0;
    for (int d = 0; d < t->ndim; d++)
        if ((hsize_t)t->shape[d] != e->dims[d]) return 0;
    return 1;
}

// Growing text buffer for the mismatch report.
typedef struct {
    char* s;
    size_t n, cap;
} Text;

__attribute__((format(printf, 2, 3))) static void text_addf(Text* t, const char* fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len < 0) return;
    size_t l = (size_t)len < sizeof line ? (size_t)len : sizeof line - 1;
    if (t->n + l + 1 > t->cap) {
        t->cap = 2 * (t->n + l + 1);
        t->s = (char*)realloc(t->s, t->cap);
        if (!t->s) ZS_FAIL("out of memory", "weights report of %zu bytes", t->cap);
    }
    memcpy(t->s + t->n, line, l + 1);
    t->n += l;
}

int weights_read_group(hid_t file, const char* group, const ParamTable* pt, float* params,
                       int strict, const char* path) {
    if (!pt->finalized)
        ZS_FAIL("finalise the parameter table first", "weights_read_group on '%s'", path);
    FileTensors ft = collect(file, group, path, 1);
    int* where = (int*)mallocCheck((size_t)(pt->n ? pt->n : 1) * sizeof(int));
    Text missing = {0}, unexpected = {0}, differs = {0};
    int n_missing = 0, n_unexpected = 0, n_differs = 0, n_found = 0;
    int per_region[REGION_COUNT] = {0};
    char a[128], b[128];
    for (int i = 0; i < pt->n; i++) {
        const ParamTensor* t = &pt->t[i];
        where[i] = -1;
        for (int j = 0; j < ft.n && where[i] < 0; j++)
            if (strcmp(ft.v[j].name, t->name) == 0) where[i] = j;
        tensor_shape_text(a, sizeof a, t);
        if (where[i] < 0) {
            text_addf(&missing, "  missing in file:     %s %s\n", t->name, a);
            n_missing++;
            per_region[t->region]++;
            continue;
        }
        FileTensor* e = &ft.v[where[i]];
        e->matched = 1;
        n_found++;
        shape_text(b, sizeof b, e->ndim, e->dims);
        if (!shape_equal(t, e) || !e->is_float) {
            text_addf(&differs, "  shape/dtype differs: %s: model %s float32, file %s %s\n",
                      t->name, a, b, e->dtype);
            n_differs++;
        }
    }
    for (int j = 0; j < ft.n; j++) {
        if (ft.v[j].matched) continue;
        shape_text(b, sizeof b, ft.v[j].ndim, ft.v[j].dims);
        text_addf(&unexpected, "  unexpected in file:  %s %s\n", ft.v[j].name, b);
        n_unexpected++;
    }
    int fatal = n_differs > 0 || n_found == 0 || (strict && (n_missing || n_unexpected));
    if (fatal) {
        fprintf(stderr,
                "[rank %d] weights file '%s' does not match the model (%s): %d missing in "
                "file, %d unexpected in file, %d differ in shape or dtype\n%s%s%s",
                zs_rank, path, strict ? "strict" : "partial load", n_missing, n_unexpected,
                n_differs, missing.s ? missing.s : "", unexpected.s ? unexpected.s : "",
                differs.s ? differs.s : "");
        ZS_FAIL(CONVERT_HINT,
                "weights file '%s' does not match the model: %d missing, %d unexpected, %d "
                "shape/dtype mismatches (listed above)",
                path, n_missing, n_unexpected, n_differs);
    }
    if (n_missing || n_unexpected) {
        char regions[256] = "";
        size_t len = 0;
        for (int r = 0; r < REGION_COUNT; r++)
            if (per_region[r] && len < sizeof regions)
                len += (size_t)snprintf(regions + len, sizeof regions - len, "%s%s %d",
                                        len ? ", " : "", param_region_name((ParamRegion)r),
                                        per_region[r]);
        log_warn(
            "'%s': loaded %d tensors; %d model tensors not in the file keep their initial "
            "values (%s); %d file tensors ignored",
            path, n_found, n_missing, len ? regions : "none", n_unexpected);
    }
    H5Quiet q = h5_quiet();
    for (int i = 0; i < pt->n; i++) {
        if (where[i] < 0) continue;
        char name[512];
        dataset_path(name, sizeof name, group, pt->t[i].name);
        hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
        herr_t err = ds >= 0 ? H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                       params + pt->t[i].offset)
                             : -1;
        if (ds >= 0) H5Dclose(ds);
        if (err < 0) {
            h5_loud(q);
            ZS_FAIL("the file is truncated or corrupt: re-copy it or use another checkpoint",
                    "cannot read dataset %s from '%s'", name, path);
        }
    }
    h5_loud(q);
    free(missing.s);
    free(unexpected.s);
    free(differs.s);
    free(where);
    file_tensors_free(&ft);
    return n_found;
}

int weights_load_h5(const char* path, const ParamTable* pt, float* params, int strict) {
    hid_t file = weights_open_h5(path);
    int n = weights_read_group(file, WEIGHTS_GROUP, pt, params, strict, path);
    h5Check(H5Fclose(file));
    return n;
}

// ---------------------------------------------------------------- listing
void weights_list_h5(const char* path, FILE* out) {
    hid_t file = weights_open_h5(path);
    FileTensors ft = collect(file, "/", path, 0);
    unsigned long long elems = 0, bytes = 0;
    fprintf(out, "%s\n", path);
    for (int j = 0; j < ft.n; j++) {
        const FileTensor* e = &ft.v[j];
        char shape[160];
        shape_text(shape, sizeof shape, e->ndim, e->dims);
        unsigned long long n = 1;
        for (int d = 0; d < e->ndim; d++) n *= e->dims[d];
        elems += n;
        bytes += n * e->type_bytes;
        fprintf(out, "  /%-60s %-8s %s\n", e->name, e->dtype, shape);
    }
    fprintf(out, "%d datasets, %llu elements, %.1f MB\n", ft.n, elems, (double)bytes / 1e6);
    file_tensors_free(&ft);
    h5Check(H5Fclose(file));
}

H5Quiet h5_quiet(void) {
    H5Quiet q;
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

void h5_loud(H5Quiet q) { H5Eset_auto2(H5E_DEFAULT, q.fn, q.data); }

void h5_attr_write(hid_t obj, const char* name, hid_t file_type, hid_t mem_type, hsize_t n,
                   const void* v) {
    hid_t sp = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    h5Check(sp);
    hid_t at = H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    h5Check(at);
    h5Check(H5Awrite(at, mem_type, v));
    h5Check(H5Aclose(at));
    h5Check(H5Sclose(sp));
}

void h5_attr_write_string(hid_t obj, const char* name, const char* text) {
    hid_t t = h5_string_type(strlen(text));
    h5_attr_write(obj, name, t, t, 0, text);
    h5Check(H5Tclose(t));
}

hid_t h5_string_type(size_t len) {
    hid_t t = H5Tcopy(H5T_C_S1);
    h5Check(t);
    h5Check(H5Tset_size(t, len ? len : 1));
    h5Check(H5Tset_strpad(t, H5T_STR_NULLPAD));
    return t;
}

int h5_attr_read(hid_t obj, const char* name, hid_t mem_type, void* v) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    herr_t err = a >= 0 ? H5Aread(a, mem_type, v) : -1;
    if (a >= 0) H5Aclose(a);
    return err < 0 ? -1 : 0;
}

int h5_attr_read_string(hid_t obj, const char* name, char* out, size_t cap) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0 &&
             H5Tget_size(t) < cap;
    if (ok) {
        memset(out, 0, cap);
        ok = H5Aread(a, t, out) >= 0;
    }
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return ok ? 0 : -1;
}

hid_t h5_dataset_create(hid_t file, const char* name, hid_t type, int ndim, const hsize_t* dims,
                        const hsize_t* chunk, int deflate) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    h5Check(dcpl);
    if (chunk) {
        h5Check(H5Pset_chunk(dcpl, ndim, chunk));
        h5Check(H5Pset_shuffle(dcpl));
        h5Check(H5Pset_deflate(dcpl, (unsigned)deflate));
    }
    h5Check(H5Pset_obj_track_times(dcpl, 0));
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    h5Check(sp);
    hid_t ds = H5Dcreate2(file, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    h5Check(ds);
    h5Check(H5Sclose(sp));
    h5Check(H5Pclose(dcpl));
    return ds;
}

void h5_rows_write(hid_t ds, hid_t dxpl, hid_t mem_type, hsize_t off, hsize_t n, const void* buf) {
    hid_t fs = H5Dget_space(ds);
    h5Check(fs);
    hsize_t dims[3] = {0}, start[3] = {off, 0, 0}, count[3] = {n, 0, 0}, elems = n;
    int nd = H5Sget_simple_extent_ndims(fs);
    h5Check(nd);
    if (nd > 3) ZS_FAIL("this is a bug: h5_rows_write takes up to 3 dimensions", "%d dims", nd);
    h5Check(H5Sget_simple_extent_dims(fs, dims, NULL));
    for (int k = 1; k < nd; k++) count[k] = dims[k], elems *= dims[k];
    hid_t ms = H5Screate_simple(1, &elems, NULL);
    h5Check(ms);
    if (n) {
        h5Check(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL));
    } else {
        h5Check(H5Sselect_none(fs));
        h5Check(H5Sselect_none(ms));
    }
    h5Check(H5Dwrite(ds, mem_type, ms, fs, dxpl, buf));
    h5Check(H5Sclose(ms));
    h5Check(H5Sclose(fs));
}
