// The deterministic self-training round of tests/test_st_store.c and
// tests/mpi_st_store.c: 7 maps of 5x6, labels with 255 holes, weights in
// [0, 1), ids of uneven lengths; every process builds the same bytes.
#ifndef ZSSEG_ST_STORE_FIXTURE_H
#define ZSSEG_ST_STORE_FIXTURE_H

#include <string.h>

#include "hd_math.h"
#include "st_store.h"

#define STF_N 7
#define STF_H 5
#define STF_W 6

static const char* const stf_ids[STF_N] = {"2007_000032", "a",           "2008_000123_long",
                                           "2009_1",      "2010_004242", "x_5",
                                           "2011_000006"};

static inline void stf_fill(StStore* s, uint64_t seed) {
    st_store_alloc(s, STF_N, STF_H, STF_W);
    for (size_t i = 0; i < (size_t)STF_N * STF_H * STF_W; i++) {
        float u = hd_rng_uniform(seed, 1, i);
        s->labels[i] = u < 0.3f ? 255 : (uint8_t)(u * 20.0f);
        s->weights[i] = hd_rng_uniform(seed, 2, i);
    }
    s->round = 2;
    s->iteration = 123456789012L;
    strcpy(s->mode, "zs3");
}

#endif  // ZSSEG_ST_STORE_FIXTURE_H
