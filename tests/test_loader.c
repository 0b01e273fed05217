// Loader on generated datasets (tests/dataset_fixture.h): the epoch order
// against a hand-written Fisher-Yates on the documented stream, batches across
// epochs (drop of the incomplete batch), exact pixels of loaded samples equal
// transform_train / transform_test applied by hand with the documented key,
// state save/restore, workers 0 vs 2 byte-identical, rank slices equal to the
// single-rank batch, the skip rule for bad samples with their warnings and
// count, the data.max_bad_fraction stop, the sharded test loader, and
// pseudo-labels merged from a self-training store (labels, weights, workers,
// detach, wrong size, bad samples' replacements).
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "dataset.h"
#include "dataset_fixture.h"
#include "loader.h"
#include "rng.h"
#include "testing.h"
#include "transform.h"

#define N_TRAIN 10
#define N_TEST 7
#define SEED 11
static char dir[] = "/tmp/zsseg-test-loader-XXXXXX";
static char bad_dir[] = "/tmp/zsseg-test-loader-bad-XXXXXX";

typedef struct {
    Config* cfg;
    DatasetClasses cs;
    Dataset train, test;
} Fixture;

static void fixture_open(Fixture* f, const char* root, int with_list) {
    f->cfg = fx_config(root, with_list);
    dataset_classes_load(&f->cs, f->cfg);
    dataset_open(&f->train, f->cfg, &f->cs, DATASET_TRAIN);
    dataset_open(&f->test, f->cfg, &f->cs, DATASET_TEST);
}

static void fixture_close(Fixture* f) {
    dataset_free(&f->train);
    dataset_free(&f->test);
    dataset_classes_free(&f->cs);
    config_free(f->cfg);
}

static void set_workers(Config* cfg, int w) {
    char s[64];
    snprintf(s, sizeof s, "data.workers=%d", w);
    fx_set(cfg, s);
}

// ---------------------------------------------------------------- order
static void test_order(void) {
    enum { n = 1000 };
    static int a[n], b[n], c[n], want[n], seen[n];
    loader_epoch_order(SEED, 0, n, a);
    loader_epoch_order(SEED, 1, n, b);
    loader_epoch_order(SEED + 1, 0, n, c);
    memset(seen, 0, sizeof seen);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += a[i] < 0 || a[i] >= n || seen[a[i]]++;
    CHECK(bad == 0, "epoch order is not a permutation (%d bad entries)", bad);
    int same_e = 0, same_s = 0;
    for (int i = 0; i < n; i++) same_e += a[i] == b[i], same_s += a[i] == c[i];
    CHECK(same_e < 20, "epochs 0 and 1 agree at %d of %d positions", same_e, n);
    CHECK(same_s < 20, "seeds 11 and 12 agree at %d of %d positions", same_s, n);
    // The documented key, written out: stream (purpose << 56 | epoch << 32),
    // step i swaps i with i + draw i in [0, n - i).
    for (int e = 0; e < 2; e++) {
        uint64_t stream = ((uint64_t)RNG_DATA_ORDER << 56) | ((uint64_t)e << 32);
        for (int i = 0; i < n; i++) want[i] = i;
        for (int i = 0; i + 1 < n; i++) {
            int j = i + (int)hd_rng_uint_below(SEED, stream, (uint64_t)i, (uint32_t)(n - i));
            int t = want[i];
            want[i] = want[j];
            want[j] = t;
        }
        CHECK(memcmp(want, e ? b : a, sizeof want) == 0, "epoch %d order differs from the key", e);
    }
}

// ---------------------------------------------------------------- batches
// images, labels, indices and (when present) weights of a batch, appended to a byte log
static void batch_append(uint8_t** log, size_t* len, const LoaderBatch* b) {
    size_t img = (size_t)b->n * 3 * b->H * b->W * sizeof(float), lbl = (size_t)b->n * b->H * b->W;
    size_t idx = (size_t)b->n * sizeof(int), w = b->weights ? lbl * sizeof(float) : 0;
    *log = (uint8_t*)realloc(*log, *len + img + lbl + idx + w);
    memcpy(*log + *len, b->images, img);
    memcpy(*log + *len + img, b->labels, lbl);
    memcpy(*log + *len + img + lbl, b->index, idx);
    if (w) memcpy(*log + *len + img + lbl + idx, b->weights, w);
    *len += img + lbl + idx + w;
}

// The dataset sample behind slot j of b (a failed check when unreadable).
static int read_slot(const Fixture* f, const LoaderBatch* b, int j, DatasetSample* s) {
    char err[1024];
    if (dataset_read(&f->train, b->index[j], s, err, sizeof err) == SAMPLE_OK) return 0;
    CHECK(0, "slot %d: sample %d unreadable: %s", j, b->index[j], err);
    return -1;
}

// s transformed by hand with key (SEED, epoch, position), labels remapped
// with the training table.
static void transform_by_hand(const Fixture* f, const TransformConfig* tc, const DatasetSample* s,
                              long epoch, long position,
                              float* img,     // (3, crop, crop)
                              uint8_t* lbl) { // (crop, crop)
    size_t bytes = transform_scratch_bytes(tc, s->W);
    void* scratch = malloc(bytes);
    transform_train(tc, s->rgb, s->label, s->H, s->W, SEED, (uint64_t)epoch, (uint64_t)position,
                    img, lbl, scratch, bytes);
    label_remap(lbl, (size_t)tc->crop * tc->crop, f->cs.train_map);
    free(scratch);
}

// Slot j of b equals the dataset sample transformed by hand with key
// (SEED, b->epoch, position) and remapped with the training table.
static void check_slot_by_hand(const Fixture* f, const LoaderBatch* b, int j, long position) {
    TransformConfig tc;
    transform_config_from(&tc, f->cfg);
    DatasetSample s;
    if (read_slot(f, b, j, &s)) return;
    size_t plane = (size_t)tc.crop * tc.crop;
    float* img = (float*)malloc(3 * plane * sizeof(float));
    uint8_t* lbl = (uint8_t*)malloc(plane);
    transform_by_hand(f, &tc, &s, b->epoch, position, img, lbl);
    CHECK(memcmp(img, b->images + j * 3 * plane, 3 * plane * sizeof(float)) == 0,
          "slot %d (epoch %ld, position %ld): image differs from transform_train by hand", j,
          b->epoch, position);
    CHECK(memcmp(lbl, b->labels + j * plane, plane) == 0,
          "slot %d: labels differ from transform_train + train_map by hand", j);
    // the key matters: the neighbouring position's draws give another sample
    transform_by_hand(f, &tc, &s, b->epoch, position + 1, img, lbl);
    CHECK(memcmp(img, b->images + j * 3 * plane, 3 * plane * sizeof(float)) != 0,
          "slot %d: position + 1 gives the same image", j);
    free(img);
    free(lbl);
    dataset_sample_free(&s);
}

// Epochs of 10 samples in global batches of 4: two batches per epoch, the
// last 2 positions sit out; each slot is order[cursor + j].
static void test_epochs(Fixture* f, int workers) {
    set_workers(f->cfg, workers);
    Loader* L = loader_open_train(&f->train, f->cfg, 0, 1, NULL);
    CHECK(loader_batches_per_epoch(L) == 2, "batches per epoch %ld", loader_batches_per_epoch(L));
    int order[N_TRAIN];
    for (int k = 0; k < 6; k++) {
        LoaderState st = loader_get_state(L);
        long e = k / 2, cur = (k % 2) * 4;
        CHECK(st.epoch == e && st.cursor == cur, "state before batch %d: (%ld, %ld)", k, st.epoch,
              st.cursor);
        const LoaderBatch* b = loader_next(L);
        CHECK(b->epoch == e && b->cursor == cur && b->n == 4 && b->sample0 == 0,
              "batch %d: epoch %ld cursor %ld n %d", k, b->epoch, b->cursor, b->n);
        CHECK(b->H == 12 && b->W == 12, "batch %d: %dx%d, want the 12x12 crop", k, b->H, b->W);
        loader_epoch_order(SEED, e, N_TRAIN, order);
        for (int j = 0; j < b->n; j++) {
            CHECK(b->index[j] == order[cur + j] && b->position[j] == cur + j && b->valid[j],
                  "batch %d slot %d: index %d position %ld, want %d %ld", k, j, b->index[j],
                  b->position[j], order[cur + j], cur + j);
        }
        if (k == 3) {
            check_slot_by_hand(f, b, 2, 6);
            check_slot_by_hand(f, b, 0, 4);
        }
    }
    loader_close(L);
}

// The state before a batch restores exactly that batch, in the same loader
// (after prefetching further) and in a fresh one.
static void test_state(Fixture* f, int workers) {
    set_workers(f->cfg, workers);
    Loader* L = loader_open_train(&f->train, f->cfg, 0, 1, NULL);
    for (int k = 0; k < 3; k++) loader_next(L);
    LoaderState st = loader_get_state(L);
    CHECK(st.epoch == 1 && st.cursor == 4, "state after 3 batches: (%ld, %ld), want (1, 4)",
          st.epoch, st.cursor);
    uint8_t *want = NULL, *got = NULL, *fresh = NULL;
    size_t nw = 0, ng = 0, nf = 0;
    batch_append(&want, &nw, loader_next(L));
    loader_next(L);
    loader_next(L);
    loader_set_state(L, st);
    batch_append(&got, &ng, loader_next(L));
    CHECK(ng == nw && memcmp(got, want, nw) == 0, "restored batch differs (workers %d)", workers);
    Loader* L2 = loader_open_train(&f->train, f->cfg, 0, 1, NULL);
    loader_set_state(L2, st);
    batch_append(&fresh, &nf, loader_next(L2));
    CHECK(nf == nw && memcmp(fresh, want, nw) == 0, "batch of a fresh loader at the state differs");
    // a cursor past the last full batch starts the next epoch
    loader_set_state(L2, (LoaderState){2, 7});
    const LoaderBatch* b = loader_next(L2);
    CHECK(b->epoch == 3 && b->cursor == 0, "state (2, 7) gave batch (%ld, %ld), want (3, 0)",
          b->epoch, b->cursor);
    loader_close(L);
    loader_close(L2);
    free(want);
    free(got);
    free(fresh);
}

// The bytes of `batches` batches with `workers` threads, rank r of R.
static uint8_t* run_batches(Fixture* f, int workers, int rank, int world, int batches,
                            size_t* len) {
    set_workers(f->cfg, workers);
    Loader* L = loader_open_train(&f->train, f->cfg, rank, world, NULL);
    uint8_t* log = NULL;
    *len = 0;
    for (int k = 0; k < batches; k++) batch_append(&log, len, loader_next(L));
    loader_close(L);
    return log;
}

static void test_workers_identical(Fixture* f) {
    size_t n0, n2, n3;
    uint8_t* a = run_batches(f, 0, 0, 1, 7, &n0);
    uint8_t* b = run_batches(f, 2, 0, 1, 7, &n2);
    uint8_t* c = run_batches(f, 3, 0, 1, 7, &n3);
    CHECK(n0 == n2 && memcmp(a, b, n0) == 0, "workers 0 and 2 give different batches");
    CHECK(n0 == n3 && memcmp(a, c, n0) == 0, "workers 0 and 3 give different batches");
    free(a);
    free(b);
    free(c);
}

// Rank r of 2 holds slots [2r, 2r + 2) of the single-rank global batch, bytes included.
static void test_rank_slices(Fixture* f) {
    set_workers(f->cfg, 1);
    Loader* one = loader_open_train(&f->train, f->cfg, 0, 1, NULL);
    Loader* r0 = loader_open_train(&f->train, f->cfg, 0, 2, NULL);
    Loader* r1 = loader_open_train(&f->train, f->cfg, 1, 2, NULL);
    for (int k = 0; k < 4; k++) {
        const LoaderBatch* g = loader_next(one);
        const LoaderBatch* s[2] = {loader_next(r0), loader_next(r1)};
        size_t per = (size_t)12 * 12;
        for (int r = 0; r < 2; r++) {
            CHECK(s[r]->n == 2 && s[r]->sample0 == 2 * r, "rank %d batch %d: n %d sample0 %d", r,
                  k, s[r]->n, s[r]->sample0);
            const float* gi = g->images + 2 * r * 3 * per;
            CHECK(memcmp(s[r]->images, gi, 2 * 3 * per * sizeof(float)) == 0 &&
                      memcmp(s[r]->labels, g->labels + 2 * r * per, 2 * per) == 0 &&
                      memcmp(s[r]->index, g->index + 2 * r, 2 * sizeof(int)) == 0,
                  "rank %d of 2, batch %d: slice differs from the global batch", r, k);
        }
    }
    loader_close(one);
    loader_close(r0);
    loader_close(r1);
}

// ---------------------------------------------------------------- bad samples
// 12 training images; 2 truncated JPEG, 5 label of the wrong size, 7 label
// value 200, 10 image missing.
#define N_BAD_TRAIN 12
static const int bad_kind[N_BAD_TRAIN] = {0, 0, FX_TRUNCATED_JPEG, 0, 0, FX_WRONG_SIZE_PNG, 0,
                                          FX_VALUE_200, 0, 0, FX_MISSING_IMAGE, 0};
static Fixture bad_fx;

// stderr of fn into a heap string; shown when fn's checks failed
static char* capture_stderr(void (*fn)(void)) {
    int failures = t_failures;
    char path[] = "/tmp/zsseg-test-loader-err-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    char* text = file_read_all(path, NULL);
    unlink(path);
    if (t_failures != failures) fprintf(stderr, "captured stderr:\n%s", text);
    return text;
}

static long bad_count_seen;
static uint8_t* bad_log;
static size_t bad_log_len;
static int bad_epoch_workers;

// One epoch (3 batches of 4 cover all 12 positions); checks the skip rule.
static void bad_epoch(void) {
    set_workers(bad_fx.cfg, bad_epoch_workers);
    Loader* L = loader_open_train(&bad_fx.train, bad_fx.cfg, 0, 1, NULL);
    int order[N_BAD_TRAIN];
    loader_epoch_order(SEED, 0, N_BAD_TRAIN, order);
    free(bad_log);
    bad_log = NULL;
    bad_log_len = 0;
    for (int k = 0; k < 3; k++) {
        const LoaderBatch* b = loader_next(L);
        batch_append(&bad_log, &bad_log_len, b);
        for (int j = 0; j < b->n; j++) {
            long p = b->cursor + j;
            int want = -1;
            for (int t = 0; t < N_BAD_TRAIN && want < 0; t++)
                if (!bad_kind[order[(p + t) % N_BAD_TRAIN]]) want = order[(p + t) % N_BAD_TRAIN];
            CHECK(b->index[j] == want && b->position[j] == p,
                  "position %ld: sample %d, want the next good one in the order, %d", p,
                  b->index[j], want);
            if (bad_kind[order[p]]) check_slot_by_hand(&bad_fx, b, j, p);
        }
    }
    bad_count_seen = loader_bad_count(L);
    loader_close(L);
}

static void bad_epoch_quiet(void) { bad_epoch(); }

static void test_bad_samples(void) {
    uint8_t none[N_BAD_TRAIN] = {0};
    fx_make(bad_dir, N_BAD_TRAIN, none, N_TEST);
    char id[64];
    for (int i = 0; i < N_BAD_TRAIN; i++) {
        fx_id(id, sizeof id, "train", i);
        if (bad_kind[i]) fx_break(bad_dir, "train", id, i, bad_kind[i]);
    }
    fx_id(id, sizeof id, "val", 3);
    fx_break(bad_dir, "val", id, 103, FX_TRUNCATED_JPEG);
    fixture_open(&bad_fx, bad_dir, 0);
    fx_set(bad_fx.cfg, "data.max_bad_fraction=0.34");  // 4 bad of 12 <= 4.08

    bad_epoch_workers = 2;
    char* err = capture_stderr(bad_epoch);
    CHECK(bad_count_seen == 4, "bad count %ld, want 4", bad_count_seen);
    for (int i = 0; i < N_BAD_TRAIN; i++) {
        char what[96];
        fx_id(id, sizeof id, "train", i);
        snprintf(what, sizeof what, "skipping training sample '%s'", id);
        const char* at = strstr(err, what);
        CHECK((at != NULL) == (bad_kind[i] != 0), "warning for %s (kind %d):\n%s", id,
              bad_kind[i], err);
        CHECK(!at || !strstr(at + 1, what), "%s warned about twice", id);
    }
    CHECK(strstr(err, ".jpg") && strstr(err, "label value 200") && strstr(err, "HxW"),
          "warnings lack the file or the reason:\n%s", err);
    free(err);

    // the same batches without workers
    uint8_t* with_workers = bad_log;
    size_t n_with = bad_log_len;
    bad_log = NULL;
    bad_epoch_workers = 0;
    free(capture_stderr(bad_epoch_quiet));
    CHECK(n_with == bad_log_len && memcmp(with_workers, bad_log, n_with) == 0,
          "bad-sample epoch differs between workers 2 and 0");
    free(with_workers);
    free(bad_log);
    bad_log = NULL;

    // 4 > 0.3 * 12 and 4 > 0 stop the run
    fx_set(bad_fx.cfg, "data.max_bad_fraction=0.3");
    CHECK(t_exits_with_error(bad_epoch_quiet), "4 bad of 12 with max_bad_fraction 0.3 must stop");
    fx_set(bad_fx.cfg, "data.max_bad_fraction=0.0");
    CHECK(t_exits_with_error(bad_epoch_quiet), "a bad sample with max_bad_fraction 0 must stop");
    fx_set(bad_fx.cfg, "data.max_bad_fraction=0.34");
}

// ---------------------------------------------------------------- test loader
static void check_test_slot(const Fixture* f, const LoaderBatch* b, int j) {
    TransformConfig tc;
    transform_config_from(&tc, f->cfg);
    size_t plane = (size_t)tc.warp * tc.warp;
    DatasetSample s;
    char err[1024];
    if (dataset_read(&f->test, b->index[j], &s, err, sizeof err) != SAMPLE_OK) {
        int zeros = 0, ignore = 0;
        for (size_t q = 0; q < 3 * plane; q++) zeros += b->images[j * 3 * plane + q] == 0.0f;
        for (size_t q = 0; q < plane; q++) ignore += b->labels[j * plane + q] == DATASET_IGNORE;
        CHECK(!b->valid[j] && zeros == (int)(3 * plane) && ignore == (int)plane,
              "bad test sample %d: valid %d, %d zeros, %d ignored", b->index[j], b->valid[j],
              zeros, ignore);
        return;
    }
    size_t bytes = transform_scratch_bytes(&tc, s.W);
    float* img = (float*)malloc(3 * plane * sizeof(float));
    uint8_t* lbl = (uint8_t*)malloc(plane);
    void* scratch = malloc(bytes);
    transform_test(&tc, s.rgb, s.label, s.H, s.W, img, lbl, scratch, bytes);
    label_remap(lbl, plane, f->cs.test_map);
    CHECK(b->valid[j], "test sample %d marked invalid", b->index[j]);
    CHECK(memcmp(img, b->images + j * 3 * plane, 3 * plane * sizeof(float)) == 0 &&
              memcmp(lbl, b->labels + j * plane, plane) == 0,
          "test sample %d differs from transform_test + test_map by hand", b->index[j]);
    free(img);
    free(lbl);
    free(scratch);
    dataset_sample_free(&s);
}

// 7 test images on 3 ranks: shards [0,2) [2,4) [4,7), batches of 2. Returns
// the number of invalid (unreadable) slots.
static int test_test_loader(Fixture* f, int workers) {
    set_workers(f->cfg, workers);
    const int begin[4] = {0, 2, 4, 7};
    int invalid = 0;
    for (int r = 0; r < 3; r++) {
        Loader* L = loader_open_test(&f->test, f->cfg, r, 3, 2, NULL);
        long want_batches = (begin[r + 1] - begin[r] + 1) / 2;
        CHECK(loader_batches_per_epoch(L) == want_batches, "rank %d: %ld batches", r,
              loader_batches_per_epoch(L));
        int next = begin[r], nb = 0;
        const LoaderBatch* b;
        while ((b = loader_next(L)) != NULL) {
            CHECK(b->H == 16 && b->W == 16, "test batch %dx%d, want the 16x16 warp", b->H, b->W);
            for (int j = 0; j < b->n; j++) {
                CHECK(b->index[j] == next && b->position[j] == next, "rank %d: sample %d, want %d",
                      r, b->index[j], next);
                check_test_slot(f, b, j);
                invalid += !b->valid[j];
                next++;
            }
            nb++;
        }
        CHECK(next == begin[r + 1] && nb == want_batches, "rank %d ended at %d after %d batches",
              r, next, nb);
        CHECK(loader_next(L) == NULL, "rank %d: a batch after the end", r);
        loader_close(L);
    }
    return invalid;
}

// ---------------------------------------------------------------- pseudo-labels
// A 5 x 7 store (not the warp's shape, not square): labels 100..110 (no
// training index) with every 9th pixel 255, weights in 0.5 .. 0.71875.
#define ST_H 5
#define ST_W 7
static StStore* pseudo_store(int n) {
    StStore* s = (StStore*)calloc(1, sizeof(StStore));
    s->n = n, s->H = ST_H, s->W = ST_W;
    s->labels = (uint8_t*)malloc((size_t)n * ST_H * ST_W);
    s->weights = (float*)malloc((size_t)n * ST_H * ST_W * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int q = 0; q < ST_H * ST_W; q++) {
            size_t k = (size_t)i * ST_H * ST_W + q;
            s->labels[k] = (i + q) % 9 == 4 ? 255 : (uint8_t)(100 + (7 * i + q) % 11);
            s->weights[k] = 0.5f + 0.03125f * (float)((i + 3 * q) % 8);
        }
    return s;
}

static void pseudo_store_free(StStore* s) {
    free(s->labels);
    free(s->weights);
    free(s);
}

// Pixel counts over the checked slots: ground truth, pseudo-labelled,
// padding, store 255 (the last two stay ignored).
static long pseudo_cover[4];

// Slot j of b by hand: the plain training label, and at its 255 pixels the
// store's label at the source pixel scaled to 5 x 7 (integer floor), unless
// padding or 255; weights 1 / store weight / 0.
static void check_pseudo_slot(const Fixture* f, const LoaderBatch* b, int j, const StStore* st) {
    TransformConfig tc;
    transform_config_from(&tc, f->cfg);
    DatasetSample s;
    if (read_slot(f, b, j, &s)) return;
    int n = tc.crop, w = tc.warp, i = b->index[j];
    size_t plane = (size_t)n * n;
    float* img = (float*)malloc(3 * plane * sizeof(float));
    uint8_t* gt = (uint8_t*)malloc(plane);
    transform_by_hand(f, &tc, &s, b->epoch, b->position[j], img, gt);
    TransformDraw d;
    transform_draw(&tc, SEED, (uint64_t)b->epoch, (uint64_t)b->position[j], &d);
    CHECK(memcmp(img, b->images + j * 3 * plane, 3 * plane * sizeof(float)) == 0,
          "slot %d: the image changed with a store attached", j);
    int bad = 0;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            size_t q = (size_t)y * n + x;
            int want = gt[q];
            float ww = 1.0f;
            if (want == DATASET_IGNORE) {
                int wy, wx;
                transform_train_source(&tc, &d, y, x, &wy, &wx);
                ww = 0.0f;
                if (wy < 0) {
                    pseudo_cover[2]++;
                } else {
                    int sy = wy * ST_H / w, sx = wx * ST_W / w;
                    size_t k = (size_t)i * ST_H * ST_W + (size_t)sy * ST_W + sx;
                    if (st->labels[k] == 255) {
                        pseudo_cover[3]++;
                    } else {
                        want = st->labels[k], ww = st->weights[k];
                        pseudo_cover[1]++;
                    }
                }
            } else {
                pseudo_cover[0]++;
            }
            bad += b->labels[j * plane + q] != want || b->weights[j * plane + q] != ww;
        }
    CHECK(bad == 0, "slot %d (sample %d, position %ld): %d pixels differ from the merge by hand",
          j, i, b->position[j], bad);
    free(img);
    free(gt);
    dataset_sample_free(&s);
}

// 6 batches with a store attached from the start, each slot checked by hand.
static uint8_t* pseudo_batches(Fixture* f, int workers, const StStore* st, size_t* len) {
    set_workers(f->cfg, workers);
    Loader* L = loader_open_train(&f->train, f->cfg, 0, 1, NULL);
    loader_set_pseudo(L, st);
    uint8_t* log = NULL;
    *len = 0;
    for (int k = 0; k < 6; k++) {
        const LoaderBatch* b = loader_next(L);
        CHECK(b->weights != NULL, "batch %d: no weights with a store attached", k);
        if (!b->weights) break;
        for (int j = 0; j < b->n; j++) check_pseudo_slot(f, b, j, st);
        batch_append(&log, len, b);
    }
    loader_close(L);
    return log;
}

static Fixture* pseudo_fx;
static void attach_wrong_n(void) {
    StStore* st = pseudo_store(N_TRAIN - 1);
    Loader* L = loader_open_train(&pseudo_fx->train, pseudo_fx->cfg, 0, 1, NULL);
    loader_set_pseudo(L, st);
}

static void test_pseudo(Fixture* f) {
    StStore* st = pseudo_store(N_TRAIN);
    memset(pseudo_cover, 0, sizeof pseudo_cover);
    size_t n0, n2, nplain;
    uint8_t* a = pseudo_batches(f, 0, st, &n0);
    uint8_t* b = pseudo_batches(f, 2, st, &n2);
    printf("pseudo-labels over 48 samples: %ld ground-truth, %ld pseudo-labelled, %ld padding, "
           "%ld store-255 pixels\n", pseudo_cover[0], pseudo_cover[1], pseudo_cover[2],
           pseudo_cover[3]);
    CHECK(pseudo_cover[0] > 1000 && pseudo_cover[1] > 200 && pseudo_cover[2] > 100 &&
              pseudo_cover[3] > 10,
          "coverage: %ld gt, %ld pseudo, %ld padding, %ld store-255", pseudo_cover[0],
          pseudo_cover[1], pseudo_cover[2], pseudo_cover[3]);
    CHECK(n0 == n2 && memcmp(a, b, n0) == 0, "pseudo-labelled batches differ for workers 0 and 2");
    uint8_t* plain = run_batches(f, 0, 0, 1, 6, &nplain);

    // attached after 2 plain batches, detached after 2 more: each part equals
    // the plain / pseudo run's batch at the same state
    set_workers(f->cfg, 2);
    Loader* L = loader_open_train(&f->train, f->cfg, 0, 1, NULL);
    size_t per_plain = nplain / 6, per_pseudo = n0 / 6;
    for (int k = 0; k < 6; k++) {
        if (k == 2) loader_set_pseudo(L, st);
        if (k == 4) loader_set_pseudo(L, NULL);
        LoaderState before = loader_get_state(L);
        const LoaderBatch* bt = loader_next(L);
        int with = k == 2 || k == 3;
        uint8_t* one = NULL;
        size_t n1 = 0;
        batch_append(&one, &n1, bt);
        const uint8_t* want = with ? a + k * per_pseudo : plain + k * per_plain;
        CHECK(before.epoch == k / 2 && before.cursor == (k % 2) * 4 &&
                  (bt->weights != NULL) == with && n1 == (with ? per_pseudo : per_plain) &&
                  memcmp(one, want, n1) == 0,
              "batch %d (%s the store): differs from the %s run", k, with ? "with" : "without",
              with ? "pseudo-labelled" : "plain");
        free(one);
    }
    loader_close(L);

    pseudo_fx = f;
    char msg[8192];
    int rc = t_run_child(attach_wrong_n, 2, msg, sizeof msg);
    CHECK(rc == 1 && strstr(msg, "pseudo-label store: 9 images, but the training set has 10"),
          "a 9-image store on 10 images: exit %d, message:\n%s", rc, msg);
    free(a);
    free(b);
    free(plain);
    pseudo_store_free(st);
}

// A bad sample's replacement takes the pseudo-labels of its own dataset
// index (not those of the bad sample it stands in for) under the position's
// augmentation: one epoch of the bad fixture with a store, every slot by hand.
static int pseudo_replaced;
static void pseudo_bad_epoch(void) {
    set_workers(bad_fx.cfg, 2);
    StStore* st = pseudo_store(N_BAD_TRAIN);
    Loader* L = loader_open_train(&bad_fx.train, bad_fx.cfg, 0, 1, NULL);
    loader_set_pseudo(L, st);
    int order[N_BAD_TRAIN];
    loader_epoch_order(SEED, 0, N_BAD_TRAIN, order);
    for (int k = 0; k < 3; k++) {
        const LoaderBatch* b = loader_next(L);
        for (int j = 0; j < b->n; j++) {
            pseudo_replaced += b->index[j] != order[b->position[j]];
            check_pseudo_slot(&bad_fx, b, j, st);
        }
    }
    loader_close(L);
    pseudo_store_free(st);
}

static void test_pseudo_replacement(void) {
    pseudo_replaced = 0;
    free(capture_stderr(pseudo_bad_epoch));
    CHECK(pseudo_replaced == 4, "%d replaced slots in the pseudo-labelled epoch, want 4",
          pseudo_replaced);
}

// ---------------------------------------------------------------- errors
static Fixture* err_fx;
static void open_three_ranks(void) { loader_open_train(&err_fx->train, err_fx->cfg, 0, 3, NULL); }
static void open_batch_too_large(void) {
    fx_set(err_fx->cfg, "data.batch_size=12");
    loader_open_train(&err_fx->train, err_fx->cfg, 0, 1, NULL);
}

int main(void) {
    uint8_t has_unseen[N_TRAIN] = {0, 1, 0, 0, 0, 0, 1, 0, 0, 0};
    fx_make(dir, N_TRAIN, has_unseen, N_TEST);
    Fixture f;
    fixture_open(&f, dir, 1);
    test_order();
    test_epochs(&f, 0);
    test_epochs(&f, 2);
    test_state(&f, 0);
    test_state(&f, 2);
    test_workers_identical(&f);
    test_rank_slices(&f);
    test_pseudo(&f);
    CHECK(test_test_loader(&f, 0) == 0, "invalid slots in a good test split");
    CHECK(test_test_loader(&f, 2) == 0, "invalid slots in a good test split");
    test_bad_samples();
    test_pseudo_replacement();
    CHECK(test_test_loader(&bad_fx, 2) == 1, "test image 3 (truncated) must be one invalid slot");
    err_fx = &f;
    CHECK(t_exits_with_error(open_three_ranks), "batch 4 on 3 ranks must stop");
    CHECK(t_exits_with_error(open_batch_too_large), "batch 12 over 10 images must stop");
    fixture_close(&f);
    fixture_close(&bad_fx);
    fx_remove(dir);
    fx_remove(bad_dir);
    return t_report("test_loader");
}
