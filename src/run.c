#include "run.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "embed.h"
#include "weights_h5.h"

// data.embedding when set, else built from data.word_vectors (as `zsseg embed`).
static float* load_embedding(const Config* cfg, const DatasetClasses* cs) {
    ClassEmbedding e;
    const char* path = config_get_string(cfg, "data.embedding");
    if (*path) {
        embedding_read_h5(&e, path);
        if (e.C != cs->K)
            ZS_FAIL("rebuild it for this class list: zsseg embed -c CFG",
                    "%s holds %d classes but %s lists %d", path, e.C,
                    config_get_string(cfg, "data.classes"), cs->K);
        for (int c = 0; c < e.C; c++)
            if (strcmp(e.names[c], cs->names[c]) != 0)
                ZS_FAIL("rebuild it for this class list: zsseg embed -c CFG",
                        "%s row %d is '%s' but class %d of %s is '%s'", path, c, e.names[c], c,
                        config_get_string(cfg, "data.classes"), cs->names[c]);
    } else {
        int np = 0;
        const char* const* vecs = config_get_string_list(cfg, "data.word_vectors", &np);
        if (np == 0)
            ZS_FAIL("set data.embedding (zsseg embed) or data.word_vectors",
                    "no class embedding: data.embedding and data.word_vectors are both empty");
        embedding_build(&e, (const char* const*)cs->names, cs->K, vecs, np, 1, NULL);
    }
    int E = config_get_int(cfg, "model.embedding_dim");
    if (e.D != E)
        ZS_FAIL("set model.embedding_dim to the embedding's width",
                "the class embedding has %d dimensions but model.embedding_dim = %d", e.D, E);
    float* v = mallocCheck((size_t)e.C * e.D * sizeof(float));
    memcpy(v, e.vec, (size_t)e.C * e.D * sizeof(float));
    embedding_free(&e);
    return v;
}

void run_open(RunContext* r, const Config* cfg, const char* const* sets, int nsets) {
    memset(r, 0, sizeof *r);
    dist_init(&r->d, NULL, NULL);
    char* text = NULL;
    if (r->d.rank == 0) {
        Config* c = config_new();
        char* own = config_resolved_text(cfg);
        char* err = config_load_string(c, own, "resolved config");
        for (int i = 0; !err && i < nsets; i++) err = config_apply_set(c, sets[i]);
        if (!err) err = config_validate(c);  // the sets (--run-dir) included
        if (err) ZS_FAIL("fix the option", "%s", err);
        text = config_resolved_text(c);
        free(own);
        config_free(c);
    }
    r->cfg_text = dist_broadcast_text(&r->d, text);
    free(text);
    r->cfg = config_new();
    char* err = config_load_string(r->cfg, r->cfg_text, "resolved config");
    if (err) ZS_FAIL("report this: the resolved config should always load", "%s", err);
    r->out_dir = config_get_string(r->cfg, "run.out_dir");
    // run.threads 0: OMP_NUM_THREADS if set, else the node's cores shared
    // among the ranks on it (2 ranks on 2 cores: 1 thread each)
    int threads = config_get_int(r->cfg, "run.threads");
    if (threads == 0 && !getenv("OMP_NUM_THREADS")) {
        threads = omp_get_num_procs() / r->d.local_world;
        if (threads < 1) threads = 1;
    }
    if (threads > 0) omp_set_num_threads(threads);
    // OpenBLAS keeps its own pthread pool, sized to every core of the node
    // unless told: with several ranks per node that oversubscribes the cores
    if (!getenv("OPENBLAS_NUM_THREADS")) openblas_set_num_threads(omp_get_max_threads());
    dataset_classes_load(&r->cs, r->cfg);
    r->emb = load_embedding(r->cfg, &r->cs);
}

void run_close(RunContext* r) {
    free(r->emb);
    dataset_classes_free(&r->cs);
    config_free(r->cfg);
    free(r->cfg_text);
    dist_finalize(&r->d);
    memset(r, 0, sizeof *r);
}

void run_model_init(RunContext* r, CagNet* m, int B, int H, int W) {
    const char* method = config_get_string(r->cfg, "model.method");
    if (strcmp(method, "cagnet") != 0)
        ZS_FAIL("set model.method = \"cagnet\" (the others are on the README's roadmap)",
                "model.method = %s is not available in this version", method);
    cagnet_init(m, r->cfg, r->cs.K, r->emb, r->cs.unseen, B, H, W);
    cagnet_set_dist(m, &r->d);
    const char* pre = config_get_string(r->cfg, "model.pretrained");
    if (*pre) weights_load_h5(pre, &m->pt, m->params, 0);
}

void run_load_params(CagNet* m, const char* path) { weights_load_h5(path, &m->pt, m->params, 1); }

void run_default_ckpt(const RunContext* r, char* path, size_t len) {
    snprintf(path, len, "%s/model.h5", r->out_dir);
}
