// Checkpoints (checkpoint.h): a tiny CaGNet with noisy parameters and
// optimizer states saved and loaded back bitwise; ckpt_verify on corrupted
// copies (missing, not HDF5, truncated, one flipped bit, a missing /state
// attribute, a resized dataset with a matching checksum, a weights file);
// the attributes' checksum, format versions, range and file-name checks,
// ckpt_state_check and the verdict of ckpt info (test_metadata);
// strict-load refusals; ckpt_list order, `latest` and .tmp leftovers;
// pruning; config_diff.
// With an argument DIR: only write DIR/ckpt/iter_00000007.h5 and a copy with
// one flipped bit, DIR/flipped.h5 (the files of the `zsseg ckpt` CLI tests).
#include <hdf5.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "common.h"
#include "testing.h"
#include "tiny_cagnet.h"
#include "weights_h5.h"

static const uint8_t unseen[5] = {0, 1, 0, 1, 0};
static Config* cfg;
static char tmpdir[] = "/tmp/test_checkpoint_XXXXXX";
static char good[512];   // the checkpoint of iteration 7
static char child_path[4096];

static const CkptState state7 = {7, 1, 3, 3, 0, 2, 14, 0xF123456789ABCDEFull, 0.4321, 3, ""};

// Noise in every optimizer state and distinct step counts.
static void fill_optim(CagNet* m) {
    Optimizer* o[3] = {&m->opt_e, &m->opt_d, &m->opt_g};
    for (int k = 0; k < 3; k++) {
        t_fill_normal(o[k]->m, o[k]->span_n, 20 + (uint64_t)k, 0.1f);
        if (o[k]->v) t_fill_uniform(o[k]->v, o[k]->span_n, 30 + (uint64_t)k, 0.0f, 0.01f);
        o[k]->step = 5 + 2 * k;
    }
}

static void copy_file(const char* src, const char* dst, size_t keep) {  // keep 0: all
    size_t n = 0;
    char* data = file_read_all(src, &n);
    FILE* fp = fopenCheck(dst, "wb");
    fwriteCheck(data, 1, keep && keep < n ? keep : n, fp, dst);
    fcloseCheck(fp, dst);
    free(data);
}

static void flip_bit(const char* path, long offset, int bit) {
    FILE* fp = fopenCheck(path, "r+b");
    fseek(fp, offset, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, offset, SEEK_SET);
    fputc(c ^ (1 << bit), fp);
    fcloseCheck(fp, path);
}

// A copy of the good checkpoint with one bit of a float of dc's first tensor
// flipped; returns that dataset's path.
static const char* write_flipped(const CagNet* m, const char* dst, char* ds_name, size_t cap) {
    const ParamTensor* t = NULL;
    for (int i = 0; i < m->pt.n && !t; i++)
        if (m->pt.t[i].region == REGION_DC) t = &m->pt.t[i];
    snprintf(ds_name, cap, "/params/%s", t->name);
    for (char* c = ds_name; *c; c++)
        if (*c == '.') *c = '/';
    hid_t f = H5Fopen(good, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, ds_name, H5P_DEFAULT);
    haddr_t off = H5Dget_offset(ds);
    H5Dclose(ds);
    H5Fclose(f);
    copy_file(good, dst, 0);
    flip_bit(dst, (long)off + 4 * (long)(t->numel / 2) + 2, 3);
    return ds_name;
}

static void has(const char* s, const char* sub, int line) {
    CHECK(s && strstr(s, sub), "line %d: message lacks \"%s\": %s", line, sub, s ? s : "(null)");
}
#define HAS(s, sub) has((s), (sub), __LINE__)

static void expect_verify_error(const char* path, const char* sub1, const char* sub2) {
    int n = -1;
    char* err = ckpt_verify_count(path, &n);
    CHECK(err != NULL, "ckpt_verify accepted %s", path);
    HAS(err, path);
    HAS(err, sub1);
    if (sub2) HAS(err, sub2);
    CHECK(n == 0, "%d datasets counted for a failed verification", n);
    free(err);
}

static void test_crc(void) {
    CHECK(crc32c("123456789", 9) == 0xE3069283u, "crc32c(\"123456789\")");
    CHECK(crc32c_extend(crc32c("1234", 4), "56789", 5) == 0xE3069283u, "crc32c_extend");
    CHECK(crc32c_extend(0, "123456789", 9) == 0xE3069283u, "crc32c_extend from 0");
}

// ---------------------------------------------------------------- round trip
static void test_round_trip(CagNet* m, const char* cfg_text) {
    char run[256];
    snprintf(run, sizeof run, "%s/run", tmpdir);
    ckpt_save(run, &state7, m, cfg_text, 3, 0, good, sizeof good);
    char want[4096];
    snprintf(want, sizeof want, "%s/ckpt/iter_00000007.h5", run);
    CHECK(strcmp(good, want) == 0, "path_out %s, want %s", good, want);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", want);
    CHECK(access(want, F_OK) == 0 && access(tmp, F_OK) != 0, "committed, no .tmp left");

    int n = 0;
    char* err = ckpt_verify_count(good, &n);
    CHECK(err == NULL, "ckpt_verify of a fresh checkpoint: %s", err ? err : "");
    free(err);
    CHECK(n == m->pt.n + 6, "%d datasets verified, want %d params + e/m + d/m,v + g/m,v + config",
          n, m->pt.n);
    CHECK(ckpt_verify(good) == NULL, "ckpt_verify without a count");

    CagNet f;
    tiny_cagnet(&f, cfg, 5, unseen);
    t_fill_normal(f.params, f.pt.total, 77, 1.0f);  // nothing may survive the load
    CkptState st;
    memset(&st, 0xAB, sizeof st);
    char* text = NULL;
    ckpt_load(good, &f, &st, &text);
    CHECK(memcmp(f.params, m->params, m->pt.total * sizeof(float)) == 0, "params not bitwise");
    const Optimizer* a[3] = {&m->opt_e, &m->opt_d, &m->opt_g};
    const Optimizer* b[3] = {&f.opt_e, &f.opt_d, &f.opt_g};
    for (int k = 0; k < 3; k++) {
        CHECK(memcmp(a[k]->m, b[k]->m, a[k]->span_n * sizeof(float)) == 0, "optim %d m", k);
        CHECK(!a[k]->v || memcmp(a[k]->v, b[k]->v, a[k]->span_n * sizeof(float)) == 0,
              "optim %d v", k);
        CHECK(b[k]->step == 5 + 2 * k, "optim %d step %ld", k, b[k]->step);
    }
    CHECK(m->opt_e.kind == OPTIM_SGD && m->opt_d.kind == OPTIM_ADAM, "default optimizer kinds");
    CHECK(st.iter == 7 && st.stage == 1 && st.iter_in_stage == 3 && st.mixed_pos == 3 &&
              st.st_round == 0 && st.data_epoch == 2 && st.data_cursor == 14,
          "state: iter %ld stage %d in_stage %ld mixed %ld round %d epoch %ld cursor %ld", st.iter,
          st.stage, st.iter_in_stage, st.mixed_pos, st.st_round, st.data_epoch, st.data_cursor);
    CHECK(st.seed == 0xF123456789ABCDEFull, "seed %llx", (unsigned long long)st.seed);
    CHECK(st.best_metric == 0.4321 && st.world_size == 3, "best %.17g world %d", st.best_metric,
          st.world_size);
    CHECK(text && strcmp(text, cfg_text) == 0, "stored config differs");
    free(text);
    cagnet_free(&f);

    // layout details the header promises
    hid_t file = H5Fopen(good, H5F_ACC_RDONLY, H5P_DEFAULT);
    char kind[8] = "";
    hid_t g = H5Gopen2(file, "/optim/e", H5P_DEFAULT);
    hid_t at = H5Aopen(g, "kind", H5P_DEFAULT), ty = H5Aget_type(at);
    H5Aread(at, ty, kind);
    CHECK(strncmp(kind, "sgd", 3) == 0, "/optim/e kind '%s'", kind);
    CHECK(H5Lexists(g, "v", H5P_DEFAULT) == 0, "SGD has no v");
    H5Tclose(ty), H5Aclose(at), H5Gclose(g);
    unsigned crc = 0;
    at = H5Aopen_by_name(file, "/meta", "crc32c:/optim/g/v", H5P_DEFAULT, H5P_DEFAULT);
    H5Aread(at, H5T_NATIVE_UINT, &crc);
    H5Aclose(at);
    CHECK(crc == crc32c(m->opt_g.v, m->opt_g.span_n * sizeof(float)),
          "crc32c:/optim/g/v %08x is not the CRC of the little-endian floats", crc);
    H5Fclose(file);
}

// ---------------------------------------------------------------- corruption
static void test_corruptions(const CagNet* m) {
    char p[4096], name[512];
    snprintf(p, sizeof p, "%s/no_such.h5", tmpdir);
    expect_verify_error(p, "cannot read checkpoint", NULL);

    snprintf(p, sizeof p, "%s/text.h5", tmpdir);
    file_write_atomic(p, "not hdf5\n", 9);
    expect_verify_error(p, "is not an HDF5 file", NULL);

    struct stat sb;
    stat(good, &sb);
    snprintf(p, sizeof p, "%s/half.h5", tmpdir);
    copy_file(good, p, (size_t)sb.st_size / 2);
    expect_verify_error(p, "truncated", NULL);

    snprintf(p, sizeof p, "%s/flipped.h5", tmpdir);
    write_flipped(m, p, name, sizeof name);
    expect_verify_error(p, name, "fails its CRC-32C check");

    snprintf(p, sizeof p, "%s/no_cursor.h5", tmpdir);
    copy_file(good, p, 0);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete_by_name(f, "/state", "data_cursor", H5P_DEFAULT);
    H5Fclose(f);
    expect_verify_error(p, "/state lacks attribute 'data_cursor'", NULL);

    // /optim/d/m one float longer, with a checksum that matches: only the
    // shape check against span_n can see it
    snprintf(p, sizeof p, "%s/resized.h5", tmpdir);
    copy_file(good, p, 0);
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "/optim/d/m", H5P_DEFAULT);
    hsize_t n = m->opt_d.span_n + 1;
    float* zeros = (float*)calloc(n, sizeof(float));
    hid_t sp = H5Screate_simple(1, &n, NULL);
    hid_t ds = H5Dcreate2(f, "/optim/d/m", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros);
    H5Dclose(ds), H5Sclose(sp);
    unsigned crc = crc32c(zeros, n * sizeof(float));
    hid_t meta = H5Gopen2(f, "/meta", H5P_DEFAULT);
    hid_t at = H5Aopen(meta, "crc32c:/optim/d/m", H5P_DEFAULT);
    H5Awrite(at, H5T_NATIVE_UINT, &crc);
    H5Aclose(at), H5Gclose(meta), H5Fclose(f);
    free(zeros);
    expect_verify_error(p, "/optim/d/m", "the shape differs");

    // a plain weights file is no checkpoint
    snprintf(p, sizeof p, "%s/weights.h5", tmpdir);
    weights_save_h5(p, &m->pt, m->params);
    expect_verify_error(p, "group /optim is missing", "not a zsseg checkpoint");

    // HDF5's own error printing stays silenced through verify, and is back after it
    H5E_auto2_t fn = NULL;
    void* data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    CHECK(fn != NULL, "HDF5 error printing restored after ckpt_verify");
}

// A copy of the good checkpoint as dst with attribute GROUP NAME replaced by
// one value of type (NULL: deleted); HDF5 1.10 cannot rewrite an attribute
// opened by name, so it is deleted and created again.
static void copy_with_attr(const char* dst, const char* group, const char* name, hid_t type,
                           const void* v) {
    copy_file(good, dst, 0);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    herr_t del = H5Adelete(g, name), w = 0;
    if (v) {
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t at = H5Acreate2(g, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
        w = at >= 0 ? H5Awrite(at, type, v) : -1;
        H5Aclose(at), H5Sclose(sp);
    }
    CHECK(f >= 0 && g >= 0 && del >= 0 && w >= 0, "replace %s %s in %s", group, name, dst);
    H5Gclose(g), H5Fclose(f);
}

// ---------------------------------------------------------------- metadata
// The attributes' checksum, the format versions, the range and file-name
// checks, ckpt_state_check and the verdict of ckpt info.
static void test_metadata(const CagNet* m) {
    char p[4096];
    long long big = 1099511627792LL, v1 = 1, v3 = 3;
    snprintf(p, sizeof p, "%s/attr_iter/iter_00000007.h5", tmpdir);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/attr_iter", tmpdir);
    dir_create(dir);
    copy_with_attr(p, "/state", "iter", H5T_NATIVE_LLONG, &big);
    expect_verify_error(p, "the attributes of /state, /meta and /optim", "fail their CRC-32C check");
    snprintf(p, sizeof p, "%s/step.h5", tmpdir);
    copy_with_attr(p, "/optim/d", "step", H5T_NATIVE_LLONG, &v3);
    expect_verify_error(p, "fail their CRC-32C check", NULL);
    snprintf(p, sizeof p, "%s/no_attrs_crc.h5", tmpdir);
    copy_with_attr(p, "/meta", "crc32c:@attrs", 0, NULL);
    expect_verify_error(p, "/meta lacks the attribute checksum 'crc32c:@attrs'", NULL);
    snprintf(p, sizeof p, "%s/v3.h5", tmpdir);
    copy_with_attr(p, "/meta", "format_version", H5T_NATIVE_LLONG, &v3);
    expect_verify_error(p, "format_version 3", "reads versions 1 and 2");

    // version 1 (no attribute checksum): accepted, range-checked
    char v1_path[4096];
    snprintf(v1_path, sizeof v1_path, "%s/v1.h5", tmpdir);
    copy_with_attr(v1_path, "/meta", "format_version", H5T_NATIVE_LLONG, &v1);
    hid_t f = H5Fopen(v1_path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(H5Adelete_by_name(f, "/meta", "crc32c:@attrs", H5P_DEFAULT) >= 0, "delete the checksum");
    H5Fclose(f);
    char* err = ckpt_verify(v1_path);
    CHECK(err == NULL, "a version-1 file is accepted: %s", err ? err : "");
    free(err);

    // renamed: the number of the name is checked
    snprintf(p, sizeof p, "%s/attr_iter/iter_00000008.h5", tmpdir);
    copy_file(good, p, 0);
    expect_verify_error(p, "/state iter is 7 but the file name says iteration 8", NULL);

    // values no schedule allows, checksummed as written
    struct {
        CkptState st;
        const char* msg;
    } bad[] = {
        {{7, 1, 9, 3, 0, 2, 14, 1, 0.5, 1, ""}, "/state iter_in_stage is 9, outside [0, 7]"},
        {{7, 1, 3, 3, -2, 2, 14, 1, 0.5, 1, ""}, "/state st_round is -2, outside [-1, "},
        {{7, 1, 3, 3, 0, -1, 14, 1, 0.5, 1, ""}, "/state data_epoch is -1"},
        {{7, 1, 3, 3, 0, 2, 14, 1, -0.5, 1, ""}, "best_metric is -0.5, neither -1"},
    };
    for (int i = 0; i < 4; i++) {
        char run[512], path[4096];
        snprintf(run, sizeof run, "%s/bad%d", tmpdir, i);
        ckpt_save(run, &bad[i].st, m, "", 1, 0, path, sizeof path);
        expect_verify_error(path, bad[i].msg, NULL);
    }

    // the schedule: stage 1 of {4, 10} at its iteration 3 is iteration 7
    const long fits[2] = {4, 10}, other[2] = {5, 10}, short_[2] = {4, 2};
    CHECK(ckpt_state_check(&state7, fits, 2, good) == NULL, "state 7 fits {4, 10}");
    err = ckpt_state_check(&state7, other, 2, good);
    HAS(err, "is at iteration 7 (stage 1, its iteration 3)");
    HAS(err, good);
    free(err);
    err = ckpt_state_check(&state7, fits, 1, good);
    HAS(err, "is at stage 1 but schedule.stages has 1 stages");
    free(err);
    err = ckpt_state_check(&state7, short_, 2, good);
    HAS(err, "2 in it and 6 in all");
    free(err);

    // ckpt info ends with the verdict
    char out_path[4096];
    snprintf(out_path, sizeof out_path, "%s/info.txt", tmpdir);
    const char* files[2] = {good, v1_path};
    for (int i = 0; i < 2; i++) {
        FILE* fp = fopenCheck(out_path, "w");
        ckpt_print_info(files[i], fp);
        fcloseCheck(fp, out_path);
        char* text = file_read_all(out_path, NULL);
        HAS(text, "/state: iter 7 stage 1 iter_in_stage 3 mixed_pos 3 st_round 0");
        HAS(text, i ? "/meta: format_version 1 world_size 3" : "/meta: format_version 2 world_size 3");
        HAS(text, "verify: ok (");
        free(text);
    }
}

// ---------------------------------------------------------------- strict load
// The children only call ckpt_load: the models are built in the parent,
// because a forked child of a process whose OpenMP pool exists deadlocks in
// libgomp as soon as it opens a parallel region.
static CagNet adam_model, plain_model;

static void child_load_adam(void) {
    CkptState st;
    ckpt_load(good, &adam_model, &st, NULL);
}

static void child_load_span(void) {
    CkptState st;
    ckpt_load(child_path, &plain_model, &st, NULL);
}

static void test_strict_load(void) {
    char out[16384];
    Config* c = tiny_config(0, 16);
    tiny_set(c, "optim.e_optimizer=adam");
    tiny_cagnet(&adam_model, c, 5, unseen);
    tiny_cagnet(&plain_model, cfg, 5, unseen);
    int rc = t_run_child(child_load_adam, 2, out, sizeof out);
    CHECK(rc == 1, "loading SGD state into Adam: exit %d", rc);
    HAS(out, good);
    HAS(out, "/optim/e holds sgd state but the model's optimizer is adam");
    HAS(out, "different model or optim.e_optimizer");

    snprintf(child_path, sizeof child_path, "%s/span.h5", tmpdir);
    unsigned long long n = 3;
    copy_with_attr(child_path, "/optim/g", "span_n", H5T_NATIVE_ULLONG, &n);
    rc = t_run_child(child_load_span, 2, out, sizeof out);
    CHECK(rc == 1, "loading a different span: exit %d", rc);
    HAS(out, child_path);
    HAS(out, "the span size differs");
    HAS(out, "different model or optim.e_optimizer");
    cagnet_free(&adam_model);
    cagnet_free(&plain_model);
    config_free(c);
}

// ---------------------------------------------------------------- list and prune
// The iterations ckpt_list returns, in order, must be want[0..n).
static void check_list(const char* run, const long* want, int n, const char* what) {
    char** paths = NULL;
    int got = ckpt_list(run, &paths);
    int ok = got == n;
    for (int i = 0; i < got && ok; i++) {
        char name[64];
        snprintf(name, sizeof name, "/ckpt/iter_%08ld.h5", want[i]);
        ok = strlen(paths[i]) == strlen(run) + strlen(name) &&
             strncmp(paths[i], run, strlen(run)) == 0 && strcmp(paths[i] + strlen(run), name) == 0;
    }
    CHECK(ok, "%s: ckpt_list gave %d files (first %s), want %d", what, got,
          got ? paths[0] : "-", n);
    for (int i = 0; i < got; i++) free(paths[i]);
    free(paths);
}

static void test_list_prune(const CagNet* m) {
    char run[256], p[512];
    snprintf(run, sizeof run, "%s/prune", tmpdir);
    check_list(run, NULL, 0, "no run directory");
    CkptState st = state7;
    for (long it = 1; it <= 7; it++) {
        st.iter = it;
        ckpt_save(run, &st, m, "", 2, 3, NULL, 0);
        // by hand: newest 2 plus multiples of 3
        if (it == 5) check_list(run, (const long[]){5, 4, 3}, 3, "after iteration 5");
        if (it == 6) check_list(run, (const long[]){6, 5, 3}, 3, "after iteration 6");
    }
    check_list(run, (const long[]){7, 6, 3}, 3, "after iteration 7");
    snprintf(p, sizeof p, "%s/ckpt/latest", run);
    char* latest = file_read_all(p, NULL);
    CHECK(strcmp(latest, "iter_00000007.h5\n") == 0, "latest holds '%s'", latest);
    free(latest);

    // leftovers of an interrupted save and foreign names are not checkpoints
    snprintf(p, sizeof p, "%s/ckpt/iter_00000099.h5.tmp", run);
    file_write_atomic(p, "x", 1);
    snprintf(p, sizeof p, "%s/ckpt/iter_12.h5", run);
    file_write_atomic(p, "x", 1);
    check_list(run, (const long[]){7, 6, 3}, 3, "with a .tmp leftover");

    // `latest` comes first even when older, without duplicate; a dangling one is ignored
    snprintf(p, sizeof p, "%s/ckpt/latest", run);
    file_write_atomic(p, "iter_00000003.h5\n", 17);
    check_list(run, (const long[]){3, 7, 6}, 3, "latest naming iteration 3");
    file_write_atomic(p, "iter_00000004.h5\n", 17);
    check_list(run, (const long[]){7, 6, 3}, 3, "latest naming a deleted file");

    // saving an older iteration keeps it even outside the newest `keep`
    st.iter = 2;
    ckpt_save(run, &st, m, "", 1, 0, NULL, 0);
    check_list(run, (const long[]){2, 7}, 2, "re-save of iteration 2 with keep 1");
}

// ---------------------------------------------------------------- config diff
static void test_config_diff(void) {
    Config* a = config_new();
    Config* b = config_new();
    const char* sets[] = {"log.every=5", "optim.lr=0.001", "optim.momentum=0.9",
                          "model.msc_scales=[0.5, 0.8]", "schedule.stages=step1"};
    for (int i = 0; i < 5; i++) tiny_set(b, sets[i]);
    const char* const allowed[] = {"log.", "schedule.", NULL};
    char* d = config_diff(a, b, allowed);
    const char* want =
        "  model.msc_scales: [0.5, 0.75] -> [0.5, 0.8]\n"
        "  optim.lr: 0.00025 -> 0.001\n";
    CHECK(d && strcmp(d, want) == 0, "config_diff:\n%s\nwant:\n%s", d ? d : "(null)", want);
    free(d);
    d = config_diff(a, b, NULL);
    HAS(d, "  log.every: 20 -> 5\n");
    HAS(d, "  schedule.stages: [\"step1\", \"mixed\"] -> [\"step1\"]\n");
    free(d);
    CHECK(config_diff(a, a, NULL) == NULL, "a config differs from itself");
    config_free(a);
    config_free(b);
}

int main(int argc, char** argv) {
    cfg = tiny_config(0, 16);
    CagNet m;
    tiny_cagnet(&m, cfg, 5, unseen);
    fill_optim(&m);
    char* cfg_text = config_resolved_text(cfg);
    if (argc == 2) {  // the CLI tests' files
        char name[512], flipped[4096];
        ckpt_save(argv[1], &state7, &m, cfg_text, 3, 0, good, sizeof good);
        snprintf(flipped, sizeof flipped, "%s/flipped.h5", argv[1]);
        write_flipped(&m, flipped, name, sizeof name);
    } else if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    } else {
        test_crc();
        test_round_trip(&m, cfg_text);
        test_corruptions(&m);
        test_metadata(&m);
        test_strict_load();
        test_list_prune(&m);
        test_config_diff();
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (t_failures == 0 && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
    }
    free(cfg_text);
    cagnet_free(&m);
    config_free(cfg);
    return t_report("test_checkpoint");
}
