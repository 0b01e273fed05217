// Checkpoint metadata bit flips (issue 13): a small checkpoint is saved, and
// every byte outside the datasets' raw data counts as metadata. Each case
// flips one bit of it -- every bit of the /state iter value, plus seeded
// random bits of the rest -- into a copy of the same name, then in forked
// children (a crash must not end the test):
//   ckpt_verify rejects the copy, or what ckpt_load reads from it equals the
//   original (state, parameters, optimizer states, config): harmless;
//   ckpt_print_info returns or exits with an error, never dies of a signal.
// ZSSEG_BITFLIP_CASES=N sets the number of random bits (default 300; "all":
// every metadata bit). Under ASan a case costs ~0.7 s (two forks of a large
// process), so the default there is the 32 bits of iter's low 4 bytes (its
// value's) and 10 random bits: about 30 s.
#include <hdf5.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "common.h"
#include "testing.h"
#include "tiny_cagnet.h"

#define ITER 19088743L  // 0x01234567: a value whose bytes are found once in the file
#define CHILD_SECONDS 20
#ifdef __SANITIZE_ADDRESS__
#define ITER_BITS 32
#define RANDOM_BITS 10
#else
#define ITER_BITS 64
#define RANDOM_BITS 300
#endif
enum { REJECTED = 10, HARMLESS = 11, DIFFERS = 12 };

static const uint8_t unseen[5] = {0, 1, 0, 1, 0};
static char tmpdir[] = "/tmp/test_ckpt_bitflip_XXXXXX";
static char flipped[4096];  // RUN/ckpt/iter_19088743.h5 of the copies: the same name
static CagNet ref, fresh;   // the saved model; the one each child loads into
static CkptState ref_st;
static char* ref_config;

typedef struct {
    uint8_t* data;
    size_t n;
    uint8_t* is_raw;  // 1: inside a dataset's raw data
} Image;

static herr_t raw_cb(hid_t obj, const char* name, const H5O_info_t* info, void* op) {
    Image* im = (Image*)op;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT);
    haddr_t off = H5Dget_offset(ds);
    hsize_t size = H5Dget_storage_size(ds);
    H5Dclose(ds);
    if (off == HADDR_UNDEF) return 0;  // compact: its data lies in the object header
    for (hsize_t i = 0; i < size && off + i < im->n; i++) im->is_raw[off + i] = 1;
    return 0;
}

static void image_load(Image* im, const char* path) {
    im->data = (uint8_t*)file_read_all(path, &im->n);
    im->is_raw = (uint8_t*)callocCheck(im->n, 1);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0 && H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_INC, raw_cb, im, H5O_INFO_BASIC) >= 0,
          "walk the datasets of %s", path);
    H5Fclose(f);
}

static void write_with_flip(const Image* im, size_t byte, int bit) {
    im->data[byte] ^= (uint8_t)(1u << bit);
    FILE* fp = fopenCheck(flipped, "wb");
    fwriteCheck(im->data, 1, im->n, fp, flipped);
    fcloseCheck(fp, flipped);
    im->data[byte] ^= (uint8_t)(1u << bit);
}

static int optim_equal(const Optimizer* a, const Optimizer* b) {
    return a->step == b->step && a->span_n == b->span_n &&
           memcmp(a->m, b->m, a->span_n * sizeof(float)) == 0 &&
           (!a->v || memcmp(a->v, b->v, a->span_n * sizeof(float)) == 0);
}

static int state_equal(const CkptState* a, const CkptState* b) {
    return a->iter == b->iter && a->stage == b->stage && a->iter_in_stage == b->iter_in_stage &&
           a->mixed_pos == b->mixed_pos && a->st_round == b->st_round &&
           a->data_epoch == b->data_epoch && a->data_cursor == b->data_cursor &&
           a->seed == b->seed && memcmp(&a->best_metric, &b->best_metric, sizeof(double)) == 0 &&
           a->world_size == b->world_size && strcmp(a->st_file, b->st_file) == 0;
}

// Children: quiet, bounded in time, leaving by _exit (no leak check of the
// parent's memory).
static void child_begin(void) {
    alarm(CHILD_SECONDS);
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(3);
}

static void child_verify_load(void) {
    child_begin();
    char* err = ckpt_verify(flipped);
    if (err) _exit(REJECTED);
    CkptState st;
    memset(&st, 0, sizeof st);
    char* text = NULL;
    ckpt_load(flipped, &fresh, &st, &text);  // ZS_FAIL: exit 1, accepted but unreadable
    int same = state_equal(&st, &ref_st) && strcmp(text, ref_config) == 0 &&
               memcmp(fresh.params, ref.params, ref.pt.total * sizeof(float)) == 0 &&
               optim_equal(&fresh.opt_e, &ref.opt_e) && optim_equal(&fresh.opt_d, &ref.opt_d) &&
               optim_equal(&fresh.opt_g, &ref.opt_g);
    _exit(same ? HARMLESS : DIFFERS);
}

static void child_info(void) {
    child_begin();
    FILE* null = fopen("/dev/null", "w");
    if (!null) _exit(3);
    ckpt_print_info(flipped, null);
    fclose(null);
    _exit(0);
}

// The child's status: its exit code, or -signal.
static int run_child(void (*fn)(void)) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) fn();
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1000;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

typedef struct {
    int cases, rejected, harmless, crashes, bad;
} Tally;

static void run_case(const Image* im, size_t byte, int bit, Tally* t) {
    write_with_flip(im, byte, bit);
    int v = run_child(child_verify_load), info = run_child(child_info);
    t->cases++;
    if (v == REJECTED) t->rejected++;
    else if (v == HARMLESS) t->harmless++;
    else if (v < 0) t->crashes++;
    else t->bad++;
    if (info < 0) t->crashes++;
    CHECK(v == REJECTED || v == HARMLESS,
          "bit %d of byte %zu: verify+load child %s %d (%s)", bit, byte,
          v < 0 ? "killed by signal" : "exit", v < 0 ? -v : v,
          v == DIFFERS ? "accepted, but the loaded state differs" : "accepted but unloadable or crashed");
    CHECK(info >= 0, "bit %d of byte %zu: ckpt_print_info killed by signal %d", bit, byte, -info);
}

// The offset of the only occurrence of the 8 bytes of ITER outside raw data.
static long find_iter(const Image* im) {
    uint8_t want[8];
    for (int i = 0; i < 8; i++) want[i] = (uint8_t)((unsigned long long)ITER >> (8 * i));
    long at = -1;
    int hits = 0;
    for (size_t i = 0; i + 8 <= im->n; i++)
        if (!im->is_raw[i] && memcmp(im->data + i, want, 8) == 0) {
            at = (long)i;
            hits++;
        }
    CHECK(hits == 1, "the /state iter value occurs %d times in the metadata", hits);
    return hits == 1 ? at : -1;
}

static uint64_t rng_next(uint64_t* s) {  // xorshift64*
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    Config* cfg = tiny_config(0, 16);
    tiny_cagnet(&ref, cfg, 5, unseen);
    tiny_cagnet(&fresh, cfg, 5, unseen);
    t_fill_normal(ref.params, ref.pt.total, 11, 0.5f);
    Optimizer* o[3] = {&ref.opt_e, &ref.opt_d, &ref.opt_g};
    for (int k = 0; k < 3; k++) {
        t_fill_normal(o[k]->m, o[k]->span_n, 20 + (uint64_t)k, 0.1f);
        if (o[k]->v) t_fill_uniform(o[k]->v, o[k]->span_n, 30 + (uint64_t)k, 0.0f, 0.01f);
        o[k]->step = 5 + 2 * k;
    }
    ref_config = config_resolved_text(cfg);
    CkptState st = {ITER, 1, 3, 3, 0, 2, 14, 0xF123456789ABCDEFull, 0.4321, 3, "round_0.h5"};
    char run[512], good[4096], flip_run[512];
    snprintf(run, sizeof run, "%s/run", tmpdir);
    ckpt_save(run, &st, &ref, ref_config, 3, 0, good, sizeof good);
    snprintf(flip_run, sizeof flip_run, "%s/flip", tmpdir);
    snprintf(flipped, sizeof flipped, "%s/ckpt/iter_%08ld.h5", flip_run, ITER);
    ref_st = st;
    ref_st.world_size = 3;

    Image im;
    image_load(&im, good);
    size_t meta = 0;
    for (size_t i = 0; i < im.n; i++) meta += !im.is_raw[i];
    char* err = ckpt_verify(good);
    CHECK(err == NULL, "the original verifies: %s", err ? err : "");
    free(err);
    // the copies' directory, through a save of its own
    ckpt_save(flip_run, &st, &ref, ref_config, 3, 0, NULL, 0);

    Tally t = {0};
    const char* one = getenv("ZSSEG_BITFLIP_ONE");  // "BYTE:BIT", in this process (debugging)
    if (one) {
        write_with_flip(&im, (size_t)atol(one), atoi(strchr(one, ':') + 1));
        ckpt_print_info(flipped, stdout);
        return 0;
    }
    long iter_at = find_iter(&im);
    for (int b = 0; b < ITER_BITS && iter_at >= 0; b++) run_case(&im, (size_t)iter_at + (size_t)(b / 8), b % 8, &t);
    const char* env = getenv("ZSSEG_BITFLIP_CASES");
    int all = env && strcmp(env, "all") == 0;
    long n_random = env && !all ? atol(env) : RANDOM_BITS;
    if (all) {
        for (size_t i = 0; i < im.n; i++)
            for (int b = 0; b < 8 && !im.is_raw[i]; b++) run_case(&im, i, b, &t);
    } else {
        uint64_t seed = 0x9E3779B97F4A7C15ull;
        for (long c = 0; c < n_random && meta; c++) {
            size_t i;
            do i = (size_t)(rng_next(&seed) % im.n);
            while (im.is_raw[i]);
            run_case(&im, i, (int)(rng_next(&seed) % 8), &t);
        }
    }
    printf("bitflip: %d cases, %d rejected, %d harmless, %d crashes (file %zu bytes, %zu of "
           "metadata)\n",
           t.cases, t.rejected, t.harmless, t.crashes, im.n, meta);
    CHECK(t.bad == 0, "%d flipped copies were accepted but read back differently", t.bad);
    free(im.data);
    free(im.is_raw);
    free(ref_config);
    cagnet_free(&ref);
    cagnet_free(&fresh);
    config_free(cfg);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (!getenv("ZSSEG_BITFLIP_KEEP") && t_failures == 0 && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
    return t_report("test_ckpt_bitflip");
}
