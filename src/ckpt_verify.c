// Checkpoint verification (checkpoint.h: ckpt_verify, ckpt_state_check) and
// the checked attributes (ckpt_internal.h). Everything here reads the file as
// found, corrupt or not: every HDF5 call runs silenced, every attribute read
// is bounded (one value, strings shorter than their buffer), and the first
// problem comes back as a message instead of an exit.
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "ckpt_internal.h"
#include "common.h"
#include "weights_h5.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

// ---------------------------------------------------------------- checked attributes
typedef struct {
    const char* name;
    char kind;  // 'i' int64, 'u' uint64, 'f' float64, 's' fixed-length string
    size_t off, cap;
} AttrField;

#define FIELD(type, member, kind) {#member, kind, offsetof(type, member), sizeof(((type*)0)->member)}
static const AttrField meta_fields[] = {FIELD(CkptAttrs, format_version, 'i'),
                                        FIELD(CkptAttrs, world_size, 'i')};
static const AttrField state_fields[] = {
    FIELD(CkptAttrs, iter, 'i'),       FIELD(CkptAttrs, stage, 'i'),
    FIELD(CkptAttrs, iter_in_stage, 'i'), FIELD(CkptAttrs, mixed_pos, 'i'),
    FIELD(CkptAttrs, st_round, 'i'),   FIELD(CkptAttrs, st_file, 's'),
    FIELD(CkptAttrs, data_epoch, 'i'), FIELD(CkptAttrs, data_cursor, 'i'),
    FIELD(CkptAttrs, seed, 'u'),       FIELD(CkptAttrs, best_metric, 'f')};
static const AttrField optim_fields[] = {
    FIELD(CkptOptimAttrs, kind, 's'), FIELD(CkptOptimAttrs, step, 'i'),
    FIELD(CkptOptimAttrs, span_lo, 'u'), FIELD(CkptOptimAttrs, span_n, 'u')};

// One group of checked attributes: its fields live at base.
typedef struct {
    char group[16];
    const AttrField* f;
    int n;
    char* base;
} AttrGroup;

// The fixed order of the checksum: /meta, /state, /optim/e, /optim/d, /optim/g.
static int attr_groups(const CkptAttrs* a, AttrGroup out[5]) {
    out[0] = (AttrGroup){"/meta", meta_fields, COUNT(meta_fields), (char*)a};
    out[1] = (AttrGroup){"/state", state_fields, COUNT(state_fields), (char*)a};
    for (int k = 0; k < 3; k++) {
        out[2 + k] = (AttrGroup){"", optim_fields, COUNT(optim_fields), (char*)&a->optim[k]};
        snprintf(out[2 + k].group, sizeof out[2 + k].group, "/optim/%s", ckpt_optim_names[k]);
    }
    return 5;
}

// One value of attribute name into out (cap bytes), converted to mem_type;
// mem_type < 0: a fixed-length string, NUL-terminated, shorter than cap.
// -1 when missing, of several values or of another kind: a corrupt
// dataspace must not make HDF5 write past out.
static int attr_get(hid_t obj, const char* name, hid_t mem_type, void* out, size_t cap) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    int ok = sp >= 0 && t >= 0 && H5Sget_simple_extent_npoints(sp) == 1;
    if (ok && mem_type < 0) {
        ok = H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0 && H5Tget_size(t) < cap;
        if (ok) memset(out, 0, cap);
        ok = ok && H5Aread(a, t, out) >= 0;
    } else if (ok) {
        H5T_class_t c = H5Tget_class(t);
        ok = (c == H5T_INTEGER || c == H5T_FLOAT) && H5Aread(a, mem_type, out) >= 0;
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    return ok ? 0 : -1;
}

static hid_t field_mem_type(char kind) {
    return kind == 'i' ? H5T_NATIVE_LLONG
           : kind == 'u' ? H5T_NATIVE_ULLONG
           : kind == 'f' ? H5T_NATIVE_DOUBLE
                         : -1;
}

char* ckpt_attrs_read(hid_t file, CkptAttrs* a, const char* path) {
    memset(a, 0, sizeof *a);
    AttrGroup gs[5];
    int ng = attr_groups(a, gs);
    for (int i = 0; i < ng; i++) {
        hid_t g = H5Lexists(file, gs[i].group + 1, H5P_DEFAULT) > 0
                      ? H5Gopen2(file, gs[i].group, H5P_DEFAULT)
                      : -1;
        if (g < 0) return strf("'%s': group %s is missing", path, gs[i].group);
        for (int j = 0; j < gs[i].n; j++) {
            const AttrField* f = &gs[i].f[j];
            if (attr_get(g, f->name, field_mem_type(f->kind), gs[i].base + f->off, f->cap) != 0) {
                H5Gclose(g);
                return strf("'%s': %s lacks attribute '%s'", path, gs[i].group, f->name);
            }
        }
        H5Gclose(g);
    }
    return NULL;
}

static uint32_t crc_u64(uint32_t crc, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    return crc32c_extend(crc, b, sizeof b);
}

uint32_t ckpt_attrs_crc(const CkptAttrs* a, const CkptNames* ns) {
    AttrGroup gs[5];
    int ng = attr_groups(a, gs);
    uint32_t crc = 0;
    for (int i = 0; i < ng; i++)
        for (int j = 0; j < gs[i].n; j++) {
            const AttrField* f = &gs[i].f[j];
            const char* p = gs[i].base + f->off;
            crc = crc32c_extend(crc, gs[i].group, strlen(gs[i].group));
            crc = crc32c_extend(crc, "/", 1);
            crc = crc32c_extend(crc, f->name, strlen(f->name) + 1);
            if (f->kind == 's') {
                crc = crc32c_extend(crc, p, strnlen(p, f->cap - 1) + 1);
            } else {
                uint64_t v;  // int64 two's complement, uint64, or the float64 bits
                memcpy(&v, p, sizeof v);
                crc = crc_u64(crc, v);
            }
        }
    for (int i = 0; i < ns->n; i++) crc = crc32c_extend(crc, ns->v[i], strlen(ns->v[i]) + 1);
    return crc;
}

int ckpt_attr_names(const char* group, const char** names, int cap) {
    static const char* const info_meta[] = {"zsseg_version", "git_revision", "created"};
    CkptAttrs a;  // only the layout is used
    memset(&a, 0, sizeof a);
    AttrGroup gs[5];
    int ng = attr_groups(&a, gs), n = 0;
    for (int i = 0; i < ng; i++)
        if (strcmp(gs[i].group, group) == 0)
            for (int j = 0; j < gs[i].n && n < cap; j++) names[n++] = gs[i].f[j].name;
    for (int i = 0; i < COUNT(info_meta) && n < cap && strcmp(group, "/meta") == 0; i++)
        names[n++] = info_meta[i];
    return n;
}

long ckpt_iter_of_name(const char* path) {
    const char* base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, "iter_", 5) != 0) return -1;
    char* end = NULL;
    long it = strtol(base + 5, &end, 10);
    char canon[64];
    snprintf(canon, sizeof canon, "iter_%08ld.h5", it);
    return it >= 0 && strcmp(canon, base) == 0 ? it : -1;
}

// ---------------------------------------------------------------- consistency
typedef struct {
    const char* what;
    long long v, lo, hi;
} Range;

// Ranges every checkpoint satisfies whatever its schedule; a value outside
// one is corruption the checksum may not see (a version-1 file).
static char* attrs_check(const CkptAttrs* a, const char* path) {
    const Range r[] = {
        {"/meta world_size", a->world_size, 1, INT_MAX},
        {"/state iter", a->iter, 0, LONG_MAX},
        {"/state stage", a->stage, 0, INT_MAX},
        {"/state iter_in_stage", a->iter_in_stage, 0, a->iter},
        {"/state mixed_pos", a->mixed_pos, 0, LONG_MAX},
        {"/state st_round", a->st_round, -1, INT_MAX},
        {"/state data_epoch", a->data_epoch, 0, LONG_MAX},
        {"/state data_cursor", a->data_cursor, 0, LONG_MAX},
        {"/optim/e step", a->optim[0].step, 0, LONG_MAX},
        {"/optim/d step", a->optim[1].step, 0, LONG_MAX},
        {"/optim/g step", a->optim[2].step, 0, LONG_MAX},
    };
    for (int i = 0; i < COUNT(r); i++)
        if (r[i].v < r[i].lo || r[i].v > r[i].hi)
            return strf("'%s': %s is %lld, outside [%lld, %lld]: the file is corrupt", path,
                        r[i].what, r[i].v, r[i].lo, r[i].hi);
    if (!(a->best_metric == -1.0 || (isfinite(a->best_metric) && a->best_metric >= 0.0)))
        return strf("'%s': /state best_metric is %g, neither -1 (none) nor a finite metric: the "
                    "file is corrupt",
                    path, a->best_metric);
    for (int k = 0; k < 3; k++)
        if (strcmp(a->optim[k].kind, "sgd") != 0 && strcmp(a->optim[k].kind, "adam") != 0)
            return strf("'%s': /optim/%s attribute 'kind' is \"%s\", not \"sgd\" or \"adam\"",
                        path, ckpt_optim_names[k], a->optim[k].kind);
    long named = ckpt_iter_of_name(path);
    if (named >= 0 && named != a->iter)
        return strf("'%s': /state iter is %lld but the file name says iteration %ld: the file is "
                    "corrupt or was renamed",
                    path, a->iter, named);
    return NULL;
}

char* ckpt_state_check(const CkptState* st, const long* stage_iters, int n_stages,
                       const char* path) {
    if (st->stage < 0 || st->stage >= n_stages)
        return strf("checkpoint '%s' is at stage %d but schedule.stages has %d stages: resume "
                    "with the schedule it was written with",
                    path, st->stage, n_stages);
    long before = 0, total = 0;
    for (int s = 0; s < n_stages; s++) {
        if (s < st->stage) before += stage_iters[s];
        total += stage_iters[s];
    }
    if (st->iter_in_stage < 0 || st->iter_in_stage > stage_iters[st->stage] ||
        st->iter != before + st->iter_in_stage || st->iter > total)
        return strf("checkpoint '%s' is at iteration %ld (stage %d, its iteration %ld) but the "
                    "schedule has %ld iterations before stage %d, %ld in it and %ld in all: the "
                    "schedule differs from the one it was written with, or the file is corrupt",
                    path, st->iter, st->stage, st->iter_in_stage, before, st->stage,
                    stage_iters[st->stage], total);
    return NULL;
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
    // exactly IEEE float32 LE: the checksum reads the bytes as stored, so a corrupt
    // precision or exponent field would still match and only the load would see it
    int is_f32 = type >= 0 && H5Tequal(type, H5T_IEEE_F32LE) > 0;
    int is_str = type >= 0 && H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) == 0;
    if (type >= 0) H5Tclose(type);
    int nd = 0;
    hsize_t dims[CKPT_MAX_RANK] = {0};
    hsize_t want = ckpt_dataset_bytes(ds, &nd, dims), have = H5Dget_storage_size(ds);
    uint32_t stored = 0, crc = 0;
    char attr[4096];
    snprintf(attr, sizeof attr, CKPT_CRC_PREFIX "%s", name);
    if (strcmp(name, "/config") == 0 ? !is_str : !is_f32) {
        err = strf("'%s': dataset %s has the wrong type (want %s)", path, name,
                   strcmp(name, "/config") == 0 ? "a string" : "float32");
    } else if (want != have && !(want == 0 && have == 0)) {
        err = strf("'%s': the shape of dataset %s calls for %llu bytes but %llu are stored: the "
                   "file is corrupt",
                   path, name, (unsigned long long)want, (unsigned long long)have);
    } else if (attr_get(v->meta, attr, H5T_NATIVE_UINT32, &stored, sizeof stored) != 0) {
        err = strf("'%s': /meta has no checksum '%s' for dataset %s", path, attr, name);
    } else if (ckpt_dataset_crc(ds, &crc) != 0) {
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

// /optim/NAME (attributes already read): the span inside the parameters, m
// (and v for Adam) of shape (span_n).
static char* verify_optim(Verify* v, int k, const CkptOptimAttrs* o) {
    char group[32];
    snprintf(group, sizeof group, "/optim/%s", ckpt_optim_names[k]);
    if ((double)o->span_lo + (double)o->span_n > v->params_total)
        return strf("'%s': %s covers parameters [%llu, %llu) but /params holds %.0f", v->path,
                    group, o->span_lo, o->span_lo + o->span_n, v->params_total);
    hid_t g = H5Gopen2(v->file, group, H5P_DEFAULT);
    if (g < 0) return strf("'%s': group %s is missing", v->path, group);
    char* err = NULL;
    for (int i = 0; i < 2 && !err; i++) {
        const char* ds_name = i ? "v" : "m";
        int want = !i || strcmp(o->kind, "adam") == 0;
        htri_t has = H5Lexists(g, ds_name, H5P_DEFAULT);
        if (has <= 0 && want) {
            err = strf("'%s': %s/%s is missing", v->path, group, ds_name);
        } else if (has > 0 && !want) {
            err = strf("'%s': %s/%s present for an SGD optimizer", v->path, group, ds_name);
        } else if (has > 0) {
            hid_t ds = H5Dopen2(g, ds_name, H5P_DEFAULT);
            int nd = -1;
            hsize_t dims[CKPT_MAX_RANK] = {0};
            if (ds >= 0) ckpt_dataset_bytes(ds, &nd, dims);
            if (ds >= 0) H5Dclose(ds);
            if (nd != 1 || dims[0] != o->span_n)
                err = strf("'%s': %s/%s has %d dimensions of first size %llu but span_n says "
                           "(%llu): the shape differs",
                           v->path, group, ds_name, nd, (unsigned long long)dims[0], o->span_n);
        }
    }
    H5Gclose(g);
    return err;
}

// The format version and the attributes: present, checksummed (version 2),
// consistent.
static char* verify_attrs(Verify* v, CkptAttrs* a, const CkptNames* ns) {
    const char* path = v->path;
    char* err = ckpt_attrs_read(v->file, a, path);
    if (err) return err;
    const char* names[16];
    int n = ckpt_attr_names("/meta", names, 16);
    for (int i = 0; i < n; i++)
        if (H5Aexists(v->meta, names[i]) <= 0)
            return strf("'%s': /meta lacks attribute '%s'", path, names[i]);
    if (a->format_version == 1) {
        log_warn("checkpoint '%s' has format_version 1 (written by an older zsseg): its "
                 "attributes (iteration, data position, optimizer steps) carry no checksum, "
                 "only their ranges are checked",
                 path);
    } else if (a->format_version != CKPT_FORMAT_VERSION) {
        return strf("'%s': checkpoint format_version %lld, this zsseg reads versions 1 and %d",
                    path, a->format_version, CKPT_FORMAT_VERSION);
    } else {
        uint32_t stored = 0, crc = ckpt_attrs_crc(a, ns);
        if (attr_get(v->meta, CKPT_ATTRS_CRC, H5T_NATIVE_UINT32, &stored, sizeof stored) != 0)
            return strf("'%s': /meta lacks the attribute checksum '" CKPT_ATTRS_CRC "'", path);
        if (crc != stored)
            return strf("'%s': the attributes of /state, /meta and /optim or the list of "
                        "datasets fail their CRC-32C check (stored 0x%08x, computed 0x%08x): the "
                        "file is corrupt",
                        path, stored, crc);
    }
    return attrs_check(a, path);
}

// The checks of ckpt_verify once the file is open, silenced.
static char* verify_open(Verify* v) {
    const char* path = v->path;
    static const char* const groups[] = {WEIGHTS_GROUP, "/optim", "/state", "/meta"};
    for (int i = 0; i < COUNT(groups); i++)
        if (H5Lexists(v->file, groups[i] + 1, H5P_DEFAULT) <= 0)
            return strf("'%s': group %s is missing: not a zsseg checkpoint (a weights file?)",
                        path, groups[i]);
    if (v->meta < 0) return strf("'%s': cannot open group /meta: the file is corrupt", path);
    if (H5Lexists(v->file, "config", H5P_DEFAULT) <= 0)
        return strf("'%s': dataset /config is missing", path);
    CkptNames ns;
    if (ckpt_names_collect(v->file, &ns) != 0) {
        ckpt_names_free(&ns);
        return strf("'%s': cannot list the datasets: the file is corrupt", path);
    }
    CkptAttrs a;
    char* err = verify_attrs(v, &a, &ns);
    for (int i = 0; i < ns.n && !err; i++) err = verify_dataset(v, ns.v[i]);
    for (int k = 0; k < 3 && !err; k++) err = verify_optim(v, k, &a.optim[k]);
    ckpt_names_free(&ns);
    return err;
}

char* ckpt_verify(const char* path) { return ckpt_verify_count(path, NULL); }

char* ckpt_verify_count(const char* path, int* n_datasets) {
    if (n_datasets) *n_datasets = 0;
    char* unreadable = file_readable_problem(path, "checkpoint");  // a FIFO would block H5Fopen
    if (unreadable) return unreadable;
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
