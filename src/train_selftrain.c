#include "train_selftrain.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

static const char* batch_key(const Coordinator* co, int stage) {
    return coord_is_selftrain(co, stage) ? "selftrain.batch_size" : "data.batch_size";
}

void selftrain_init(SelfTrain* s, const Config* cfg, const Coordinator* co, int world,
                    long iter) {
    memset(s, 0, sizeof *s);
    s->round = -1;
    s->online = config_get_bool(cfg, "selftrain.online");
    st_online_check(cfg);  // at start, like the batch checks below
    long it = 0;
    s->batch_key = batch_key(co, coord_stage_of(co, iter < co->total ? iter : co->total - 1, &it));
    s->batch = config_get_int(cfg, s->batch_key);
    // at start, not hours later when the first self-training stage begins
    for (int i = 0; i < co->n; i++) {
        int b = config_get_int(cfg, batch_key(co, i));
        if (co->iters[i] > 0 && b % world != 0)
            ZS_FAIL("set the global batch to a multiple of the number of ranks",
                    "%s = %d is not divisible by the %d ranks (stage %s)", batch_key(co, i), b,
                    world, coord_stage_name(co->kind[i]));
    }
}

// The loader and model for the global batch of stage's key, continuing at the
// same position of the data order (so a resume at a stage boundary, which
// restores the old loader's position, meets the same batches).
static void switch_batch(SelfTrain* s, RunContext* r, CagNet* m, DeviceRun* dv,
                         const Dataset* train, Loader** loader, int* B_local, const char* key) {
    int batch = config_get_int(r->cfg, key);
    LoaderState pos = loader_get_state(*loader);
    loader_close(*loader);
    *loader = loader_open_train_batch(train, r->cfg, key, r->d.rank, r->d.world,
                                      device_run_batch_allocator(dv));
    loader_set_state(*loader, pos);
    if (s->round >= 0) loader_set_pseudo(*loader, &s->store);
    device_run_download(dv, m);
    cagnet_set_batch(m, batch / r->d.world);
    device_run_restart(dv, r->cfg, &r->d, m);
    st_online_free(&s->on);
    *B_local = batch / r->d.world;
    s->batch = batch;
    s->batch_key = key;
    log_info("global batch %d (%s) from here on", batch, key);
}

int selftrain_before(SelfTrain* s, RunContext* r, CagNet* m, DeviceRun* dv, const Dataset* train,
                     Loader** loader, int* B_local, const Coordinator* co, long iter) {
    long it = 0;
    int stage = coord_stage_of(co, iter, &it);
    const char* key = batch_key(co, stage);
    if (config_get_int(r->cfg, key) != s->batch)
        switch_batch(s, r, m, dv, train, loader, B_local, key);
    long start = -1;
    int round = s->online ? -1 : coord_round_of(co, iter, &start);
    if (round == s->round) return 0;
    loader_set_pseudo(*loader, NULL);
    st_store_free(&s->store);
    s->round = -1;
    if (round < 0) return 0;
    char path[4096];
    st_round_path(r->out_dir, round, path, sizeof path);
    if (iter != start) {
        int warp = config_get_int(r->cfg, "data.warp_size"), Hf, Wf;
        backbone_feature_size(&m->bb, warp, warp, &Hf, &Wf);
        char* err = st_store_read(&s->store, path, train->n, Hf, Wf,
                                  (const char* const*)train->ids);
        if (!err && s->store.iteration != start)  // stage lengths changed on resume
            err = strf("%s was labelled before iteration %ld, but this run's round %d starts at "
                       "%ld (schedule changed)",
                       path, s->store.iteration, round, start);
        // every rank must take the same branch (labelling is collective), so
        // one rank's failed read sends all of them to label again
        uint32_t failed = dist_agree_flags(&r->d, err ? (r->d.rank == 0 ? 1u : 2u) : 0u);
        if (!failed) {
            log_info("self-training round %d: pseudo-labels read from %s", round, path);
            s->round = round;
            loader_set_pseudo(*loader, &s->store);
            return 0;
        }
        st_store_free(&s->store);
        // rank 0 warns, and so does a rank whose read failed where rank 0's did not
        if (r->d.rank == 0 || (err && !(failed & 1u))) {
            char other[4200];
            snprintf(other, sizeof other, "another rank cannot read %s", path);
            log_warn("%s; labelling round %d again with the parameters of iteration %ld (not "
                     "those of the round's start: the run no longer matches an uninterrupted "
                     "one)",
                     err ? err : other, round, iter);
        }
        free(err);
    }
    if (st_round_label(&s->store, m, r->cfg, &r->cs, train, &r->d, r->out_dir, round, iter))
        return 1;
    s->round = round;
    loader_set_pseudo(*loader, &s->store);
    return 0;
}

const uint8_t* selftrain_labels(SelfTrain* s, RunContext* r, CagNet* m,
                                const Coordinator* co, int stage, const LoaderBatch* b) {
    if (!s->online || !coord_is_selftrain(co, stage)) return b->labels;
    if (!s->on.labels) st_online_init(&s->on, m, r->cfg, &r->cs, b->n, b->H, b->W);
    return st_online_label(&s->on, m, b->images, b->labels);
}

void selftrain_free(SelfTrain* s, Loader* loader) {
    loader_set_pseudo(loader, NULL);
    st_store_free(&s->store);
    st_online_free(&s->on);
}
