// A tiny CaGNet for the inference, evaluation and prediction tests: tiny
// backbone, a few channels, parameters from the default initialisation plus
// noise on every trainable tensor (so biases are not 0).
#ifndef ZSSEG_TINY_CAGNET_H
#define ZSSEG_TINY_CAGNET_H

#include <stdio.h>
#include <stdlib.h>

#include "cagnet.h"
#include "testing.h"

static inline void tiny_set(Config* cfg, const char* assignment) {
    char* err = config_apply_set(cfg, assignment);
    if (err) {
        fprintf(stderr, "tiny config %s: %s\n", assignment, err);
        exit(1);
    }
}

// The tiny model keys on top of cfg; msc: model.msc with scales 0.5, 0.75.
static inline void tiny_model_keys(Config* cfg, int msc) {
    const char* sets[] = {"model.backbone=tiny",
                          "model.tiny_width=4",
                          "model.feature_dim=8",
                          "model.latent_dim=8",
                          "model.embedding_dim=4",
                          "model.aspp_dilations=[1, 2]",
                          "model.cm_channels=4",
                          "model.cm_dilations=[1, 2]",
                          "model.gen_widths=[8]",
                          "model.gen_dropouts=[0.1]",
                          "model.d_hidden=6",
                          "model.d_dropout=0.5",
                          msc ? "model.msc=true" : "model.msc=false",
                          "model.msc_scales=[0.5, 0.75]"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) tiny_set(cfg, sets[i]);
}

// Defaults plus the tiny model and data.warp_size = warp.
static inline Config* tiny_config(int msc, int warp) {
    Config* cfg = config_new();
    tiny_model_keys(cfg, msc);
    char set[64];
    snprintf(set, sizeof set, "data.warp_size=%d", warp);
    tiny_set(cfg, set);
    char* err = config_validate(cfg);
    if (err) {
        fprintf(stderr, "tiny config: %s\n", err);
        exit(1);
    }
    return cfg;
}

// The model for K classes (unseen: (K)), with training activations for
// (1, 3, 16, 16) (the tests do not train).
static inline void tiny_cagnet(CagNet* m, const Config* cfg, int K, const uint8_t* unseen) {
    float* emb = t_falloc((size_t)K * 4);
    t_fill_normal(emb, (size_t)K * 4, 11, 1.0f);
    cagnet_init(m, cfg, K, emb, unseen, 1, 16, 16);
    free(emb);
    for (int i = 0; i < m->pt.n; i++) {
        const ParamTensor* t = &m->pt.t[i];
        if (t->region == REGION_FROZEN) continue;
        // larger on D/C so the argmax varies over the pixels
        float sd = t->region == REGION_DC ? 0.5f : 0.05f;
        for (size_t j = 0; j < t->numel; j++)
            m->params[t->offset + j] += sd * hd_rng_normal(12, (uint64_t)i, j);
    }
}

#endif  // ZSSEG_TINY_CAGNET_H
