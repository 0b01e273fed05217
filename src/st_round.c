#include "st_round.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "infer.h"
#include "loader.h"
#include "resize.h"
#include "signals.h"

// Agree on a stop request every this many images: a collective per image
// would cost little but the labelling loop is already collective-free.
#define ST_SIGNAL_EVERY 8

void st_round_path(const char* run_dir, int round, char* path, size_t n) {
    snprintf(path, n, "%s/selftrain/round_%02d.h5", run_dir, round);
}

// Every rank's images [start_r, start_r + count_r) of n in the store.
static void shard_of(const Dist* d, int n, int r, int* start, int* count) {
    *start = (int)((long)n * r / d->world);
    *count = (int)((long)n * (r + 1) / d->world) - *start;
}

// The full store on every rank from each rank's rows (MPI_Allgatherv of
// whole images: labels, then weights). Counted in images, not bytes: the
// int counts and displacements then never overflow (COCO-Stuff's weights at
// warp 513 are 118287 x 65 x 65 floats, 93% of INT_MAX bytes).
static void store_share(StStore* s, const Dist* d) {
    if (d->world == 1) return;
    int* cnt = mallocCheck((size_t)d->world * sizeof(int));
    int* off = mallocCheck((size_t)d->world * sizeof(int));
    for (int r = 0; r < d->world; r++) shard_of(d, s->n, r, &off[r], &cnt[r]);
    const int HW = s->H * s->W;
    for (int pass = 0; pass < 2; pass++) {
        MPI_Datatype image;
        mpiCheck(MPI_Type_contiguous(HW, pass ? MPI_FLOAT : MPI_UINT8_T, &image));
        mpiCheck(MPI_Type_commit(&image));
        void* buf = pass ? (void*)s->weights : (void*)s->labels;
        mpiCheck(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, cnt, off, image,
                                d->comm));
        mpiCheck(MPI_Type_free(&image));
    }
    free(cnt), free(off);
}

// Rank 0 logs, per unseen class, the pseudo-labelled pixels and their mean
// confidence over the whole training split.
static void log_round(const StRule* rule, const DatasetClasses* cs, const Dist* d,
                      const double* sums, int round, double secs) {
    int K = rule->K;
    double* all = mallocCheck(2 * (size_t)K * sizeof(double));
    memcpy(all, sums, 2 * (size_t)K * sizeof(double));
    dist_allreduce_doubles(d, all, 2 * K);
    if (d->rank == 0) {
        log_info("self-training round %d (%s): labelled in %.1f s over %d rank(s)", round,
                 st_mode_name(rule->mode), secs, d->world);
        for (int c = 0; c < K; c++)
            if (rule->unseen[c])
                log_info("  round %d  %-24s %10.0f pixels  mean confidence %.4f", round,
                         cs->names[c], all[c], all[c] > 0 ? all[K + c] / all[c] : 0.0);
    }
    free(all);
}

int st_round_label(StStore* out, const CagNet* m, const Config* cfg, const DatasetClasses* cs,
                   const Dataset* train, Dist* d, const char* run_dir, int round, long iter) {
    double t0 = MPI_Wtime();
    StRule rule;
    st_rule_from(&rule, cfg, cs->K, cs->unseen);
    const int warp = config_get_int(cfg, "data.warp_size");
    // one image at a time: every image's scores are the same computation for
    // any rank count, so the labels are too
    CagInfer inf;
    cag_infer_init(&inf, m, 1, warp, warp);
    int HW = inf.Hf * inf.Wf, start, count;
    shard_of(d, train->n, d->rank, &start, &count);
    StStore s;
    st_store_alloc(&s, train->n, inf.Hf, inf.Wf);
    s.round = round, s.iteration = iter;
    snprintf(s.mode, sizeof s.mode, "%s", st_mode_name(rule.mode));
    float* conf = mallocCheck(((size_t)count * HW + 1) * sizeof(float));
    uint8_t* gt = mallocCheck((size_t)HW);
    Loader* L = loader_open_test(train, cfg, d->rank, d->world, 1, NULL);
    // the same number of loop turns on every rank, for the stop agreements
    int turns = (int)(((long)train->n + d->world - 1) / d->world), stopped = 0;
    for (int i = 0; i < turns && !stopped; i++) {
        if (i % ST_SIGNAL_EVERY == 0 &&
            dist_agree_flags(d, signals_pending() ? 1u : 0u)) {
            stopped = 1;
            break;
        }
        if (i >= count) continue;
        const LoaderBatch* b = loader_next(L);
        size_t at = (size_t)(start + i) * HW;
        float* c = conf + (size_t)i * HW;
        if (!b->valid[0]) {  // unreadable: no pseudo-labels
            memset(s.labels + at, 255, (size_t)HW);
            memset(s.weights + at, 0, (size_t)HW * sizeof(float));
            memset(c, 0, (size_t)HW * sizeof(float));
            continue;
        }
        const float* logits = cag_infer_forward(&inf, m, b->images, 1);
        resize_nearest_labels(gt, b->labels, 1, b->H, b->W, inf.Hf, inf.Wf);
        st_label_image(&rule, logits, gt, HW, s.labels + at, c, s.weights + at);
    }
    loader_close(L);
    cag_infer_free(&inf);
    free(gt);
    if (stopped) {
        free(conf);
        st_store_free(&s);
        return 1;
    }
    uint8_t* mine = s.labels + (size_t)start * HW;
    float* w = s.weights + (size_t)start * HW;
    size_t n = (size_t)count * HW;
    if (rule.mode == ST_MODE_ZS3) {
        float* thr = mallocCheck((size_t)cs->K * sizeof(float));
        st_zs3_thresholds(&rule, d, mine, conf, n, thr);
        st_zs3_apply(thr, mine, conf, w, n);
        free(thr);
    }
    double* sums = callocCheck(2 * (size_t)cs->K, sizeof(double));  // pixels, confidence
    for (size_t i = 0; i < n; i++)
        if (mine[i] != 255) sums[mine[i]] += 1.0, sums[cs->K + mine[i]] += conf[i];
    free(conf);
    store_share(&s, d);
    log_round(&rule, cs, d, sums, round, MPI_Wtime() - t0);
    free(sums);
    char path[4096], dir[4096];
    snprintf(dir, sizeof dir, "%s/selftrain", run_dir);
    if (d->rank == 0) dir_create(dir);
    mpiCheck(MPI_Barrier(d->comm));
    st_round_path(run_dir, round, path, sizeof path);
    st_store_write(&s, path, (const char* const*)train->ids, start, count, d);
    *out = s;
    return 0;
}

void st_online_check(const Config* cfg) {
    const char* mode = config_get_string(cfg, "selftrain.mode");
    if (config_get_bool(cfg, "selftrain.online") && strcmp(mode, "cagnet") != 0)
        ZS_FAIL("set selftrain.mode = \"cagnet\" or selftrain.online = false",
                "selftrain.online relabels each batch with the cagnet rule, not with '%s' "
                "(zs3 needs thresholds over the whole set, sign per-image weights)",
                mode);
}

void st_online_init(StOnline* o, const CagNet* m, const Config* cfg, const DatasetClasses* cs,
                    int B, int H, int W) {
    memset(o, 0, sizeof *o);
    st_online_check(cfg);
    st_rule_from(&o->rule, cfg, cs->K, cs->unseen);
    cag_infer_init(&o->inf, m, B, H, W);
    o->B = B, o->H = H, o->W = W;
    size_t nf = (size_t)B * o->inf.Hf * o->inf.Wf, n = (size_t)B * H * W;
    o->gt = mallocCheck(nf);
    o->pseudo = mallocCheck(nf);
    o->conf = mallocCheck((size_t)o->inf.Hf * o->inf.Wf * sizeof(float));
    o->weight = mallocCheck((size_t)o->inf.Hf * o->inf.Wf * sizeof(float));
    o->up = mallocCheck(n);
    o->labels = mallocCheck(n);
}

void st_online_free(StOnline* o) {
    if (!o->labels) return;
    cag_infer_free(&o->inf);
    free(o->gt), free(o->pseudo), free(o->conf), free(o->weight), free(o->up), free(o->labels);
    memset(o, 0, sizeof *o);
}

const uint8_t* st_online_label(StOnline* o, const CagNet* m, const float* img,
                               const uint8_t* labels) {
    int B = o->B, K = m->K, Hf = o->inf.Hf, Wf = o->inf.Wf, HW = Hf * Wf;
    const float* logits = cag_infer_forward(&o->inf, m, img, B);
    resize_nearest_labels(o->gt, labels, B, o->H, o->W, Hf, Wf);
    for (int b = 0; b < B; b++)
        st_label_image(&o->rule, logits + (size_t)b * K * HW, o->gt + (size_t)b * HW, HW,
                       o->pseudo + (size_t)b * HW, o->conf, o->weight);
    resize_nearest_labels(o->up, o->pseudo, B, Hf, Wf, o->H, o->W);
    size_t n = (size_t)B * o->H * o->W;
    for (size_t i = 0; i < n; i++) o->labels[i] = labels[i] != 255 ? labels[i] : o->up[i];
    return o->labels;
}
