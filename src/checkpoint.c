// Training checkpoints in HDF5; see checkpoint.h. Saving and loading fail
// with ZS_FAIL; ckpt_verify reads the file as found and reports instead, so
// its every HDF5 call runs with HDF5's own error printing silenced.
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_internal.h"
#include "common.h"
#include "weights_h5.h"

#ifndef ZSSEG_VERSION
#define ZSSEG_VERSION "dev"
#endif
#ifndef ZSSEG_GIT_REVISION
#define ZSSEG_GIT_REVISION "unknown"
#endif

#define SLAB_BYTES ((size_t)16 << 20)  // read buffer bound of a dataset CRC
#define PATH_CAP 4096
#define VERIFY_HINT "run `zsseg ckpt verify FILE`; if it fails, resume from an earlier checkpoint"
#define MODEL_HINT                                                                      \
    "the checkpoint was written by a different model or optim.e_optimizer: resume with " \
    "the config stored in it (`zsseg ckpt info FILE` shows it)"

const char* const ckpt_optim_names[3] = {"e", "d", "g"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char* kind_name(int kind) { return kind == OPTIM_ADAM ? "adam" : "sgd"; }

static void path_join(char* out, const char* a, const char* b) {
    if ((size_t)snprintf(out, PATH_CAP, "%s/%s", a, b) >= PATH_CAP)
        ZS_FAIL("use a shorter run directory (run.out_dir)", "path too long: '%s/%s'", a, b);
}

// ---------------------------------------------------------------- attributes
static void attr_put_i64(hid_t obj, const char* name, long long v) {
    h5_attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, &v);
}
static void attr_put_u64(hid_t obj, const char* name, unsigned long long v) {
    h5_attr_write(obj, name, H5T_STD_U64LE, H5T_NATIVE_ULLONG, 0, &v);
}
static void attr_put_f64(hid_t obj, const char* name, double v) {
    h5_attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &v);
}

// ---------------------------------------------------------------- datasets
static herr_t names_cb(hid_t g, const char* name, const H5L_info_t* info, void* op) {
    (void)info;
    CkptNames* ns = (CkptNames*)op;
    hid_t obj = H5Oopen(g, name, H5P_DEFAULT);
    if (obj < 0) return -1;
    int is_ds = H5Iget_type(obj) == H5I_DATASET;
    H5Oclose(obj);
    if (!is_ds) return 0;
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? 2 * ns->cap : 256;
        ns->v = (char**)realloc(ns->v, (size_t)ns->cap * sizeof(char*));
        if (!ns->v) ZS_FAIL("out of memory", "listing %d datasets", ns->cap);
    }
    ns->v[ns->n++] = strf("/%s", name);
    return 0;
}

int ckpt_names_collect(hid_t file, CkptNames* ns) {
    memset(ns, 0, sizeof *ns);
    return H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, names_cb, ns) < 0 ? -1 : 0;
}

void ckpt_names_free(CkptNames* ns) {
    for (int i = 0; i < ns->n; i++) free(ns->v[i]);
    free(ns->v);
}

hsize_t ckpt_dataset_bytes(hid_t ds, int* ndim, hsize_t* dims) {
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t bytes = 0;
    if (type >= 0 && nd >= 0 && nd <= CKPT_MAX_RANK && H5Sget_simple_extent_dims(space, dims, NULL) >= 0) {
        bytes = H5Tget_size(type);
        for (int d = 0; d < nd && bytes; d++)
            bytes = dims[d] && bytes > (hsize_t)-1 / dims[d] ? 0 : bytes * dims[d];
        *ndim = nd;
    }
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return bytes;
}

// CRC-32C of the dataset's bytes as stored (read in its own file datatype,
// so no conversion; row-major), a slab of whole first-dimension rows at a
// time. Returns -1 when it cannot be read.
int ckpt_dataset_crc(hid_t ds, uint32_t* crc) {
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    hsize_t dims[CKPT_MAX_RANK], start[CKPT_MAX_RANK] = {0}, count[CKPT_MAX_RANK];
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    int rc = -1;
    uint8_t* buf = NULL;
    if (type < 0 || nd < 0 || nd > CKPT_MAX_RANK || H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        goto done;
    size_t elem = H5Tget_size(type), row = elem;  // row: bytes of one first-dimension index
    for (int d = 1; d < nd; d++) {
        row *= dims[d];
        count[d] = dims[d];
    }
    hsize_t rows = nd ? dims[0] : 1;
    hsize_t per = row >= SLAB_BYTES ? 1 : SLAB_BYTES / (row ? row : 1);
    if (per > rows) per = rows;
    buf = (uint8_t*)mallocCheck(per * row + 1);
    uint32_t c = 0;
    for (hsize_t r0 = 0; r0 < rows && row; r0 += per) {
        hsize_t nr = rows - r0 < per ? rows - r0 : per, n = nr * row / elem;
        hid_t mem = H5S_ALL, sel = H5S_ALL;
        if (nd) {
            start[0] = r0;
            count[0] = nr;
            if (H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) < 0) goto done;
            mem = H5Screate_simple(1, &n, NULL);
            sel = space;
        }
        herr_t err = H5Dread(ds, type, mem, sel, H5P_DEFAULT, buf);
        if (nd) H5Sclose(mem);
        if (err < 0) goto done;
        c = crc32c_extend(c, buf, (size_t)(nr * row));
    }
    *crc = c;
    rc = 0;
done:
    free(buf);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static void write_floats(hid_t loc, const char* name, const float* x, size_t n) {
    hsize_t dim = n;
    hid_t space = H5Screate_simple(1, &dim, NULL);
    h5Check(space);
    hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    h5Check(ds);
    if (n) h5Check(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x));
    h5Check(H5Dclose(ds));
    h5Check(H5Sclose(space));
}

// ---------------------------------------------------------------- saving
static hid_t group_create(hid_t file, const char* name) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    h5Check(lcpl);
    h5Check(H5Pset_create_intermediate_group(lcpl, 1));
    hid_t g = H5Gcreate2(file, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    h5Check(g);
    h5Check(H5Pclose(lcpl));
    return g;
}

static void write_optim(hid_t file, const char* name, const Optimizer* o) {
    char group[32];
    snprintf(group, sizeof group, "/optim/%s", name);
    hid_t g = group_create(file, group);
    h5_attr_write_string(g, "kind", kind_name(o->kind));
    attr_put_i64(g, "step", o->step);
    attr_put_u64(g, "span_lo", o->span_lo);
    attr_put_u64(g, "span_n", o->span_n);
    write_floats(g, "m", o->m, o->span_n);
    if (o->kind == OPTIM_ADAM) write_floats(g, "v", o->v, o->span_n);
    h5Check(H5Gclose(g));
}

static void write_state(hid_t file, const CkptState* st) {
    hid_t g = group_create(file, "/state");
    attr_put_i64(g, "iter", st->iter);
    attr_put_i64(g, "stage", st->stage);
    attr_put_i64(g, "iter_in_stage", st->iter_in_stage);
    attr_put_i64(g, "mixed_pos", st->mixed_pos);
    attr_put_i64(g, "st_round", st->st_round);
    h5_attr_write_string(g, "st_file", st->st_file);
    attr_put_i64(g, "data_epoch", st->data_epoch);
    attr_put_i64(g, "data_cursor", st->data_cursor);
    attr_put_u64(g, "seed", st->seed);
    attr_put_f64(g, "best_metric", st->best_metric);
    h5Check(H5Gclose(g));
}

static void write_config(hid_t file, const char* text) {
    hid_t t = h5_string_type(strlen(text));
    hid_t space = H5Screate(H5S_SCALAR);
    h5Check(space);
    hid_t ds = H5Dcreate2(file, "/config", t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    h5Check(ds);
    h5Check(H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, text));
    h5Check(H5Dclose(ds));
    h5Check(H5Sclose(space));
    h5Check(H5Tclose(t));
}

// /meta last: its checksums are read back from the datasets and attributes
// as written, by the readers ckpt_verify uses.
static void write_meta(hid_t file, int world_size, const char* path) {
    hid_t g = group_create(file, "/meta");
    char created[32];
    time_t now = time(NULL);
    struct tm utc;
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &utc));
    attr_put_i64(g, "format_version", CKPT_FORMAT_VERSION);
    h5_attr_write_string(g, "zsseg_version", ZSSEG_VERSION);
    h5_attr_write_string(g, "git_revision", ZSSEG_GIT_REVISION);
    attr_put_i64(g, "world_size", world_size);
    h5_attr_write_string(g, "created", created);
    CkptNames ns;
    if (ckpt_names_collect(file, &ns) != 0)
        ZS_FAIL("check free disk space", "cannot list the datasets written to '%s'", path);
    for (int i = 0; i < ns.n; i++) {
        hid_t ds = H5Dopen2(file, ns.v[i], H5P_DEFAULT);
        h5Check(ds);
        uint32_t crc = 0;
        if (ckpt_dataset_crc(ds, &crc) != 0)
            ZS_FAIL("check free disk space", "cannot read back %s of '%s'", ns.v[i], path);
        h5Check(H5Dclose(ds));
        char name[PATH_CAP];
        snprintf(name, sizeof name, CKPT_CRC_PREFIX "%s", ns.v[i]);
        h5_attr_write(g, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, 0, &crc);
    }
    CkptAttrs a;
    H5Quiet q = h5_quiet();
    char* err = ckpt_attrs_read(file, &a, path);
    h5_loud(q);
    if (err) ZS_FAIL("check free disk space", "cannot read back the attributes: %s", err);
    uint32_t crc = ckpt_attrs_crc(&a, &ns);
    h5_attr_write(g, CKPT_ATTRS_CRC, H5T_STD_U32LE, H5T_NATIVE_UINT32, 0, &crc);
    ckpt_names_free(&ns);
    h5Check(H5Gclose(g));
}

// Iterations of the RUN/ckpt/iter_%08ld.h5 files (exactly that spelling),
// descending; 0 when the directory does not exist.
static int cmp_desc(const void* a, const void* b) {
    long x = *(const long*)a, y = *(const long*)b;
    return (x < y) - (x > y);
}

static int iter_files(const char* dir, long** iters) {
    *iters = NULL;
    DIR* d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        ZS_FAIL("check the permissions of the run directory", "cannot list '%s': %s", dir,
                strerror(errno));
    }
    int n = 0, cap = 0;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        long it = ckpt_iter_of_name(e->d_name);
        if (it < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            *iters = (long*)realloc(*iters, (size_t)cap * sizeof(long));
            if (!*iters) ZS_FAIL("out of memory", "listing '%s'", dir);
        }
        (*iters)[n++] = it;
    }
    closedir(d);
    if (n) qsort(*iters, (size_t)n, sizeof(long), cmp_desc);
    return n;
}

// Keep the newest `keep`, the multiples of keep_every and the file just written.
static void prune(const char* dir, long just, int keep, int keep_every) {
    long* its;
    int n = iter_files(dir, &its);
    for (int i = 0; i < n; i++) {
        if (i < keep || its[i] == just || (keep_every > 0 && its[i] % keep_every == 0)) continue;
        char name[64], path[PATH_CAP];
        snprintf(name, sizeof name, "iter_%08ld.h5", its[i]);
        path_join(path, dir, name);
        if (unlink(path) != 0) log_warn("cannot delete old checkpoint '%s': %s", path, strerror(errno));
    }
    free(its);
}

void ckpt_save(const char* run_dir, const CkptState* st, const CagNet* m, const char* config_text,
               int keep, int keep_every, char* path_out, size_t path_len) {
    char dir[PATH_CAP], name[64], path[PATH_CAP], tmp[PATH_CAP + 8], latest[PATH_CAP];
    path_join(dir, run_dir, "ckpt");
    dir_create(dir);
    snprintf(name, sizeof name, "iter_%08ld.h5", st->iter);
    path_join(path, dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0)
        ZS_FAIL("check that the run directory is writable", "cannot create checkpoint '%s'", tmp);
    weights_write_group(file, WEIGHTS_GROUP, &m->pt, m->params, path);
    const Optimizer* opts[3] = {&m->opt_e, &m->opt_d, &m->opt_g};
    for (int k = 0; k < 3; k++) write_optim(file, ckpt_optim_names[k], opts[k]);
    write_state(file, st);
    write_config(file, config_text);
    write_meta(file, st->world_size, path);
    if (H5Fclose(file) < 0)
        ZS_FAIL("check free disk space and quota", "cannot finish checkpoint '%s'", tmp);
    file_commit(tmp, path);
    char line[80];
    int len = snprintf(line, sizeof line, "%s\n", name);
    path_join(latest, dir, "latest");
    file_write_atomic(latest, line, (size_t)len);
    prune(dir, st->iter, keep, keep_every);
    if (path_out) snprintf(path_out, path_len, "%s", path);
}

// ---------------------------------------------------------------- loading
static void need(int ok, const char* path, const char* what) {
    if (!ok) ZS_FAIL(VERIFY_HINT, "checkpoint '%s': cannot read %s", path, what);
}

static void read_floats(hid_t g, const char* group, const char* name, float* x, size_t n,
                        const char* path) {
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    int nd = -1;
    hsize_t dims[CKPT_MAX_RANK] = {0};
    if (ds >= 0) ckpt_dataset_bytes(ds, &nd, dims);
    if (ds >= 0 && (nd != 1 || dims[0] != n))
        ZS_FAIL(MODEL_HINT, "checkpoint '%s': %s/%s holds %llu floats, the model's optimizer %zu",
                path, group, name, nd == 1 ? (unsigned long long)dims[0] : 0ull, n);
    need(ds >= 0 && (n == 0 || H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0),
         path, name);
    H5Dclose(ds);
}

// The optimizer state of group /optim/NAME (attributes o, as read): kind
// and span must be the model's.
static void load_optim(hid_t file, int k, const CkptOptimAttrs* a, Optimizer* o, const char* path) {
    char group[32];
    snprintf(group, sizeof group, "/optim/%s", ckpt_optim_names[k]);
    if (strcmp(a->kind, kind_name(o->kind)) != 0)
        ZS_FAIL(MODEL_HINT, "checkpoint '%s': %s holds %s state but the model's optimizer is %s",
                path, group, a->kind, kind_name(o->kind));
    if (a->span_lo != o->span_lo || a->span_n != o->span_n)
        ZS_FAIL(MODEL_HINT,
                "checkpoint '%s': %s covers parameters [%llu, %llu) but the model's optimizer "
                "covers [%zu, %zu): the span size differs",
                path, group, a->span_lo, a->span_lo + a->span_n, o->span_lo,
                o->span_lo + o->span_n);
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    need(g >= 0, path, group);
    read_floats(g, group, "m", o->m, o->span_n, path);
    if (o->kind == OPTIM_ADAM) read_floats(g, group, "v", o->v, o->span_n, path);
    o->step = (long)a->step;
    H5Gclose(g);
}

static void state_from_attrs(CkptState* st, const CkptAttrs* a) {
    st->iter = (long)a->iter;
    st->stage = (int)a->stage;
    st->iter_in_stage = (long)a->iter_in_stage;
    st->mixed_pos = (long)a->mixed_pos;
    st->st_round = (int)a->st_round;
    st->data_epoch = (long)a->data_epoch;
    st->data_cursor = (long)a->data_cursor;
    st->seed = a->seed;
    st->best_metric = a->best_metric;
    st->world_size = (int)a->world_size;
    snprintf(st->st_file, sizeof st->st_file, "%s", a->st_file);
}

static char* read_config(hid_t file, const char* path) {
    hid_t ds = H5Dopen2(file, "/config", H5P_DEFAULT);
    hid_t t = ds >= 0 ? H5Dget_type(ds) : -1;
    need(t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0, path, "/config");
    size_t n = H5Tget_size(t);
    char* text = (char*)callocCheck(n + 1, 1);
    need(H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) >= 0, path, "/config");
    H5Tclose(t);
    H5Dclose(ds);
    return text;
}

void ckpt_load(const char* path, CagNet* m, CkptState* st, char** config_text) {
    hid_t file = weights_open_h5(path);
    weights_read_group(file, WEIGHTS_GROUP, &m->pt, m->params, 1, path);
    H5Quiet q = h5_quiet();
    CkptAttrs a;
    char* err = ckpt_attrs_read(file, &a, path);
    if (err) ZS_FAIL(VERIFY_HINT, "checkpoint %s", err);
    Optimizer* opts[3] = {&m->opt_e, &m->opt_d, &m->opt_g};
    for (int k = 0; k < 3; k++) load_optim(file, k, &a.optim[k], opts[k], path);
    state_from_attrs(st, &a);
    if (config_text) *config_text = read_config(file, path);
    h5_loud(q);
    h5Check(H5Fclose(file));
}

// ---------------------------------------------------------------- listing
// `ckpt info` runs on files whatever their state. It opens the attributes
// the format defines by name and reads each only when it is one value of a
// plain type (a corrupt dataspace or size must not make HDF5 write past a
// buffer); it never lists attributes by index or H5Aiterate: HDF5 1.10
// builds a table of all of them for that and crashes freeing it when one is
// corrupt.

// " NAME VALUE" of attribute a ("?" when unreadable).
static void attr_print(hid_t a, const char* name, FILE* out) {
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    size_t size = t >= 0 ? H5Tget_size(t) : 0;
    char text[256] = "?";
    if (n != 1) {
        snprintf(text, sizeof text, "(%lld values)", (long long)n);
    } else if (c == H5T_INTEGER && size <= 8) {
        long long v = 0;
        unsigned long long u = 0;
        if (H5Tget_sign(t) == H5T_SGN_NONE) {
            if (H5Aread(a, H5T_NATIVE_ULLONG, &u) >= 0) snprintf(text, sizeof text, "%llu", u);
        } else if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0) {
            snprintf(text, sizeof text, "%lld", v);
        }
    } else if (c == H5T_FLOAT && size <= 8) {
        double v = 0;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) double_text_shortest(text, sizeof text, v);
    } else if (c == H5T_STRING && H5Tis_variable_str(t) == 0 && size < sizeof text) {
        char s[sizeof text];
        memset(s, 0, sizeof s);
        if (H5Aread(a, t, s) >= 0) memcpy(text, s, sizeof text);
    }
    fprintf(out, " %s %s", name, text);
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
}

// "  GROUP: name value name value ..." and, for /meta, how many of the
// datasets of ns have their checksum.
static void print_attrs(hid_t file, const char* group, const CkptNames* ns, FILE* out) {
    hid_t g = H5Lexists(file, group + 1, H5P_DEFAULT) > 0 ? H5Gopen2(file, group, H5P_DEFAULT) : -1;
    if (g < 0) {
        fprintf(out, "  %s: cannot be opened\n", group);
        return;
    }
    fprintf(out, "  %s:", group);
    const char* names[32];
    int n = ckpt_attr_names(group, names, 32);
    for (int i = 0; i < n; i++) {
        hid_t a = H5Aexists(g, names[i]) > 0 ? H5Aopen(g, names[i], H5P_DEFAULT) : -1;
        if (a < 0) {
            fprintf(out, " %s (missing)", names[i]);
            continue;
        }
        attr_print(a, names[i], out);
        H5Aclose(a);
    }
    int n_crc = 0;
    for (int i = 0; i < ns->n && strcmp(group, "/meta") == 0; i++) {
        char name[PATH_CAP + 16];
        snprintf(name, sizeof name, CKPT_CRC_PREFIX "%s", ns->v[i]);
        n_crc += H5Aexists(g, name) > 0;
    }
    n_crc += strcmp(group, "/meta") == 0 && H5Aexists(g, CKPT_ATTRS_CRC) > 0;
    if (n_crc) fprintf(out, " (%d CRC-32C checksums)", n_crc);
    fputc('\n', out);
    H5Gclose(g);
}

void ckpt_print_info(const char* path, FILE* out) {
    hid_t file = weights_open_h5(path);
    H5Quiet q = h5_quiet();
    int is_ckpt = H5Lexists(file, "state", H5P_DEFAULT) > 0;
    if (is_ckpt) {
        fprintf(out, "checkpoint %s\n", path);
        static const char* const groups[] = {"/state", "/meta", "/optim/e", "/optim/d", "/optim/g"};
        CkptNames ns;
        if (ckpt_names_collect(file, &ns) != 0) fprintf(out, "  (the datasets cannot be listed)\n");
        for (int i = 0; i < COUNT(groups); i++) print_attrs(file, groups[i], &ns, out);
        ckpt_names_free(&ns);
    }
    h5_loud(q);
    if (H5Fclose(file) < 0) ZS_FAIL(VERIFY_HINT, "cannot close '%s': the file is corrupt", path);
    weights_list_h5(path, out);
    if (is_ckpt) {  // the verdict of `zsseg ckpt verify`
        int n = 0;
        char* err = ckpt_verify_count(path, &n);
        if (err) fprintf(out, "verify: FAILED: %s\n", err);
        else fprintf(out, "verify: ok (%d datasets verified)\n", n);
        free(err);
    }
}

int ckpt_list(const char* run_dir, char*** paths) {
    char dir[PATH_CAP], latest[PATH_CAP], first[256] = "";
    path_join(dir, run_dir, "ckpt");
    long* its;
    int n = iter_files(dir, &its), k = 0;
    char** out = (char**)mallocCheck((size_t)(n + 1) * sizeof(char*));
    path_join(latest, dir, "latest");
    FILE* fp = fopen(latest, "r");
    if (fp) {
        if (!fgets(first, sizeof first, fp)) first[0] = '\0';
        fclose(fp);
        first[strcspn(first, "\r\n")] = '\0';
        size_t len = strlen(first);
        char p[PATH_CAP];
        // a plain name of a finished file in the directory, else ignored
        if (len && !strchr(first, '/') && !(len > 4 && strcmp(first + len - 4, ".tmp") == 0)) {
            path_join(p, dir, first);
            if (access(p, F_OK) == 0) out[k++] = strf("%s", p);
            else first[0] = '\0';
        } else {
            first[0] = '\0';
        }
    }
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "iter_%08ld.h5", its[i]);
        if (strcmp(name, first) != 0) out[k++] = strf("%s/%s", dir, name);
    }
    free(its);
    *paths = out;
    return k;
}
