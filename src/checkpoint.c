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

#include "common.h"
#include "weights_h5.h"

#ifndef ZSSEG_VERSION
#define ZSSEG_VERSION "dev"
#endif
#ifndef ZSSEG_GIT_REVISION
#define ZSSEG_GIT_REVISION "unknown"
#endif

#define MAX_RANK 8
#define SLAB_BYTES ((size_t)16 << 20)  // read buffer bound of a dataset CRC
#define CRC_PREFIX "crc32c:"
#define PATH_CAP 4096
#define VERIFY_HINT "run `zsseg ckpt verify FILE`; if it fails, resume from an earlier checkpoint"
#define MODEL_HINT                                                                      \
    "the checkpoint was written by a different model or optim.e_optimizer: resume with " \
    "the config stored in it (`zsseg ckpt info FILE` shows it)"

static const char* const state_attrs[] = {"iter",       "stage",      "iter_in_stage",
                                          "mixed_pos",  "st_round",   "data_epoch",
                                          "data_cursor", "seed",      "best_metric"};
static const char* const meta_attrs[] = {"format_version", "zsseg_version", "git_revision",
                                         "world_size", "created"};
static const char* const optim_names[3] = {"e", "d", "g"};
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
typedef struct {
    char** v;  // "/params/...", absolute
    int n, cap;
} Names;

static herr_t names_cb(hid_t g, const char* name, const H5L_info_t* info, void* op) {
    (void)info;
    Names* ns = (Names*)op;
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

// Every dataset of the file; -1 when the file cannot be walked (corrupt).
static int names_collect(hid_t file, Names* ns) {
    memset(ns, 0, sizeof *ns);
    return H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, names_cb, ns) < 0 ? -1 : 0;
}

static void names_free(Names* ns) {
    for (int i = 0; i < ns->n; i++) free(ns->v[i]);
    free(ns->v);
}

// Bytes the dataset's shape and datatype call for; 0 on overflow or error.
static hsize_t dataset_bytes(hid_t ds, int* ndim, hsize_t* dims) {
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t bytes = 0;
    if (type >= 0 && nd >= 0 && nd <= MAX_RANK && H5Sget_simple_extent_dims(space, dims, NULL) >= 0) {
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
static int dataset_crc(hid_t ds, uint32_t* crc) {
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds);
    hsize_t dims[MAX_RANK], start[MAX_RANK] = {0}, count[MAX_RANK];
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    int rc = -1;
    uint8_t* buf = NULL;
    if (type < 0 || nd < 0 || nd > MAX_RANK || H5Sget_simple_extent_dims(space, dims, NULL) < 0)
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

// /meta last: its checksums are read back from the datasets as written.
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
    Names ns;
    if (names_collect(file, &ns) != 0)
        ZS_FAIL("check free disk space", "cannot list the datasets written to '%s'", path);
    for (int i = 0; i < ns.n; i++) {
        hid_t ds = H5Dopen2(file, ns.v[i], H5P_DEFAULT);
        h5Check(ds);
        uint32_t crc = 0;
        if (dataset_crc(ds, &crc) != 0)
            ZS_FAIL("check free disk space", "cannot read back %s of '%s'", ns.v[i], path);
        h5Check(H5Dclose(ds));
        char name[PATH_CAP];
        snprintf(name, sizeof name, CRC_PREFIX "%s", ns.v[i]);
        h5_attr_write(g, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, 0, &crc);
    }
    names_free(&ns);
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
        char* end = NULL;
        if (strncmp(e->d_name, "iter_", 5) != 0) continue;
        long it = strtol(e->d_name + 5, &end, 10);
        char canon[64];
        snprintf(canon, sizeof canon, "iter_%08ld.h5", it);
        if (it < 0 || strcmp(canon, e->d_name) != 0) continue;
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
    for (int k = 0; k < 3; k++) write_optim(file, optim_names[k], opts[k]);
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

// ---------------------------------------------------------------- verifying
typedef struct {
    hid_t file, meta;
    const char* path;
    double params_total;  // float32 elements under /params
    int verified;         // datasets whose checksum matched
} Verify;

// NULL, or the first problem of one dataset: dtype, stored size, checksum.
static char* verify_dataset(Verify* v, const char* name) {
    const char* path = v->path;
    hid_t ds = H5Dopen2(v->file, name, H5P_DEFAULT);
    if (ds < 0) return strf("'%s': cannot open dataset %s: the file is corrupt", path, name);
    char* err = NULL;
    hid_t type = H5Dget_type(ds);
    int is_f32 = type >= 0 && H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 4;
    int is_str = type >= 0 && H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) == 0;
    if (type >= 0) H5Tclose(type);
    int nd = 0;
    hsize_t dims[MAX_RANK] = {0};
    hsize_t want = dataset_bytes(ds, &nd, dims), have = H5Dget_storage_size(ds);
    uint32_t stored = 0, crc = 0;
    char attr[PATH_CAP];
    snprintf(attr, sizeof attr, CRC_PREFIX "%s", name);
    if (strcmp(name, "/config") == 0 ? !is_str : !is_f32) {
        err = strf("'%s': dataset %s has the wrong type (want %s)", path, name,
                   strcmp(name, "/config") == 0 ? "a string" : "float32");
    } else if (want != have && !(want == 0 && have == 0)) {
        err = strf("'%s': the shape of dataset %s calls for %llu bytes but %llu are stored: the "
                   "file is corrupt",
                   path, name, (unsigned long long)want, (unsigned long long)have);
    } else if (h5_attr_read(v->meta, attr, H5T_NATIVE_UINT32, &stored) != 0) {
        err = strf("'%s': /meta has no checksum '%s' for dataset %s", path, attr, name);
    } else if (dataset_crc(ds, &crc) != 0) {
        err = strf("'%s': cannot read dataset %s: the file is truncated or corrupt", path, name);
    } else if (crc != stored) {
        err = strf("'%s': dataset %s fails its CRC-32C check (stored 0x%08x, computed 0x%08x): "
                   "the file is corrupt",
                   path, name, stored, crc);
    } else {
        v->verified++;
        if (strncmp(name, WEIGHTS_GROUP "/", strlen(WEIGHTS_GROUP) + 1) == 0)
            v->params_total += (double)(want / 4);
    }
    H5Dclose(ds);
    return err;
}

// /optim/NAME: attributes, and m (and v for Adam) of shape (span_n) inside
// the parameters.
static char* verify_optim(Verify* v, const char* name) {
    char group[32], kind[16];
    snprintf(group, sizeof group, "/optim/%s", name);
    hid_t g = H5Gopen2(v->file, group, H5P_DEFAULT);
    if (g < 0) return strf("'%s': group %s is missing", v->path, group);
    char* err = NULL;
    long long step = 0;
    unsigned long long span[2] = {0, 0};  // span_lo, span_n
    if (h5_attr_read_string(g, "kind", kind, sizeof kind) != 0 ||
        (strcmp(kind, "sgd") != 0 && strcmp(kind, "adam") != 0))
        err = strf("'%s': %s lacks attribute 'kind' (\"sgd\" or \"adam\")", v->path, group);
    else if (h5_attr_read(g, "step", H5T_NATIVE_LLONG, &step) != 0)
        err = strf("'%s': %s lacks attribute 'step'", v->path, group);
    else if (h5_attr_read(g, "span_lo", H5T_NATIVE_ULLONG, &span[0]) != 0 ||
             h5_attr_read(g, "span_n", H5T_NATIVE_ULLONG, &span[1]) != 0)
        err = strf("'%s': %s lacks attribute 'span_lo' or 'span_n'", v->path, group);
    else if ((double)span[0] + (double)span[1] > v->params_total)
        err = strf("'%s': %s covers parameters [%llu, %llu) but /params holds %.0f", v->path,
                   group, span[0], span[0] + span[1], v->params_total);
    for (int k = 0; k < 2 && !err; k++) {
        const char* ds_name = k ? "v" : "m";
        int want = !k || strcmp(kind, "adam") == 0;
        htri_t has = H5Lexists(g, ds_name, H5P_DEFAULT);
        if (has <= 0 && want) {
            err = strf("'%s': %s/%s is missing", v->path, group, ds_name);
        } else if (has > 0 && !want) {
            err = strf("'%s': %s/%s present for an SGD optimizer", v->path, group, ds_name);
        } else if (has > 0) {
            hid_t ds = H5Dopen2(g, ds_name, H5P_DEFAULT);
            int nd = -1;
            hsize_t dims[MAX_RANK] = {0};
            if (ds >= 0) dataset_bytes(ds, &nd, dims);
            if (ds >= 0) H5Dclose(ds);
            if (nd != 1 || dims[0] != span[1])
                err = strf("'%s': %s/%s has %d dimensions of first size %llu but span_n says "
                           "(%llu): the shape differs",
                           v->path, group, ds_name, nd, (unsigned long long)dims[0], span[1]);
        }
    }
    H5Gclose(g);
    return err;
}

// The checks of ckpt_verify once the file is open, silenced.
static char* verify_open(Verify* v) {
    const char* path = v->path;
    static const char* const groups[] = {WEIGHTS_GROUP, "/optim", "/state", "/meta"};
    for (int i = 0; i < COUNT(groups); i++)
        if (H5Lexists(v->file, groups[i] + 1, H5P_DEFAULT) <= 0)
            return strf("'%s': group %s is missing: not a zsseg checkpoint (a weights file?)",
                        path, groups[i]);
    if (H5Lexists(v->file, "config", H5P_DEFAULT) <= 0)
        return strf("'%s': dataset /config is missing", path);
    hid_t state = H5Gopen2(v->file, "/state", H5P_DEFAULT);
    for (int i = 0; i < COUNT(state_attrs); i++)
        if (H5Aexists(state, state_attrs[i]) <= 0) {
            H5Gclose(state);
            return strf("'%s': /state lacks attribute '%s'", path, state_attrs[i]);
        }
    H5Gclose(state);
    for (int i = 0; i < COUNT(meta_attrs); i++)
        if (H5Aexists(v->meta, meta_attrs[i]) <= 0)
            return strf("'%s': /meta lacks attribute '%s'", path, meta_attrs[i]);
    long long version = 0;
    if (h5_attr_read(v->meta, "format_version", H5T_NATIVE_LLONG, &version) != 0 ||
        version != CKPT_FORMAT_VERSION)
        return strf("'%s': checkpoint format_version %lld, this zsseg reads version %d", path,
                    version, CKPT_FORMAT_VERSION);
    Names ns;
    if (names_collect(v->file, &ns) != 0) {
        names_free(&ns);
        return strf("'%s': cannot list the datasets: the file is corrupt", path);
    }
    char* err = NULL;
    for (int i = 0; i < ns.n && !err; i++) err = verify_dataset(v, ns.v[i]);
    for (int k = 0; k < 3 && !err; k++) err = verify_optim(v, optim_names[k]);
    // every checksum names an existing dataset: none has gone missing
    hsize_t n_attrs = 0;
    H5O_info_t info;
    if (!err && H5Oget_info2(v->meta, &info, H5O_INFO_NUM_ATTRS) >= 0) n_attrs = info.num_attrs;
    for (hsize_t a = 0; a < n_attrs && !err; a++) {
        char name[PATH_CAP];
        if (H5Aget_name_by_idx(v->meta, ".", H5_INDEX_NAME, H5_ITER_INC, a, name, sizeof name,
                               H5P_DEFAULT) < 0 ||
            strncmp(name, CRC_PREFIX, strlen(CRC_PREFIX)) != 0)
            continue;
        int found = 0;
        for (int i = 0; i < ns.n && !found; i++) found = strcmp(ns.v[i], name + strlen(CRC_PREFIX)) == 0;
        if (!found) err = strf("'%s': dataset %s (checksummed in /meta) is missing", path, name + strlen(CRC_PREFIX));
    }
    names_free(&ns);
    return err;
}

char* ckpt_verify(const char* path) { return ckpt_verify_count(path, NULL); }

char* ckpt_verify_count(const char* path, int* n_datasets) {
    if (n_datasets) *n_datasets = 0;
    if (access(path, R_OK) != 0) return strf("cannot read checkpoint '%s': %s", path, strerror(errno));
    H5Quiet q = h5_quiet();
    char* err = NULL;
    Verify v = {-1, -1, path, 0.0, 0};
    if (H5Fis_hdf5(path) <= 0) {
        err = strf("'%s' is not an HDF5 file", path);
    } else if ((v.file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        err = strf("cannot open '%s': the HDF5 file is truncated or corrupt", path);
    } else {
        v.meta = H5Lexists(v.file, "meta", H5P_DEFAULT) > 0 ? H5Gopen2(v.file, "/meta", H5P_DEFAULT) : -1;
        err = verify_open(&v);
    }
    if (v.meta >= 0) H5Gclose(v.meta);
    if (v.file >= 0 && H5Fclose(v.file) < 0 && !err)
        err = strf("cannot close '%s': the file is corrupt", path);
    h5_loud(q);
    if (!err && n_datasets) *n_datasets = v.verified;
    return err;
}

// ---------------------------------------------------------------- loading
static void need(int ok, const char* path, const char* what) {
    if (!ok) ZS_FAIL(VERIFY_HINT, "checkpoint '%s': cannot read %s", path, what);
}

static void read_floats(hid_t g, const char* group, const char* name, float* x, size_t n,
                        const char* path) {
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    int nd = -1;
    hsize_t dims[MAX_RANK] = {0};
    if (ds >= 0) dataset_bytes(ds, &nd, dims);
    if (ds >= 0 && (nd != 1 || dims[0] != n))
        ZS_FAIL(MODEL_HINT, "checkpoint '%s': %s/%s holds %llu floats, the model's optimizer %zu",
                path, group, name, nd == 1 ? (unsigned long long)dims[0] : 0ull, n);
    need(ds >= 0 && (n == 0 || H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0),
         path, name);
    H5Dclose(ds);
}

static void load_optim(hid_t file, const char* name, Optimizer* o, const char* path) {
    char group[32], kind[16];
    snprintf(group, sizeof group, "/optim/%s", name);
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    need(g >= 0, path, group);
    long long step = 0;
    unsigned long long lo = 0, n = 0;
    need(h5_attr_read_string(g, "kind", kind, sizeof kind) == 0, path, "the optimizer kind");
    need(h5_attr_read(g, "step", H5T_NATIVE_LLONG, &step) == 0, path, "the optimizer step");
    need(h5_attr_read(g, "span_lo", H5T_NATIVE_ULLONG, &lo) == 0 &&
             h5_attr_read(g, "span_n", H5T_NATIVE_ULLONG, &n) == 0,
         path, "the optimizer span");
    if (strcmp(kind, kind_name(o->kind)) != 0)
        ZS_FAIL(MODEL_HINT, "checkpoint '%s': %s holds %s state but the model's optimizer is %s",
                path, group, kind, kind_name(o->kind));
    if (lo != o->span_lo || n != o->span_n)
        ZS_FAIL(MODEL_HINT,
                "checkpoint '%s': %s covers parameters [%llu, %llu) but the model's optimizer "
                "covers [%zu, %zu): the span size differs",
                path, group, lo, lo + n, o->span_lo, o->span_lo + o->span_n);
    read_floats(g, group, "m", o->m, o->span_n, path);
    if (o->kind == OPTIM_ADAM) read_floats(g, group, "v", o->v, o->span_n, path);
    o->step = step;
    H5Gclose(g);
}

static void load_state(hid_t file, CkptState* st, const char* path) {
    hid_t g = H5Gopen2(file, "/state", H5P_DEFAULT);
    need(g >= 0, path, "/state");
    long long v[7];  // state_attrs up to seed, in order
    for (int i = 0; i < 7; i++) need(h5_attr_read(g, state_attrs[i], H5T_NATIVE_LLONG, &v[i]) == 0, path, state_attrs[i]);
    unsigned long long seed = 0;
    need(h5_attr_read(g, "seed", H5T_NATIVE_ULLONG, &seed) == 0, path, "seed");
    need(h5_attr_read(g, "best_metric", H5T_NATIVE_DOUBLE, &st->best_metric) == 0, path, "best_metric");
    H5Gclose(g);
    st->iter = (long)v[0];
    st->stage = (int)v[1];
    st->iter_in_stage = (long)v[2];
    st->mixed_pos = (long)v[3];
    st->st_round = (int)v[4];
    st->data_epoch = (long)v[5];
    st->data_cursor = (long)v[6];
    st->seed = seed;
    long long world = 0;
    g = H5Gopen2(file, "/meta", H5P_DEFAULT);
    need(g >= 0 && h5_attr_read(g, "world_size", H5T_NATIVE_LLONG, &world) == 0, path, "/meta world_size");
    H5Gclose(g);
    st->world_size = (int)world;
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
    Optimizer* opts[3] = {&m->opt_e, &m->opt_d, &m->opt_g};
    for (int k = 0; k < 3; k++) load_optim(file, optim_names[k], opts[k], path);
    load_state(file, st, path);
    if (config_text) *config_text = read_config(file, path);
    h5_loud(q);
    h5Check(H5Fclose(file));
}

// ---------------------------------------------------------------- listing
// Shortest "%.Ng" that reads back as v.
typedef struct {
    FILE* out;
    int n_crc;
} AttrPrint;

static herr_t attr_print_cb(hid_t obj, const char* name, const H5A_info_t* info, void* op) {
    (void)info;
    AttrPrint* ap = (AttrPrint*)op;
    if (strncmp(name, CRC_PREFIX, strlen(CRC_PREFIX)) == 0) {
        ap->n_crc++;
        return 0;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    char text[256] = "?";
    if (c == H5T_INTEGER && H5Tget_sign(t) == H5T_SGN_NONE) {
        unsigned long long v;
        if (H5Aread(a, H5T_NATIVE_ULLONG, &v) >= 0) snprintf(text, sizeof text, "%llu", v);
    } else if (c == H5T_INTEGER) {
        long long v;
        if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0) snprintf(text, sizeof text, "%lld", v);
    } else if (c == H5T_FLOAT) {
        double v;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) double_text_shortest(text, sizeof text, v);
    } else if (c == H5T_STRING) {
        h5_attr_read_string(obj, name, text, sizeof text);
    }
    fprintf(ap->out, " %s %s", name, text);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return 0;
}

// "  GROUP: name value name value ..." (checksums only counted).
static void print_attrs(hid_t file, const char* group, FILE* out) {
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0) return;
    AttrPrint ap = {out, 0};
    fprintf(out, "  %s:", group);
    hsize_t idx = 0;
    H5Aiterate2(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, attr_print_cb, &ap);
    if (ap.n_crc) fprintf(out, " (%d CRC-32C checksums)", ap.n_crc);
    fputc('\n', out);
    H5Gclose(g);
}

void ckpt_print_info(const char* path, FILE* out) {
    hid_t file = weights_open_h5(path);
    H5Quiet q = h5_quiet();
    if (H5Lexists(file, "state", H5P_DEFAULT) > 0) {
        fprintf(out, "checkpoint %s\n", path);
        print_attrs(file, "/state", out);
        print_attrs(file, "/meta", out);
        for (int k = 0; k < 3; k++) {
            char group[32];
            snprintf(group, sizeof group, "/optim/%s", optim_names[k]);
            print_attrs(file, group, out);
        }
    }
    h5_loud(q);
    h5Check(H5Fclose(file));
    weights_list_h5(path, out);
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
