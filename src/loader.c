#include "loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "hd_math.h"
#include "rng.h"
#include "transform.h"

typedef enum { BUF_FREE, BUF_FILLING, BUF_READY, BUF_HELD } BufState;

typedef struct {
    LoaderBatch b;
    BufState state;
    int next_job;      // next slot to hand out to a thread
    int pending;       // slots not finished yet
    const int* order;  // training: the order of b.epoch (held in an OrderSlot)
    const StStore* pseudo;  // the store attached when the batch was scheduled, or NULL
    float* wmem;       // (Bl, side, side) weights, allocated when a store is first attached
} Buffer;

// An epoch order shared by the buffers of that epoch; refs = buffers using it.
typedef struct {
    long epoch;
    int refs;
    int* perm;  // (ds->n), NULL until first used
} OrderSlot;

typedef struct {
    void* mem;
    size_t bytes;
    int* src;  // (2, side) store row per crop row, store column per crop column
} Scratch;

typedef struct {
    Loader* L;
    Scratch sc;
    pthread_t tid;
} Worker;

struct Loader {
    const Dataset* ds;
    TransformConfig tc;
    uint64_t seed;
    int training, rank, world;
    int B, Bl;         // global batch (training) and this rank's batch
    long N;            // positions per epoch (training: ds->n; test: this rank's shard)
    long shard0;       // test: list position of the shard's first sample
    long batches;      // per epoch (training) or in the shard (test)
    int side;          // output H = W
    double max_bad_fraction;
    LoaderAllocator alloc;

    int depth;                   // buffers in use: LOADER_DEPTH, 1 without workers
    Buffer buf[LOADER_DEPTH];
    int ring[LOADER_DEPTH];      // scheduled buffers in batch order, from head
    int head, count;
    int held;                    // buffer the caller holds, or -1
    LoaderState next;            // state of the next batch handed out
    LoaderState sched;           // state of the next batch to schedule
    OrderSlot orders[LOADER_DEPTH];

    const StStore* pseudo;  // attached pseudo-labels, or NULL
    uint8_t* bad;  // (ds->n) 1 = a bad sample already met
    long n_bad;
    char* fatal;   // why the run must stop, set by whichever thread found out

    int workers;
    Worker* pool;      // (workers)
    Scratch caller_sc; // the caller's, when it decodes inside loader_next
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    int stop;
};

// ---------------------------------------------------------------- order
void loader_epoch_order(uint64_t seed, long epoch, int n, int* order) {
    uint64_t stream = rng_stream(RNG_DATA_ORDER, (uint64_t)epoch, 0);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 0; i + 1 < n; i++) {
        int j = i + (int)rng_uint_below(seed, stream, (uint64_t)i, (uint32_t)(n - i));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

// At most depth buffers hold an order and the buffer being scheduled holds
// none, so a free slot always exists.
static const int* order_acquire(Loader* L, long epoch) {
    for (int k = 0; k < L->depth; k++)
        if (L->orders[k].perm && L->orders[k].epoch == epoch) {
            L->orders[k].refs++;
            return L->orders[k].perm;
        }
    for (int k = 0; k < L->depth; k++) {
        OrderSlot* o = &L->orders[k];
        if (o->refs) continue;
        if (!o->perm) o->perm = (int*)mallocCheck((size_t)L->ds->n * sizeof(int));
        loader_epoch_order(L->seed, epoch, L->ds->n, o->perm);
        o->epoch = epoch;
        o->refs = 1;
        return o->perm;
    }
    ZS_FAIL("this is a bug in loader.c", "loader: no free epoch order slot");
}

static void order_release(Loader* L, const int* perm) {
    for (int k = 0; k < L->depth; k++)
        if (L->orders[k].perm == perm) L->orders[k].refs--;
}

// A state at a batch boundary: a training cursor with no full batch left
// starts the next epoch.
static LoaderState state_normalize(const Loader* L, LoaderState st) {
    if (st.epoch < 0 || st.cursor < 0)
        ZS_FAIL("restore a state saved by loader_get_state",
                "loader: invalid state (epoch %ld, cursor %ld)", st.epoch, st.cursor);
    if (L->training && st.cursor + L->B > L->N) st.epoch++, st.cursor = 0;
    return st;
}

// ---------------------------------------------------------------- bad samples
// 0: sample i may be read; 1: it is a known bad one; 2: the run must stop.
static int sample_check(Loader* L, int i) {
    pthread_mutex_lock(&L->mu);
    int r = L->fatal ? 2 : L->bad[i];
    pthread_mutex_unlock(&L->mu);
    return r;
}

static void mark_bad(Loader* L, int i, const char* why) {
    pthread_mutex_lock(&L->mu);
    if (!L->bad[i]) {
        L->bad[i] = 1;
        L->n_bad++;
        double limit = L->max_bad_fraction * L->ds->n;
        log_warn("skipping %s sample '%s': %s (bad samples met on this rank: %ld of %d, "
                 "limit data.max_bad_fraction * N = %.1f)",
                 L->training ? "training" : "test", L->ds->ids[i], why, L->n_bad, L->ds->n,
                 limit);
        if (L->n_bad > limit && !L->fatal) {
            char msg[1024];
            snprintf(msg, sizeof msg,
                     "%ld of %d %s samples are unreadable, more than data.max_bad_fraction = %g "
                     "allows (last: %s)",
                     L->n_bad, L->ds->n, L->training ? "training" : "test", L->max_bad_fraction,
                     why);
            L->fatal = strdup(msg);
        }
    }
    pthread_mutex_unlock(&L->mu);
}

// ---------------------------------------------------------------- one slot
static void scratch_fit(Scratch* s, const TransformConfig* tc, int W) {
    size_t need = transform_scratch_bytes(tc, W);
    if (s->bytes >= need) return;
    free(s->mem);
    s->mem = mallocCheck(need);
    s->bytes = need;
}

// Merge store s's image i into the remapped training label lbl of the sample
// at position p of `epoch`, and write its weights (see loader.h). The map is
// separable: store row / column per crop row / column, -1 = padding.
static void pseudo_merge(const Loader* L, const StStore* s, int i, long epoch, long p,
                         uint8_t* lbl,  // (side, side)
                         float* w,      // (side, side)
                         int* src) {    // (2, side) scratch
    int n = L->side, warp = L->tc.warp;
    int *sy = src, *sx = src + n;
    TransformDraw d;
    transform_draw(&L->tc, L->seed, (uint64_t)epoch, (uint64_t)p, &d);
    transform_train_source_axes(&L->tc, &d, sy, sx);
    for (int k = 0; k < n; k++) {
        if (sy[k] >= 0) sy[k] = hd_nearest_src(sy[k], s->H, warp);
        if (sx[k] >= 0) sx[k] = hd_nearest_src(sx[k], s->W, warp);
    }
    const uint8_t* sl = s->labels + (size_t)i * s->H * s->W;
    const float* sw = s->weights + (size_t)i * s->H * s->W;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) {
            size_t q = (size_t)y * n + x;
            size_t k = (size_t)sy[y] * s->W + sx[x];
            if (lbl[q] != DATASET_IGNORE) {
                w[q] = 1.0f;
            } else if (sy[y] >= 0 && sx[x] >= 0 && sl[k] != DATASET_IGNORE) {
                lbl[q] = sl[k];
                w[q] = sw[k];
            } else {
                w[q] = 0.0f;
            }
        }
}

// Decode, validate and transform the sample of slot j of bf (see loader.h for
// the order, key and replacement rules).
static void fill_slot(Loader* L, Buffer* bf, int j, Scratch* sc) {
    LoaderBatch* b = &bf->b;
    size_t plane = (size_t)L->side * L->side;
    float* img = b->images + (size_t)j * 3 * plane;
    uint8_t* lbl = b->labels + (size_t)j * plane;
    char err[1024];
    DatasetSample s;
    if (L->training) {
        long p = b->cursor + (long)L->rank * L->Bl + j;
        for (long t = 0; t < L->N; t++) {
            int i = bf->order[(p + t) % L->N];
            int known = sample_check(L, i);
            if (known == 2) return;  // loader_next stops the run
            if (known == 1) continue;
            if (dataset_read(L->ds, i, &s, err, sizeof err) != SAMPLE_OK) {
                mark_bad(L, i, err);
                continue;
            }
            scratch_fit(sc, &L->tc, s.W);
            transform_train(&L->tc, s.rgb, s.label, s.H, s.W, L->seed, (uint64_t)b->epoch,
                            (uint64_t)p, img, lbl, sc->mem, sc->bytes);
            label_remap(lbl, plane, L->ds->map);
            if (bf->pseudo)
                pseudo_merge(L, bf->pseudo, i, b->epoch, p, lbl, b->weights + j * plane,
                             sc->src);
            dataset_sample_free(&s);
            b->index[j] = i;
            b->position[j] = p;
            b->valid[j] = 1;
            return;
        }
        pthread_mutex_lock(&L->mu);
        if (!L->fatal) L->fatal = strdup("every training sample is unreadable");
        pthread_mutex_unlock(&L->mu);
        return;
    }
    long p = L->shard0 + b->cursor + j;
    int i = (int)p;
    b->index[j] = i;
    b->position[j] = p;
    if (dataset_read(L->ds, i, &s, err, sizeof err) != SAMPLE_OK) {
        mark_bad(L, i, err);
        memset(img, 0, 3 * plane * sizeof(float));
        memset(lbl, DATASET_IGNORE, plane);
        b->valid[j] = 0;
        return;
    }
    scratch_fit(sc, &L->tc, s.W);
    transform_test(&L->tc, s.rgb, s.label, s.H, s.W, img, lbl, sc->mem, sc->bytes);
    label_remap(lbl, plane, L->ds->map);
    dataset_sample_free(&s);
    b->valid[j] = 1;
}

// ---------------------------------------------------------------- scheduling (under mu)
// Give a free buffer the batch at L->sched; 0 when there is none (end of the
// test shard) or no buffer is free.
static int schedule_one(Loader* L) {
    int k = 0;
    while (k < L->depth && L->buf[k].state != BUF_FREE) k++;
    if (k == L->depth) return 0;
    Buffer* bf = &L->buf[k];
    LoaderBatch* b = &bf->b;
    if (L->training) {
        b->n = L->Bl;
        b->epoch = L->sched.epoch;
        b->cursor = L->sched.cursor;
        bf->order = order_acquire(L, b->epoch);
        bf->pseudo = L->pseudo;
        b->weights = L->pseudo ? bf->wmem : NULL;
        L->sched.cursor += L->B;
        L->sched = state_normalize(L, L->sched);
    } else {
        if (L->sched.cursor >= L->N) return 0;
        long left = L->N - L->sched.cursor;
        b->n = left < L->Bl ? (int)left : L->Bl;
        b->epoch = 0;
        b->cursor = L->sched.cursor;
        L->sched.cursor += b->n;
    }
    bf->state = BUF_FILLING;
    bf->next_job = 0;
    bf->pending = b->n;
    L->ring[(L->head + L->count) % LOADER_DEPTH] = k;
    L->count++;
    return 1;
}

// The earliest buffer with a slot nobody has started; NULL if none.
static Buffer* next_job_buffer(Loader* L) {
    for (int c = 0; c < L->count; c++) {
        Buffer* bf = &L->buf[L->ring[(L->head + c) % LOADER_DEPTH]];
        if (bf->state == BUF_FILLING && bf->next_job < bf->b.n) return bf;
    }
    return NULL;
}

static void finish_job(Loader* L, Buffer* bf) {
    if (--bf->pending == 0) {
        bf->state = BUF_READY;
        pthread_cond_broadcast(&L->done_cv);
    }
}

static void* worker_main(void* arg) {
    Worker* w = (Worker*)arg;
    Loader* L = w->L;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        Buffer* bf;
        while (!L->stop && !(bf = next_job_buffer(L))) pthread_cond_wait(&L->work_cv, &L->mu);
        if (L->stop) break;
        int j = bf->next_job++;
        pthread_mutex_unlock(&L->mu);
        fill_slot(L, bf, j, &w->sc);
        pthread_mutex_lock(&L->mu);
        finish_job(L, bf);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static void release_buffer(Loader* L, Buffer* bf) {
    if (L->training) order_release(L, bf->order);
    bf->order = NULL;
    bf->state = BUF_FREE;
}

// ---------------------------------------------------------------- open / close
static void* buffer_alloc(const Loader* L, size_t bytes) {
    if (L->alloc.alloc) {
        void* p = L->alloc.alloc(bytes);
        if (!p)
            ZS_FAIL("free memory or lower data.batch_size", "loader: cannot allocate %zu bytes",
                    bytes);
        return p;
    }
    void* p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p)
        ZS_FAIL("free memory or lower data.batch_size", "loader: cannot allocate %zu bytes", bytes);
    return p;
}

static void buffer_free(const Loader* L, void* p) {
    if (L->alloc.free) L->alloc.free(p);
    else free(p);
}

static Loader* loader_new(const Dataset* ds, const Config* cfg, int training, int rank, int world,
                          int Bl, int side, const LoaderAllocator* alloc) {
    Loader* L = (Loader*)callocCheck(1, sizeof(Loader));
    L->ds = ds;
    transform_config_from(&L->tc, cfg);
    L->seed = (uint64_t)config_get_int(cfg, "run.seed");
    L->training = training;
    L->rank = rank;
    L->world = world;
    L->Bl = Bl;
    L->side = side;
    L->max_bad_fraction = config_get_float(cfg, "data.max_bad_fraction");
    if (alloc) L->alloc = *alloc;
    L->workers = config_get_int(cfg, "data.workers");
    L->depth = L->workers > 0 ? LOADER_DEPTH : 1;
    L->held = -1;
    L->bad = (uint8_t*)callocCheck((size_t)ds->n, 1);
    size_t plane = (size_t)side * side;
    for (int k = 0; k < L->depth; k++) {
        LoaderBatch* b = &L->buf[k].b;
        b->H = b->W = side;
        b->images = (float*)buffer_alloc(L, (size_t)Bl * 3 * plane * sizeof(float));
        b->labels = (uint8_t*)buffer_alloc(L, (size_t)Bl * plane);
        b->index = (int*)mallocCheck((size_t)Bl * sizeof(int));
        b->position = (long*)mallocCheck((size_t)Bl * sizeof(long));
        b->valid = (uint8_t*)mallocCheck((size_t)Bl);
        b->sample0 = training ? rank * Bl : 0;
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->work_cv, NULL);
    pthread_cond_init(&L->done_cv, NULL);
    L->pool = (Worker*)callocCheck((size_t)L->workers, sizeof(Worker));
    L->caller_sc.src = (int*)mallocCheck(2 * (size_t)side * sizeof(int));
    for (int w = 0; w < L->workers; w++)
        L->pool[w].sc.src = (int*)mallocCheck(2 * (size_t)side * sizeof(int));
    return L;
}

// Last step of opening, once every field is set.
static Loader* loader_start(Loader* L) {
    for (int w = 0; w < L->workers; w++) {
        L->pool[w].L = L;
        if (pthread_create(&L->pool[w].tid, NULL, worker_main, &L->pool[w]) != 0)
            ZS_FAIL("lower data.workers", "loader: cannot start decoder thread %d of %d", w + 1,
                    L->workers);
    }
    return L;
}

Loader* loader_open_train(const Dataset* ds, const Config* cfg, int rank, int world,
                          const LoaderAllocator* alloc) {
    return loader_open_train_batch(ds, cfg, "data.batch_size", rank, world, alloc);
}

Loader* loader_open_train_batch(const Dataset* ds, const Config* cfg, const char* batch_key,
                                int rank, int world, const LoaderAllocator* alloc) {
    if (!ds->training)
        ZS_FAIL("open the training split with dataset_open(..., DATASET_TRAIN)",
                "loader_open_train: the dataset is a test split");
    int B = config_get_int(cfg, batch_key);
    if (world < 1 || rank < 0 || rank >= world)
        ZS_FAIL("pass this process's MPI rank and the world size", "loader: rank %d of %d", rank,
                world);
    if (B % world != 0)
        ZS_FAIL("set the global batch to a multiple of the number of ranks",
                "%s = %d is not divisible by the %d ranks", batch_key, B, world);
    if (ds->n < B)
        ZS_FAIL("lower the batch size or use more training images",
                "the training set has %d images, fewer than %s = %d", ds->n, batch_key, B);
    Loader* L = loader_new(ds, cfg, 1, rank, world, B / world,
                           config_get_int(cfg, "data.crop_size"), alloc);
    L->B = B;
    L->N = ds->n;
    L->batches = L->N / B;
    return loader_start(L);
}

Loader* loader_open_test(const Dataset* ds, const Config* cfg, int rank, int world,
                         int batch_local, const LoaderAllocator* alloc) {
    if (world < 1 || rank < 0 || rank >= world || batch_local < 1)
        ZS_FAIL("pass the MPI rank, the world size and a positive batch",
                "loader_open_test: rank %d of %d, batch %d", rank, world, batch_local);
    Loader* L = loader_new(ds, cfg, 0, rank, world, batch_local,
                           config_get_int(cfg, "data.warp_size"), alloc);
    L->shard0 = (long)ds->n * rank / world;
    L->N = (long)ds->n * (rank + 1) / world - L->shard0;
    L->batches = (L->N + batch_local - 1) / batch_local;
    return loader_start(L);
}

void loader_close(Loader* L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    for (int w = 0; w < L->workers; w++) pthread_join(L->pool[w].tid, NULL);
    for (int k = 0; k < L->depth; k++) {
        LoaderBatch* b = &L->buf[k].b;
        buffer_free(L, b->images);
        buffer_free(L, b->labels);
        free(b->index);
        free(b->position);
        free(b->valid);
        if (L->buf[k].wmem) buffer_free(L, L->buf[k].wmem);
        free(L->orders[k].perm);
    }
    for (int w = 0; w < L->workers; w++) free(L->pool[w].sc.mem), free(L->pool[w].sc.src);
    free(L->pool);
    free(L->caller_sc.mem);
    free(L->caller_sc.src);
    free(L->bad);
    free(L->fatal);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->work_cv);
    pthread_cond_destroy(&L->done_cv);
    free(L);
}

// ---------------------------------------------------------------- batches
const LoaderBatch* loader_next(Loader* L) {
    pthread_mutex_lock(&L->mu);
    if (L->held >= 0) release_buffer(L, &L->buf[L->held]);
    L->held = -1;
    while (schedule_one(L)) {}
    pthread_cond_broadcast(&L->work_cv);
    if (L->count == 0) {  // end of the test shard
        pthread_mutex_unlock(&L->mu);
        return NULL;
    }
    // Wait for the head batch, decoding its unstarted slots meanwhile: without
    // workers the caller does all the work here.
    Buffer* bf = &L->buf[L->ring[L->head]];
    while (bf->state != BUF_READY && !L->fatal) {
        if (bf->next_job < bf->b.n) {
            int j = bf->next_job++;
            pthread_mutex_unlock(&L->mu);
            fill_slot(L, bf, j, &L->caller_sc);
            pthread_mutex_lock(&L->mu);
            finish_job(L, bf);
        } else {
            pthread_cond_wait(&L->done_cv, &L->mu);
        }
    }
    if (L->fatal) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%s", L->fatal);
        pthread_mutex_unlock(&L->mu);
        ZS_FAIL("fix or remove the files named in the warnings above (zsseg data check -c CFG "
                "lists them all), or raise data.max_bad_fraction",
                "%s", msg);
    }
    L->head = (L->head + 1) % LOADER_DEPTH;
    L->count--;
    bf->state = BUF_HELD;
    L->held = (int)(bf - L->buf);
    LoaderState after = {bf->b.epoch, bf->b.cursor + (L->training ? L->B : bf->b.n)};
    L->next = L->training ? state_normalize(L, after) : after;
    pthread_mutex_unlock(&L->mu);
    return &bf->b;
}

LoaderState loader_get_state(const Loader* L) { return L->next; }

// Drop prefetched batches and the held one (under mu): unstarted slots are
// cancelled, started ones finish first.
static void drop_batches(Loader* L) {
    for (int c = 0; c < L->count; c++) {
        Buffer* bf = &L->buf[L->ring[(L->head + c) % LOADER_DEPTH]];
        if (bf->state != BUF_FILLING) continue;
        bf->pending -= bf->b.n - bf->next_job;
        bf->next_job = bf->b.n;
        if (bf->pending == 0) bf->state = BUF_READY;
    }
    for (int c = 0; c < L->count; c++) {
        Buffer* bf = &L->buf[L->ring[(L->head + c) % LOADER_DEPTH]];
        while (bf->state != BUF_READY) pthread_cond_wait(&L->done_cv, &L->mu);
        release_buffer(L, bf);
    }
    if (L->held >= 0) release_buffer(L, &L->buf[L->held]);
    L->held = -1;
    L->head = L->count = 0;
}

void loader_set_state(Loader* L, LoaderState st) {
    pthread_mutex_lock(&L->mu);
    drop_batches(L);
    L->next = L->sched = state_normalize(L, st);
    pthread_mutex_unlock(&L->mu);
}

void loader_set_pseudo(Loader* L, const StStore* s) {
    if (!L->training)
        ZS_FAIL("attach pseudo-labels to the training loader (loader_open_train)",
                "loader_set_pseudo: this is a test loader");
    if (s && s->n != L->ds->n)
        ZS_FAIL("regenerate the self-training round for this training split (delete the round "
                "file or point data.train_list at the list it was made from)",
                "pseudo-label store: %d images, but the training set has %d", s->n, L->ds->n);
    if (s && (s->H < 1 || s->W < 1 || !s->labels || !s->weights))
        ZS_FAIL("fill the store with st_store_read or st_store_alloc",
                "pseudo-label store: empty (%dx%d maps)", s->H, s->W);
    pthread_mutex_lock(&L->mu);
    drop_batches(L);  // nobody touches a buffer now
    L->pseudo = s;
    for (int k = 0; s && k < L->depth; k++)
        if (!L->buf[k].wmem)
            L->buf[k].wmem = (float*)buffer_alloc(
                L, (size_t)L->Bl * L->side * L->side * sizeof(float));
    L->sched = L->next;
    pthread_mutex_unlock(&L->mu);
}

long loader_batches_per_epoch(const Loader* L) { return L->batches; }

long loader_bad_count(Loader* L) {
    pthread_mutex_lock(&L->mu);
    long n = L->n_bad;
    pthread_mutex_unlock(&L->mu);
    return n;
}
